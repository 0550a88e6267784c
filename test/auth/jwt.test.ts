import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JwtProvider, type JwtProviderOptions } from '../../src/auth/jwt.js';
import { JwtKeyError } from '../../src/auth/jwt-keys.js';
import type { ProviderDecision } from '../../src/auth/types.js';
import { connackOf, perTest } from '../helpers/mqtt-client.js';
import { credentials, hooksFrom, tempDir } from './support.js';

/**
 * JWT authentication: published RFC 7515 vectors, tokens signed here with node:crypto for
 * each algorithm, every refusal (expiry, not-before, signature, alg none, algorithm
 * confusion, client-id binding, key ids), ACL claims, key reloads, and MQTT.js end to end.
 */

const { mqttClient, broker } = perTest();

let dir: string;
let removeDir: () => Promise<void>;
let fileCount = 0;
/** Every refusal reason seen, to check none contains its token. */
const refusals: { reason: string; token: string }[] = [];

const NOW = Date.UTC(2030, 0, 1) / 1000;
const clock = (): number => NOW * 1000;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec2 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const HS_SECRET = 'a shared secret of more than thirty-two bytes';

before(async () => {
  ({ dir, remove: removeDir } = await tempDir('jwt'));
});
after(() => removeDir());

async function file(contents: string | Buffer): Promise<string> {
  const path = join(dir, `key-${++fileCount}`);
  await writeFile(path, contents);
  return path;
}

const pem = (key: KeyObject): string => key.export({ type: 'spki', format: 'pem' }) as string;
const jwk = (key: KeyObject, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  ...key.export({ format: 'jwk' }),
  ...extra,
});
const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS signed here, independently of the provider. */
function token(
  alg: 'HS256' | 'RS256' | 'ES256',
  key: KeyObject | string,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): string {
  const input = `${b64url({ alg, typ: 'JWT', ...header })}.${b64url(claims)}`;
  const signature =
    alg === 'HS256'
      ? createHmac('sha256', key).update(input).digest()
      : sign(
          'sha256',
          Buffer.from(input),
          alg === 'ES256' ? { key: key as KeyObject, dsaEncoding: 'ieee-p1363' } : (key as KeyObject),
        );
  return `${input}.${signature.toString('base64url')}`;
}

/** Claims valid at NOW for `sub`. */
const valid = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  sub: 'alice',
  exp: NOW + 3600,
  ...extra,
});

async function provider(
  options: Partial<JwtProviderOptions> & Pick<JwtProviderOptions, 'algorithm'>,
): Promise<JwtProvider> {
  return JwtProvider.open({ now: clock, ...options });
}

async function check(p: JwtProvider, jwt: string, clientId = 'client-1'): Promise<ProviderDecision> {
  const decision = await p.check(credentials('ignored', jwt, { clientId }));
  if (decision.decision === 'deny') refusals.push({ reason: decision.reason, token: jwt });
  return decision;
}

async function denied(p: JwtProvider, jwt: string, reason: RegExp, clientId?: string): Promise<void> {
  const decision = await check(p, jwt, clientId);
  assert.equal(decision.decision, 'deny', JSON.stringify(decision));
  assert.match((decision as { reason: string }).reason, reason);
}

async function allowed(
  p: JwtProvider,
  jwt: string,
  clientId?: string,
): Promise<ProviderDecision & { decision: 'allow' }> {
  const decision = await check(p, jwt, clientId);
  assert.equal(decision.decision, 'allow', JSON.stringify(decision));
  return decision as ProviderDecision & { decision: 'allow' };
}

// RFC 7515 appendix A: the published example tokens and keys (payload iss "joe", exp 1300819380).
const RFC_PAYLOAD =
  'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ';
const RFC = {
  HS256: {
    token: `eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.${RFC_PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk`,
    jwk: {
      kty: 'oct',
      k: 'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow',
    },
  },
  RS256: {
    token: `eyJhbGciOiJSUzI1NiJ9.${RFC_PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw`,
    jwk: {
      kty: 'RSA',
      e: 'AQAB',
      n: 'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ',
    },
  },
  ES256: {
    token: `eyJhbGciOiJFUzI1NiJ9.${RFC_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q`,
    jwk: {
      kty: 'EC',
      crv: 'P-256',
      x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
      y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
    },
  },
} as const;

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

describe('valid tokens of each algorithm', () => {
  test('HS256 with a secret file (its trailing newline is not part of the secret)', async () => {
    const p = await provider({ algorithm: 'HS256', secretFile: await file(`${HS_SECRET}\n`) });
    assert.equal(p.name, 'jwt');
    const ok = await allowed(p, token('HS256', HS_SECRET, valid()));
    assert.deepEqual(ok.identity, { provider: 'jwt', username: 'alice' });
    await denied(p, token('HS256', `${HS_SECRET}\n`, valid()), /^bad signature$/);
  });

  test('RS256 with a PEM public key', async () => {
    const p = await provider({ algorithm: 'RS256', publicKeyFile: await file(pem(rsa.publicKey)) });
    await allowed(p, token('RS256', rsa.privateKey, valid()));
  });

  test('ES256 with a PEM public key (signature R||S, not DER)', async () => {
    const p = await provider({ algorithm: 'ES256', publicKeyFile: await file(pem(ec.publicKey)) });
    await allowed(p, token('ES256', ec.privateKey, valid()));
    const der = sign('sha256', Buffer.from('x'), ec.privateKey);
    const [h, c] = token('ES256', ec.privateKey, valid()).split('.');
    await denied(p, `${h}.${c}.${der.toString('base64url')}`, /^bad signature$/);
  });
});

describe('refusals', () => {
  let es: JwtProvider;
  before(async () => {
    es = await provider({
      algorithm: 'ES256',
      publicKeyFile: await file(pem(ec.publicKey)),
      leewaySeconds: 30,
    });
  });

  test('expired: exp in the past beyond the leeway; within the leeway still valid', async () => {
    await denied(es, token('ES256', ec.privateKey, valid({ exp: NOW - 31 })), /^token expired$/);
    await denied(es, token('ES256', ec.privateKey, valid({ exp: NOW - 30 })), /^token expired$/);
    await allowed(es, token('ES256', ec.privateKey, valid({ exp: NOW - 29 })));
  });

  test('not yet valid: nbf in the future beyond the leeway; within it accepted', async () => {
    await denied(es, token('ES256', ec.privateKey, valid({ nbf: NOW + 31 })), /^token not yet valid$/);
    await allowed(es, token('ES256', ec.privateKey, valid({ nbf: NOW + 30 })));
  });

  test('a token without exp is refused unless requireExpiration is false', async () => {
    const claims = { sub: 'alice' };
    await denied(es, token('ES256', ec.privateKey, claims), /no expiration/);
    const lax = await provider({
      algorithm: 'ES256',
      publicKeyFile: await file(pem(ec.publicKey)),
      requireExpiration: false,
    });
    await allowed(lax, token('ES256', ec.privateKey, claims));
    await denied(es, token('ES256', ec.privateKey, valid({ exp: String(NOW + 60) })), /exp is not a number/);
  });

  test('wrong signature: another key, or claims changed after signing', async () => {
    await denied(es, token('ES256', ec2.privateKey, valid()), /^bad signature$/);
    const [h, , s] = token('ES256', ec.privateKey, valid()).split('.');
    await denied(es, `${h}.${b64url(valid({ sub: 'root' }))}.${s}`, /^bad signature$/);
  });

  test('alg none is refused, however it is spelled and whether or not a signature follows', async () => {
    for (const alg of ['none', 'None', 'NONE']) {
      const unsigned = `${b64url({ alg, typ: 'JWT' })}.${b64url(valid())}.`;
      await denied(es, unsigned, /^unsigned token \(alg none\)$/);
      await denied(es, `${unsigned}c2ln`, /^unsigned token \(alg none\)$/);
    }
  });

  test('algorithm confusion: an HS256 token keyed with the RSA public key is refused', async () => {
    const rs = await provider({ algorithm: 'RS256', publicKeyFile: await file(pem(rsa.publicKey)) });
    await denied(
      rs,
      token('HS256', pem(rsa.publicKey), valid()),
      /^token algorithm HS256 is not the configured RS256$/,
    );
    await denied(
      es,
      token('RS256', rsa.privateKey, valid()),
      /^token algorithm RS256 is not the configured ES256$/,
    );
    // Nor can HS256 be configured with a public key.
    await assert.rejects(
      provider({ algorithm: 'HS256', publicKeyFile: await file(pem(rsa.publicKey)) }),
      JwtKeyError,
    );
    const rsaSet = await file(JSON.stringify({ keys: [jwk(rsa.publicKey)] }));
    await assert.rejects(provider({ algorithm: 'HS256', jwksFile: rsaSet }), /no HS256 signing key/);
    await assert.rejects(
      provider({ algorithm: 'ES256', publicKeyFile: await file(pem(rsa.publicKey)) }),
      /ES256 needs an EC key/,
    );
  });

  test('client id binding: the claim must equal the CONNECT client id (refused as not authorized)', async () => {
    const bound = await provider({
      algorithm: 'ES256',
      publicKeyFile: await file(pem(ec.publicKey)),
      clientIdClaim: 'client_id',
    });
    const jwt = token('ES256', ec.privateKey, valid({ client_id: 'device-7' }));
    await allowed(bound, jwt, 'device-7');
    const wrong = await check(bound, jwt, 'device-8');
    assert.deepEqual(wrong, {
      decision: 'deny',
      refusal: 'not-authorized',
      reason: 'wrong client id: the token is bound to another client',
    });
    await denied(bound, token('ES256', ec.privateKey, valid()), /^wrong client id/, 'device-7');
  });

  test('issuer and audience, when configured, must match', async () => {
    const strict = await provider({
      algorithm: 'ES256',
      publicKeyFile: await file(pem(ec.publicKey)),
      issuer: 'https://issuer.example',
      audience: ['mqtt', 'other'],
    });
    await allowed(
      strict,
      token('ES256', ec.privateKey, valid({ iss: 'https://issuer.example', aud: ['x', 'mqtt'] })),
    );
    await allowed(
      strict,
      token('ES256', ec.privateKey, valid({ iss: 'https://issuer.example', aud: 'other' })),
    );
    await denied(
      strict,
      token('ES256', ec.privateKey, valid({ iss: 'https://evil.example', aud: 'mqtt' })),
      /^wrong issuer$/,
    );
    await denied(
      strict,
      token('ES256', ec.privateKey, valid({ iss: 'https://issuer.example', aud: 'web' })),
      /^wrong audience$/,
    );
    await denied(
      strict,
      token('ES256', ec.privateKey, valid({ iss: 'https://issuer.example' })),
      /^wrong audience$/,
    );
  });

  test('a token without the username claim, with critical headers or with a payload that is not JSON is refused', async () => {
    await denied(es, token('ES256', ec.privateKey, { exp: NOW + 60 }), /^token has no 'sub' claim$/);
    await denied(es, token('ES256', ec.privateKey, valid(), { crit: ['exp'] }), /critical header/);
    const input = `${b64url({ alg: 'ES256' })}.${Buffer.from('not json').toString('base64url')}`;
    const signature = sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
    await denied(
      es,
      `${input}.${signature.toString('base64url')}`,
      /^malformed token: the payload is not a JSON object$/,
    );
  });

  test('passwords that are not JWT-shaped are left to the next provider', async () => {
    for (const password of [
      'hunter2',
      'a.b',
      'a.b.c',
      'abc.def.ghi',
      `${b64url([1])}.${b64url({})}.x`,
      'x..y',
      '',
    ]) {
      assert.deepEqual(await es.check(credentials('u', password)), { decision: 'abstain' }, password);
    }
    assert.deepEqual(await es.check(credentials('u', Buffer.from([0xff, 0x2e, 0xfe, 0x2e, 0x00]))), {
      decision: 'abstain',
    });
    assert.deepEqual(await es.check(credentials('u', undefined)), { decision: 'abstain' });
  });
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
    await assert.rejects(provider({ algorithm: 'ES256', publicKeyFile: join(dir, 'missing.pem') }), /ENOENT/);
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

describe('identity from claims', () => {
  test('ACL claims land in identity.acl; superuser only through a configured claim', async () => {
    const secretFile = await file(HS_SECRET);
    const p = await provider({ algorithm: 'HS256', secretFile, usernameClaim: 'user' });
    const acl = { publish: ['devices/7/#'], subscribe: ['commands/7', 'broadcast/+'] };
    const ok = await allowed(
      p,
      token('HS256', HS_SECRET, { user: 'dev7', exp: NOW + 60, acl, superuser: true }),
    );
    assert.deepEqual(ok.identity, { provider: 'jwt', username: 'dev7', acl });
    const partial = await allowed(
      p,
      token('HS256', HS_SECRET, { user: 'dev7', exp: NOW + 60, acl: { publish: ['a'] } }),
    );
    assert.deepEqual(partial.identity.acl, { publish: ['a'], subscribe: [] });
    await denied(
      p,
      token('HS256', HS_SECRET, { user: 'dev7', exp: NOW + 60, acl: { publish: 'a' } }),
      /malformed ACL claim/,
    );

    const custom = await provider({
      algorithm: 'HS256',
      secretFile,
      aclClaim: 'mqtt',
      superuserClaim: 'admin',
    });
    const admin = await allowed(custom, token('HS256', HS_SECRET, valid({ mqtt: acl, admin: true })));
    assert.deepEqual(admin.identity, { provider: 'jwt', username: 'alice', acl, superuser: true });
    const notAdmin = await allowed(custom, token('HS256', HS_SECRET, valid({ admin: 'true' })));
    assert.deepEqual(notAdmin.identity, { provider: 'jwt', username: 'alice' });
  });

  test('no refusal reason in this file contained its token', () => {
    assert.ok(refusals.length > 20, `${refusals.length} refusals seen`);
    for (const { reason, token: jwt } of refusals) {
      for (const part of jwt.split('.').filter((p) => p.length > 8))
        assert.ok(!reason.includes(part), reason);
    }
  });
});

describe('end to end: MQTT.js sends the token as its password', { timeout: 30_000 }, () => {
  test('a valid token connects (5.0 and 3.1.1); expired → 0x86; bound to another client id → 0x87 / 5', async () => {
    const p = await JwtProvider.open({
      algorithm: 'RS256',
      publicKeyFile: await file(pem(rsa.publicKey)),
      clientIdClaim: 'client_id',
    });
    const b = await broker({ hooks: hooksFrom(p) });
    const now = Math.floor(Date.now() / 1000);
    const jwt = (clientId: string, exp = now + 300) =>
      token('RS256', rsa.privateKey, { sub: 'dev', client_id: clientId, exp });
    const connect = (version: 4 | 5, clientId: string, password: string) =>
      connackOf(mqttClient(b.url, { protocolVersion: version, clientId, username: 'jwt', password }));
    assert.equal((await connect(5, 'jwt-5', jwt('jwt-5'))).reasonCode, 0);
    assert.equal((await connect(4, 'jwt-4', jwt('jwt-4'))).returnCode, 0);
    await assert.rejects(connect(5, 'jwt-5x', jwt('jwt-5x', now - 3600)), { code: 0x86 });
    await assert.rejects(connect(5, 'jwt-5y', jwt('someone-else')), { code: 0x87 });
    await assert.rejects(connect(4, 'jwt-4y', jwt('someone-else')), { code: 5 });
  });
});
