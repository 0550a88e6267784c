import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { JwtProvider, type JwtProviderOptions } from '../../src/auth/jwt.js';
import type { ProviderDecision } from '../../src/auth/types.js';
import { credentials, tempDir } from './support.js';

/**
 * What the JWT tests share: keys, a token signer independent of the provider, the RFC 7515
 * example tokens, and a fixture that writes key files and checks tokens.
 */

/** The tests' "now", in seconds. */
export const NOW = Date.UTC(2030, 0, 1) / 1000;
const clock = (): number => NOW * 1000;

export const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
export const ec2 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
export const HS_SECRET = 'a shared secret of more than thirty-two bytes';

export const pem = (key: KeyObject): string => key.export({ type: 'spki', format: 'pem' }) as string;
export const jwk = (key: KeyObject, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  ...key.export({ format: 'jwk' }),
  ...extra,
});
export const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS signed here, independently of the provider. */
export function token(
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
export const valid = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  sub: 'alice',
  exp: NOW + 3600,
  ...extra,
});

// RFC 7515 appendix A: the published example tokens and keys (payload iss "joe", exp 1300819380).
const RFC_PAYLOAD =
  'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ';
export const RFC = {
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

type Allowed = ProviderDecision & { decision: 'allow' };

/** Key files in a temporary directory, providers on the tests' clock, and checks that record every refusal. */
export interface JwtFixture {
  /** Every refusal reason seen, with its token. */
  readonly refusals: { reason: string; token: string }[];
  readonly dir: () => string;
  file(contents: string | Buffer): Promise<string>;
  provider(
    options: Partial<JwtProviderOptions> & Pick<JwtProviderOptions, 'algorithm'>,
  ): Promise<JwtProvider>;
  check(p: JwtProvider, jwt: string, clientId?: string): Promise<ProviderDecision>;
  denied(p: JwtProvider, jwt: string, reason: RegExp, clientId?: string): Promise<void>;
  allowed(p: JwtProvider, jwt: string, clientId?: string): Promise<Allowed>;
}

/** A fixture for one test file (its temporary directory is made before and removed after the file's tests). */
export function jwtFixture(): JwtFixture {
  let dir = '';
  let removeDir: () => Promise<void> = async () => {};
  let count = 0;
  before(async () => {
    ({ dir, remove: removeDir } = await tempDir('jwt'));
  });
  after(() => removeDir());
  const refusals: { reason: string; token: string }[] = [];
  const check = async (p: JwtProvider, jwt: string, clientId = 'client-1'): Promise<ProviderDecision> => {
    const decision = await p.check(credentials('ignored', jwt, { clientId }));
    if (decision.decision === 'deny') refusals.push({ reason: decision.reason, token: jwt });
    return decision;
  };
  return {
    refusals,
    dir: () => dir,
    async file(contents) {
      const path = join(dir, `key-${++count}`);
      await writeFile(path, contents);
      return path;
    },
    provider: (options) => JwtProvider.open({ now: clock, ...options }),
    check,
    async denied(p, jwt, reason, clientId) {
      const decision = await check(p, jwt, clientId);
      assert.equal(decision.decision, 'deny', JSON.stringify(decision));
      assert.match((decision as { reason: string }).reason, reason);
    },
    async allowed(p, jwt, clientId) {
      const decision = await check(p, jwt, clientId);
      assert.equal(decision.decision, 'allow', JSON.stringify(decision));
      return decision as Allowed;
    },
  };
}
