import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuthProvider, Credentials } from '../../src/auth/types.js';
import type { AuthenticationResult, BrokerHooks, ClientInfo } from '../../src/broker/hooks.js';

/**
 * What the auth provider tests share: temporary directories, credentials as a broker would
 * pass them, the smallest `authenticate` hook built from one provider, and running programs.
 */

/** A fresh temporary directory; `remove` deletes it. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `cicada-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Credentials as the broker hands them to a provider. */
export function credentials(
  username: string | undefined,
  password: string | Buffer | undefined,
  overrides: Partial<ClientInfo> & { clientId?: string } = {},
): Credentials {
  const clientId = overrides.clientId ?? 'client-1';
  const client: ClientInfo = {
    clientId,
    protocol: 'mqtt',
    protocolVersion: 5,
    remoteAddress: '127.0.0.1',
    listener: 'mqtt://127.0.0.1:1883',
    keepAlive: 60,
    connectedAt: 0,
    ...overrides,
    ...(username === undefined ? {} : { username }),
  };
  return {
    clientId,
    client,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined
      ? {}
      : { password: typeof password === 'string' ? Buffer.from(password) : password }),
  };
}

/** The smallest `authenticate` hook over one provider: allow admits, deny refuses, abstain refuses as bad credentials. */
export function hooksFrom(provider: AuthProvider): BrokerHooks {
  return {
    async authenticate(request): Promise<AuthenticationResult> {
      const decision = await provider.check(request);
      if (decision.decision === 'allow') return true;
      if (decision.decision === 'deny') return { refuse: decision.refusal };
      return false;
    },
  };
}

export { type RunResult, requireBinary, runProgram } from '../helpers/programs.js';
