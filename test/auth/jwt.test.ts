import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { JwtProvider } from '../../src/auth/jwt.js';
import { JwtKeyError } from '../../src/auth/jwt-keys.js';
import { connackOf, perTest } from '../helpers/mqtt-client.js';
import { b64url, ec, ec2, HS_SECRET, jwk, jwtFixture, NOW, pem, rsa, token, valid } from './jwt-support.js';
import { credentials, hooksFrom } from './support.js';

/**
 * JWT authentication: tokens signed here with node:crypto for each algorithm, every refusal
 * (expiry, not-before, signature, alg none, algorithm confusion, client-id binding), ACL
 * claims, and MQTT.js end to end.
 */

const { mqttClient, broker } = perTest();
const { refusals, file, provider, check, denied, allowed } = jwtFixture();

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
