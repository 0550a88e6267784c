import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuthenticationRequest } from '../broker/hooks.js';
import type { AclConfig, AuthConfig, ListenerConfig } from '../config/schema.js';
import { AccessControl, type AuthFailure, type ListenerAccess } from './access-control.js';
import { Acl, grantAuthorizer } from './acl.js';
import { HttpAuthProvider } from './http-hook.js';
import { JwtProvider } from './jwt.js';
import { LoginThrottle } from './login-throttle.js';
import { PasswordFileProvider } from './password-file.js';
import { hashPassword, verifyPassword } from './password-hash.js';
import { scramSha256 } from './scram.js';
import { SCRAM_SHA_256 } from './scram-credential.js';
import type { Authorizer, AuthProvider } from './types.js';

/** The parts of a configuration access control is made from. */
export interface AccessConfig {
  readonly auth: AuthConfig;
  readonly acl: AclConfig;
  readonly listeners: readonly ListenerConfig[];
}

/** Where access control reports what an operator should see. */
export interface AccessEvents {
  onFailure?(failure: AuthFailure): void;
  /** A provider failed, or a file changed on disk and could not be reloaded (the old contents stay). */
  onError?(error: unknown): void;
  /** A file changed on disk and was reloaded. */
  onReload?(file: string, entries: number): void;
}

/** What the config does not say. */
export interface AccessOptions {
  /**
   * Seeds the fake SCRAM salts of unknown users. Keep it stable across restarts, or an
   * unknown name's salt changes while a real user's does not (see `persistentSecret`).
   */
  readonly secret?: Buffer;
}

const SECRET_BYTES = 32;

/**
 * A secret kept in `file` (made once, readable by the owner only), so that it outlives restarts.
 */
export async function persistentSecret(file: string): Promise<Buffer> {
  try {
    const kept = await readFile(file);
    if (kept.length >= SECRET_BYTES) return kept;
    // A crash between creating and filling the file leaves it short (an empty key would make
    // the fake salts computable by anyone): replace it.
    await rm(file, { force: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(SECRET_BYTES);
  await mkdir(dirname(file), { recursive: true });
  try {
    await writeFile(file, secret, { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (error) {
    // Another process made it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readFile(file);
    throw error;
  }
}

/**
 * Builds access control from the config: providers in the order password file, JWT, HTTP
 * hook; SCRAM-SHA-256 for password-file users; the ACL file, or (when credentials may carry
 * their own grants) grant enforcement. Files are read now: a missing or broken one throws.
 */
export async function accessControlFromConfig(
  config: AccessConfig,
  events: AccessEvents = {},
  options: AccessOptions = {},
): Promise<AccessControl> {
  const { auth, acl } = config;
  const providers: AuthProvider[] = [];
  const onError = (error: unknown): void => events.onError?.(error);
  let passwords: PasswordFileProvider | undefined;
  try {
    if (auth.passwordFile !== '') {
      const file = auth.passwordFile;
      passwords = await PasswordFileProvider.open({
        file,
        onError,
        onReload: (users) => events.onReload?.(file, users),
      });
      providers.push(passwords);
    }
    const { jwt } = auth;
    if (jwt.algorithm !== 'none') {
      providers.push(
        await JwtProvider.open({
          algorithm: jwt.algorithm,
          ...(jwt.secretFile === '' ? {} : { secretFile: jwt.secretFile }),
          ...(jwt.publicKeyFile === '' ? {} : { publicKeyFile: jwt.publicKeyFile }),
          ...(jwt.jwksFile === '' ? {} : { jwksFile: jwt.jwksFile }),
          ...(jwt.issuer === '' ? {} : { issuer: jwt.issuer }),
          ...(jwt.audience === '' ? {} : { audience: jwt.audience }),
          ...(jwt.clientIdClaim === '' ? {} : { clientIdClaim: jwt.clientIdClaim }),
          usernameClaim: jwt.usernameClaim,
          aclClaim: jwt.aclClaim,
          leewaySeconds: jwt.leewaySeconds,
        }),
      );
    }
    if (auth.http.url !== '') {
      const { http } = auth;
      const token =
        http.bearerTokenFile === '' ? undefined : (await readFile(http.bearerTokenFile, 'utf8')).trim();
      providers.push(
        new HttpAuthProvider({
          url: http.url,
          timeoutMs: http.timeoutMs,
          failClosed: http.failClosed,
          allowCacheTtlMs: http.cacheSeconds * 1000,
          denyCacheTtlMs: http.denyCacheSeconds * 1000,
          ...(token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }),
          onError,
        }),
      );
    }
    const authorizer: Authorizer | undefined =
      acl.file !== ''
        ? await Acl.load(acl.file)
        : auth.jwt.algorithm !== 'none' || auth.http.url !== ''
          ? grantAuthorizer()
          : undefined;
    const scram = passwords !== undefined && auth.scram ? passwords : undefined;
    return new AccessControl({
      providers,
      ...(authorizer === undefined ? {} : { authorizer }),
      allowAnonymous: auth.allowAnonymous,
      listeners: listenerAccess(config.listeners),
      ...(passwords === undefined ? {} : { unknownCredentials: await dummyVerification() }),
      throttle: new LoginThrottle({
        freeFailures: auth.throttle.freeFailures,
        maxDelayMs: auth.throttle.maxDelayMs,
      }),
      ...(scram === undefined
        ? {}
        : {
            methods: new Map([
              [
                SCRAM_SHA_256,
                scramSha256((user) => scram.scramCredential(user), {
                  ...(options.secret === undefined ? {} : { secret: options.secret }),
                }),
              ],
            ]),
          }),
      ...(events.onFailure === undefined ? {} : { onFailure: events.onFailure }),
      onError,
    });
  } catch (error) {
    for (const provider of providers) provider.close?.();
    throw error;
  }
}

/**
 * A check costing what a password-file user's check costs (one scrypt with the default cost),
 * for credentials nobody knows: refusing them at once would reveal which usernames exist.
 */
async function dummyVerification(): Promise<(request: AuthenticationRequest) => Promise<void>> {
  const hash = await hashPassword(randomBytes(16).toString('base64'));
  return async (request) => {
    await verifyPassword(request.password ?? Buffer.alloc(0), hash);
  };
}

/** Per-listener anonymous access and provider lists, keyed by listener URL as transports report it. */
function listenerAccess(listeners: readonly ListenerConfig[]): Map<string, ListenerAccess> {
  const map = new Map<string, ListenerAccess>();
  for (const listener of listeners) {
    if (listener.allowAnonymous === undefined && listener.auth === undefined) continue;
    map.set(new URL(listener.url).toString(), {
      ...(listener.allowAnonymous === undefined ? {} : { allowAnonymous: listener.allowAnonymous }),
      ...(listener.auth === undefined
        ? {}
        : {
            providers: listener.auth,
            // SCRAM checks the password file's users: offered only where that provider is.
            methods: listener.auth.includes('password-file') ? [SCRAM_SHA_256] : [],
          }),
    });
  }
  return map;
}
