import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { JwtProvider } from '../../src/auth/jwt.js';
import { JwtKeyError } from '../../src/auth/jwt-keys.js';
import { ec, ec2, jwk, jwtFixture, pem, RFC, rsa, token, valid } from './jwt-support.js';

/**
 * JWT keys: the published RFC 7515 example tokens, JWKS key selection by kid, keys refused
 * when loading, and reloading key files.
 */

const { file, provider, denied, allowed, dir } = jwtFixture();

describe('published vectors (RFC 7515 appendix A)', () => {
  for (const alg of ['HS256', 'RS256', 'ES256'] as const) {
    test(`${alg}: the example token verifies before its exp, is expired after it, and a changed signature fails`, async () => {
      const jwksFile = await file(JSON.stringify({ keys: [RFC[alg].jwk] }));
      const at = (seconds: number) => () => seconds * 1000;
      const early = await JwtProvider.open({
        algorithm: alg,
        jwksFile,
        usernameClaim: 'iss',
        now: at(1300819000),
      });
      const ok = await allowed(early, RFC[alg].token);
      assert.deepEqual(ok.identity, { provider: 'jwt', username: 'joe' });
      const later = await JwtProvider.open({
        algorithm: alg,
        jwksFile,
        usernameClaim: 'iss',
        now: at(1300819380 + 31),
      });
      await denied(later, RFC[alg].token, /^token expired$/);
      const last = RFC[alg].token.at(-2) === 'A' ? 'B' : 'A';
      await denied(early, `${RFC[alg].token.slice(0, -2)}${last}${RFC[alg].token.at(-1)}`, /^bad signature$/);
    });
  }
});

describe('keys', () => {
  test('JWKS: the token kid selects the key; unknown or missing kids are refused', async () => {
    const jwksFile = await file(
      JSON.stringify({
        keys: [
          jwk(ec.publicKey, { kid: 'k1', use: 'sig' }),
          jwk(ec2.publicKey, { kid: 'k2', alg: 'ES256' }),
          jwk(rsa.publicKey, { kid: 'rsa' }), // another algorithm: not a candidate
          jwk(ec2.publicKey, { kid: 'enc', use: 'enc' }),
        ],
      }),
    );
    const p = await provider({ algorithm: 'ES256', jwksFile });
    await allowed(p, token('ES256', ec.privateKey, valid(), { kid: 'k1' }));
    await allowed(p, token('ES256', ec2.privateKey, valid(), { kid: 'k2' }));
    await denied(p, token('ES256', ec.privateKey, valid(), { kid: 'k2' }), /^bad signature$/);
    await denied(p, token('ES256', ec2.privateKey, valid(), { kid: 'enc' }), /unknown key id/);
    await denied(p, token('ES256', rsa.privateKey, valid(), { kid: 'rsa', alg: 'ES256' }), /unknown key id/);
    await denied(p, token('ES256', ec.privateKey, valid()), /names no key id/);
  });

  test('weak or unsuitable keys are refused when loading, naming the file', async () => {
    const shortSecret = await file('too short\n');
    await assert.rejects(provider({ algorithm: 'HS256', secretFile: shortSecret }), (e: Error) => {
      assert.ok(e instanceof JwtKeyError);
      assert.equal(e.message, `${shortSecret}: the HS256 secret is shorter than 32 bytes`);
      return true;
    });
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    await assert.rejects(
      provider({ algorithm: 'RS256', publicKeyFile: await file(pem(small.publicKey)) }),
      /shorter than 2048 bits/,
    );
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    await assert.rejects(
      provider({ algorithm: 'ES256', publicKeyFile: await file(pem(p384.publicKey)) }),
      /curve P-256/,
    );
    await assert.rejects(
      provider({ algorithm: 'ES256', publicKeyFile: join(dir(), 'missing.pem') }),
      /ENOENT/,
    );
    await assert.rejects(
      provider({ algorithm: 'ES256', publicKeyFile: await file('not a key') }),
      /not a PEM public key/,
    );
    await assert.rejects(
      provider({ algorithm: 'ES256', jwksFile: await file('{"keys": 1}') }),
      /"keys" array/,
    );
  });

  test('reload() picks up a new key; a broken key file keeps the old key and rejects', async () => {
    const keyFile = await file(pem(ec.publicKey));
    const p = await provider({ algorithm: 'ES256', publicKeyFile: keyFile });
    await allowed(p, token('ES256', ec.privateKey, valid()));
    await writeFile(keyFile, pem(ec2.publicKey));
    await allowed(p, token('ES256', ec.privateKey, valid()));
    await p.reload();
    await allowed(p, token('ES256', ec2.privateKey, valid()));
    await denied(p, token('ES256', ec.privateKey, valid()), /^bad signature$/);
    await writeFile(keyFile, 'garbage');
    await assert.rejects(p.reload(), /not a PEM public key/);
    await allowed(p, token('ES256', ec2.privateKey, valid()));
  });
});
