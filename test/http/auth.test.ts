import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccessControl } from '../../src/auth/access-control.js';
import type { AuthProvider } from '../../src/auth/types.js';
import { ADMIN, ADMIN_TOKEN, fetchJson, httpBroker, mqttClient } from './support.js';

/** One MQTT user, alice/wonderland, as a credential provider. */
const alice: AuthProvider = {
  name: 'test-users',
  async check({ username, password }) {
    if (username !== 'alice') return { decision: 'abstain' };
    return password?.toString() === 'wonderland'
      ? { decision: 'allow', identity: { provider: 'test-users', username } }
      : { decision: 'deny', refusal: 'bad-credentials', reason: 'wrong password' };
  },
};

function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

function accessControl(): AccessControl {
  return new AccessControl({ providers: [alice], allowAnonymous: false });
}

test('an admin route without credentials is 401 with Basic and Bearer challenges', async () => {
  const { base } = await httpBroker();
  const { status, headers, body } = await fetchJson(base, '/api/v1/clients');
  assert.equal(status, 401);
  assert.match(headers.get('www-authenticate') ?? '', /Basic realm="cicada".*Bearer realm="cicada"/);
  assert.deepEqual((body as { error: { code: string } }).error.code, 'unauthorized');
});

test('a wrong admin token is 401; the right one lists clients', async () => {
  const { base } = await httpBroker({ http: { accessControl: accessControl() } });
  const wrong = await fetchJson(base, '/api/v1/clients', { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  const right = await fetchJson(base, '/api/v1/clients', { headers: ADMIN });
  assert.equal(right.status, 200);
  assert.deepEqual(right.body, { items: [], next: null });
});

test('a wrong token is 401 without access control too', async () => {
  const { base } = await httpBroker();
  const { status } = await fetchJson(base, '/api/v1/stats', { headers: { authorization: 'Bearer nope' } });
  assert.equal(status, 401);
});

test('login sets an HttpOnly cookie that makes the browser the administrator; logout clears it', async () => {
  const { base } = await httpBroker();
  const post = (token: string) =>
    fetch(`${base}/api/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
  const refused = await post('not-the-token');
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get('set-cookie'), null);

  const accepted = await post(ADMIN_TOKEN);
  assert.equal(accepted.status, 204);
  const setCookie = accepted.headers.get('set-cookie') ?? '';
  assert.match(setCookie, /^cicada_admin=[^;]+;.*HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.ok(!setCookie.includes(ADMIN_TOKEN), 'the cookie does not carry the token itself');
  const cookie = setCookie.split(';', 1)[0]!;
  const withCookie = await fetchJson(base, '/api/v1/stats', { headers: { cookie } });
  assert.equal(withCookie.status, 200);
  const forged = await fetchJson(base, '/api/v1/stats', { headers: { cookie: 'cicada_admin=forged' } });
  assert.equal(forged.status, 401);

  const logout = await fetch(`${base}/api/v1/logout`, { method: 'POST' });
  assert.equal(logout.status, 204);
  assert.match(logout.headers.get('set-cookie') ?? '', /^cicada_admin=;.*Max-Age=0/);
});

test('Basic credentials of an MQTT user go through the access control: known but not admin is 403', async () => {
  const { base, mqttUrl } = await httpBroker({
    hooks: accessControl().hooks(),
    http: { accessControl: accessControl() },
  });
  // The same user logs in over MQTT.
  const client = await mqttClient(mqttUrl, {
    clientId: 'alice-mqtt',
    username: 'alice',
    password: 'wonderland',
  });
  assert.ok(client.connected);

  const user = await fetchJson(base, '/api/v1/clients', { headers: basic('alice', 'wonderland') });
  assert.equal(user.status, 403);
  assert.equal((user.body as { error: { code: string } }).error.code, 'forbidden');
  const badPassword = await fetchJson(base, '/api/v1/clients', { headers: basic('alice', 'rabbit') });
  assert.equal(badPassword.status, 401);
  const stranger = await fetchJson(base, '/api/v1/clients', { headers: basic('mallory', 'x') });
  assert.equal(stranger.status, 401);
});

test('without an admin token configured, admin routes refuse everyone', async () => {
  const { base } = await httpBroker({ http: { adminToken: '' } });
  const { status } = await fetchJson(base, '/api/v1/clients', { headers: { authorization: 'Bearer ' } });
  assert.equal(status, 401);
  const login = await fetch(`${base}/api/v1/login`, { method: 'POST', body: '{"token": ""}' });
  assert.equal(login.status, 401);
});

test('a cross-site page cannot make the browser publish or kick with its credentials; a same-origin one can', async () => {
  const { base } = await httpBroker();
  const publish = (site: string) =>
    fetch(`${base}/api/v1/publish`, {
      method: 'POST',
      // The body a cross-site form can send (text/plain), with credentials the browser holds.
      headers: { ...ADMIN, 'content-type': 'text/plain', 'sec-fetch-site': site },
      body: JSON.stringify({ topic: 'csrf/test', payload: 'x' }),
    });
  for (const site of ['cross-site', 'same-site']) {
    const refused = await publish(site);
    assert.equal(refused.status, 403, site);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'forbidden');
  }
  const kick = await fetch(`${base}/api/v1/clients/someone`, {
    method: 'DELETE',
    headers: { ...ADMIN, 'sec-fetch-site': 'cross-site' },
  });
  assert.equal(kick.status, 403);
  assert.equal((await publish('same-origin')).status, 200);
  // Reading stays open: a cross-site GET changes nothing, and the cookie's SameSite=Strict keeps it unauthenticated.
  const read = await fetch(`${base}/api/v1/stats`, { headers: { ...ADMIN, 'sec-fetch-site': 'cross-site' } });
  assert.equal(read.status, 200);
});
