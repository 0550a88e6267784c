import { AccessControl } from '../../src/auth/access-control.js';
import { Acl } from '../../src/auth/acl.js';
import type { AuthProvider } from '../../src/auth/types.js';
import type { CicadaOptions } from '../../src/index.js';

/**
 * Access control for the push and SSE tests: two users with passwords, an ACL, and the
 * broker options that apply it to MQTT and HTTP callers alike.
 */

/** Users and their passwords. */
const USERS: Record<string, string> = { alice: 'alice-secret', bob: 'bob-secret' };

/** alice may publish and read under `alice/` and read `news/#`; bob may only read `news/#`. */
const RULES = `
user alice
topic readwrite alice/#
topic read news/#

user bob
topic read news/#
`;

/** Accepts the users above; refuses a wrong password, abstains for unknown names. */
const provider: AuthProvider = {
  name: 'test-users',
  async check({ username, password }) {
    if (username === undefined || USERS[username] === undefined) return { decision: 'abstain' };
    if (password?.toString('utf8') !== USERS[username])
      return { decision: 'deny', refusal: 'bad-credentials', reason: 'wrong password' };
    return { decision: 'allow', identity: { provider: 'test-users', username } };
  },
};

/** Broker options with the access control on MQTT (hooks) and HTTP (callers). */
export function aclOptions(): CicadaOptions {
  const access = new AccessControl({ providers: [provider], authorizer: Acl.fromText(RULES, 'test.acl') });
  return { hooks: access.hooks(), http: { accessControl: access } };
}

/** The Basic authorization header of a user. */
export function basic(username: string, password = USERS[username] ?? ''): { authorization: string } {
  return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
}
