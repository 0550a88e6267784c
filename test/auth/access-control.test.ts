import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AccessControl, type AccessControlOptions, type AuthFailure } from '../../src/auth/access-control.js';
import { Acl } from '../../src/auth/acl.js';
import type { AuthProvider, ProviderDecision } from '../../src/auth/types.js';
import type { AuthenticationRequest, ClientInfo } from '../../src/broker/hooks.js';

/** AccessControl on its own: the order of decisions, refusals, throttling and the ACL subject. */

const LISTENER = 'mqtt://127.0.0.1:1883';

function client(fields: Partial<ClientInfo> = {}): ClientInfo {
  return {
    clientId: 'c1',
    protocol: 'mqtt',
    protocolVersion: 5,
    remoteAddress: '10.0.0.1',
    listener: LISTENER,
    keepAlive: 60,
    connectedAt: 0,
    ...fields,
  };
}

function request(username?: string, password?: string, info = client()): AuthenticationRequest {
  return {
    clientId: info.clientId,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password: Buffer.from(password) }),
    client: info,
  };
}

/** A provider answering from a table of username → decision; it counts its calls. */
function provider(name: string, table: Record<string, ProviderDecision>): AuthProvider & { calls: number } {
  return {
    name,
    calls: 0,
    async check(credentials) {
      this.calls++;
      return table[credentials.username ?? ''] ?? { decision: 'abstain' };
    },
  };
}

const allow = (username: string): ProviderDecision => ({
  decision: 'allow',
  identity: { provider: 'p', username },
});
const deny: ProviderDecision = { decision: 'deny', refusal: 'bad-credentials', reason: 'wrong password' };

function control(options: Partial<AccessControlOptions> & Pick<AccessControlOptions, 'providers'>) {
  const failures: AuthFailure[] = [];
  const throttled: string[] = [];
  const access = new AccessControl({
    throttle: { delayFor: () => 0, recordFailure: (address) => throttled.push(address) },
    onFailure: (failure) => failures.push(failure),
    ...options,
  });
  return { access, failures, throttled };
}

describe('AccessControl', () => {
  test('the first provider that does not abstain decides; later ones are not asked', async () => {
    const first = provider('first', { alice: allow('alice'), bob: deny });
    const second = provider('second', { alice: deny, bob: allow('bob'), carol: allow('carol') });
    const { access } = control({ providers: [first, second] });
    assert.equal(await access.authenticate(request('alice', 'x')), true);
    assert.deepEqual(await access.authenticate(request('bob', 'x')), { refuse: 'bad-credentials' });
    assert.equal(await access.authenticate(request('carol', 'x')), true);
    assert.equal(first.calls, 3);
    assert.equal(second.calls, 1, 'only carol, whom the first abstained on, reached the second');
  });

  test('credentials nobody knows are refused after the equalizing step, counted and throttled', async () => {
    let equalized = 0;
    const { access, failures, throttled } = control({
      providers: [provider('p', {})],
      unknownCredentials: async () => {
        equalized++;
      },
    });
    assert.deepEqual(await access.authenticate(request('mallory', 'guess')), { refuse: 'bad-credentials' });
    assert.equal(equalized, 1, 'an unknown user costs what a known one does');
    assert.deepEqual(throttled, ['10.0.0.1']);
    assert.equal(failures.length, 1);
    assert.equal(failures[0]?.by, 'no-provider');
    assert.ok(!JSON.stringify(failures).includes('guess'), 'a refusal never carries the password');
  });

  test('a success does not clear the address for the throttle', async () => {
    const { access, throttled } = control({
      providers: [provider('p', { alice: allow('alice'), bob: deny })],
    });
    await access.authenticate(request('bob', 'x'));
    await access.authenticate(request('alice', 'x'));
    await access.authenticate(request('bob', 'x'));
    assert.deepEqual(throttled, ['10.0.0.1', '10.0.0.1']);
  });

  test('anonymous clients: refused unless allowed, globally or on their listener', async () => {
    const closed = control({ providers: [] });
    assert.deepEqual(await closed.access.authenticate(request()), { refuse: 'not-authorized' });
    assert.equal(closed.failures[0]?.by, 'anonymous');
    const open = control({ providers: [], allowAnonymous: true });
    assert.equal(await open.access.authenticate(request()), true);
    const perListener = control({
      providers: [],
      listeners: new Map([[LISTENER, { allowAnonymous: true }]]),
    });
    assert.equal(await perListener.access.authenticate(request()), true);
    const other = client({ listener: 'mqtt://127.0.0.1:1884' });
    assert.deepEqual(await perListener.access.authenticate(request(undefined, undefined, other)), {
      refuse: 'not-authorized',
    });
  });

  test("a listener's provider list leaves the others out", async () => {
    const passwords = provider('password-file', { alice: allow('alice') });
    const { access } = control({
      providers: [passwords],
      listeners: new Map([[LISTENER, { providers: ['jwt'] }]]),
    });
    assert.deepEqual(await access.authenticate(request('alice', 'x')), { refuse: 'bad-credentials' });
    assert.equal(passwords.calls, 0);
  });

  test('a provider that throws refuses as unavailable and is reported, never allowing', async () => {
    const errors: unknown[] = [];
    const broken: AuthProvider = {
      name: 'broken',
      check: async () => {
        throw new Error('down');
      },
    };
    const { access } = control({ providers: [broken], onError: (error) => errors.push(error) });
    assert.deepEqual(await access.authenticate(request('alice', 'x')), { refuse: 'server-unavailable' });
    assert.equal(errors.length, 1);
  });

  test('a verified certificate name and an enhanced-authentication outcome count as credentials', async () => {
    const { access } = control({ providers: [] });
    const certified = client({
      certificate: {
        subject: 'CN=device-1',
        subjectAltNames: [],
        issuer: 'CN=ca',
        fingerprint256: 'AA',
        validTo: '',
        authorized: true,
        username: 'device-1',
      },
    });
    assert.equal(await access.authenticate(request(undefined, undefined, certified)), true);
    assert.equal(access.identityOf(certified)?.username, 'device-1');
    const unverified = client({ certificate: { ...certified.certificate!, authorized: false } });
    assert.deepEqual(await access.authenticate(request(undefined, undefined, unverified)), {
      refuse: 'not-authorized',
    });
    const scram = client();
    const enhanced = {
      ...request('alice', undefined, scram),
      enhancedAuthentication: { method: 'SCRAM-SHA-256', username: 'alice' },
    };
    assert.equal(await access.authenticate(enhanced), true);
    assert.equal(access.identityOf(scram)?.provider, 'SCRAM-SHA-256');
  });

  test('the ACL sees the identity a provider gave: its username, its grant, superuser', async () => {
    const acl = Acl.fromText('user token-user\ntopic readwrite own/#\n');
    const tokens = provider('jwt', {
      // The CONNECT username differs from the identity's: the ACL must use the identity's.
      claimed: { decision: 'allow', identity: { provider: 'jwt', username: 'token-user' } },
      granted: {
        decision: 'allow',
        identity: { provider: 'jwt', username: 'g', acl: { publish: ['grant/#'], subscribe: [] } },
      },
      root: { decision: 'allow', identity: { provider: 'jwt', username: 'root', superuser: true } },
    });
    const { access } = control({ providers: [tokens], authorizer: acl });
    const a = client({ clientId: 'a', username: 'claimed' });
    await access.authenticate(request('claimed', 't', a));
    assert.equal(access.canPublish(a, 'own/x'), true);
    assert.equal(access.canPublish(a, 'other/x'), false);
    const g = client({ clientId: 'g', username: 'granted' });
    await access.authenticate(request('granted', 't', g));
    assert.equal(access.canPublish(g, 'grant/x'), true);
    assert.equal(access.canPublish(g, 'own/x'), false, 'a grant replaces the file rules');
    const r = client({ clientId: 'r', username: 'root' });
    await access.authenticate(request('root', 't', r));
    assert.equal(access.canPublish(r, 'anything'), true);
    assert.equal(access.canSubscribe(r, '#'), true);
  });
});
