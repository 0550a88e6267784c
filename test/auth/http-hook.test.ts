import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { type HttpAuthOptions, HttpAuthProvider } from '../../src/auth/http-hook.js';
import type { ProviderDecision } from '../../src/auth/types.js';
import { until } from '../helpers/broker.js';
import { connackOf, perTest } from '../helpers/mqtt-client.js';
import { credentials, hooksFrom } from './support.js';

/**
 * The HTTP hook provider against a real local HTTP server: the request it posts, each answer
 * of the contract, failures open and closed, the cache, and MQTT.js logins through it.
 */

const { mqttClient, broker } = perTest();
const SECRET = 'pa55-w0rd-never-logged';

interface Seen {
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** What the hook server does with the next requests: status and JSON (or raw text), or nothing at all. */
type Answer = { status: number; json?: unknown; text?: string; headers?: Record<string, string> } | 'hang';

let server: Server;
let url: string;
let answer: (body: Record<string, unknown>) => Answer;
const seen: Seen[] = [];
const hanging: ServerResponse[] = [];
const errors: Error[] = [];
const decisions: ProviderDecision[] = [];

before(async () => {
  server = createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw) as Record<string, unknown>;
    seen.push({ headers: req.headers, body });
    const a = answer(body);
    if (a === 'hang') {
      hanging.push(res);
      return;
    }
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
    res.end(a.text ?? JSON.stringify(a.json ?? {}));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`;
});

after(async () => {
  server.closeAllConnections();
  server.close();
});

afterEach(() => {
  seen.length = 0;
  for (const res of hanging.splice(0)) res.destroy();
  answer = () => ({ status: 500 });
});

function hook(options: Partial<HttpAuthOptions> = {}): HttpAuthProvider {
  return new HttpAuthProvider({ url, onError: (e) => errors.push(e), ...options });
}

async function ask(
  p: HttpAuthProvider,
  username: string | undefined,
  password: string | Buffer = SECRET,
  clientId = 'c1',
) {
  const decision = await p.check(credentials(username, password, { clientId }));
  decisions.push(decision);
  return decision;
}

describe('the request and the answers of the contract', () => {
  test('allow: the posted JSON carries the credentials and connection; the answer sets username, acl and superuser', async () => {
    const acl = { publish: ['a/#'], subscribe: ['b/+'] };
    answer = () => ({ status: 200, json: { result: 'allow', username: 'mapped', acl, superuser: true } });
    const p = hook({ headers: { authorization: 'Bearer hook-token' } });
    const decision = await ask(p, 'alice');
    assert.deepEqual(decision, {
      decision: 'allow',
      identity: { provider: 'http', username: 'mapped', acl, superuser: true },
    });
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]!.body, {
      clientId: 'c1',
      username: 'alice',
      password: SECRET,
      passwordEncoding: 'utf8',
      remoteAddress: '127.0.0.1',
      listener: 'mqtt://127.0.0.1:1883',
      protocol: 'mqtt',
      protocolVersion: 5,
      certificate: null,
    });
    assert.equal(seen[0]!.headers.authorization, 'Bearer hook-token');
    assert.equal(seen[0]!.headers['content-type'], 'application/json');
  });

  test('allow without a username keeps the CONNECT one; a password that is not UTF-8 is sent as base64', async () => {
    answer = () => ({ status: 200, json: { result: 'allow' } });
    const binary = Buffer.from([0xc3, 0x28, 0x00, 0xff]);
    const decision = await ask(hook(), 'bob', binary);
    assert.deepEqual(decision, { decision: 'allow', identity: { provider: 'http', username: 'bob' } });
    assert.equal(seen[0]!.body.password, binary.toString('base64'));
    assert.equal(seen[0]!.body.passwordEncoding, 'base64');
  });

  test('deny, 401 and 403 refuse as bad credentials; ignore abstains', async () => {
    const p = hook({ denyCacheTtlMs: 0 });
    for (const a of [{ status: 200, json: { result: 'deny' } }, { status: 401 }, { status: 403 }]) {
      answer = () => a;
      const decision = await ask(p, 'carol');
      assert.equal(decision.decision, 'deny');
      assert.equal((decision as { refusal: string }).refusal, 'bad-credentials');
    }
    answer = () => ({ status: 200, json: { result: 'ignore' } });
    assert.deepEqual(await ask(p, 'carol'), { decision: 'abstain' });
  });
});

describe('when the hook is unavailable', () => {
  const broken: [string, Answer, RegExp][] = [
    ['status 500', { status: 500 }, /status 500/],
    ['a body that is not JSON', { status: 200, text: 'OK' }, /not JSON/],
    ['an unknown result', { status: 200, json: { result: 'maybe' } }, /no result/],
    ['an acl of the wrong shape', { status: 200, json: { result: 'allow', acl: { publish: 'a' } } }, /"acl"/],
    [
      'a body over 64 KiB',
      { status: 200, text: `{"result":"allow","pad":"${'x'.repeat(70_000)}"}` },
      /larger than/,
    ],
    ['a redirect', { status: 307, headers: { location: 'http://127.0.0.1:9/elsewhere' } }, /status 307/],
  ];
  for (const [what, a, message] of broken) {
    test(`${what}: failClosed (default) refuses as server unavailable; failClosed false abstains`, async () => {
      answer = () => a;
      errors.length = 0;
      const closed = await ask(hook(), 'dave');
      assert.equal(closed.decision, 'deny');
      assert.equal((closed as { refusal: string }).refusal, 'server-unavailable');
      assert.match((closed as { reason: string }).reason, message);
      assert.deepEqual(await ask(hook({ failClosed: false }), 'dave'), { decision: 'abstain' });
      assert.equal(errors.length, 2);
      assert.match(errors[0]!.message, message);
    });
  }

  test('a hook that does not answer in time: refused (failClosed) or abstained (failClosed false)', async () => {
    answer = () => 'hang';
    const closed = await ask(hook({ timeoutMs: 100 }), 'erin');
    assert.deepEqual(closed, {
      decision: 'deny',
      refusal: 'server-unavailable',
      reason: 'HTTP hook unavailable: no answer within 100 ms',
    });
    assert.deepEqual(await ask(hook({ timeoutMs: 100, failClosed: false }), 'erin'), { decision: 'abstain' });
    assert.equal(hanging.length, 2, 'both requests reached the server');
  });

  test('a hook nobody listens on: refused as server unavailable', async () => {
    const idle = createServer();
    idle.listen(0, '127.0.0.1');
    await once(idle, 'listening');
    const port = (idle.address() as AddressInfo).port;
    idle.close();
    await once(idle, 'close');
    const decision = await ask(hook({ url: `http://127.0.0.1:${port}/` }), 'frank');
    assert.deepEqual(decision, {
      decision: 'deny',
      refusal: 'server-unavailable',
      reason: 'HTTP hook unavailable: the connection failed',
    });
  });
});

describe('configuration', () => {
  test('a URL that is not http(s) or a timeout that is not positive is refused at construction', () => {
    assert.throws(() => new HttpAuthProvider({ url: 'not a url' }));
    assert.throws(() => new HttpAuthProvider({ url: 'ftp://127.0.0.1/auth' }), /http or https/);
    assert.throws(() => new HttpAuthProvider({ url, timeoutMs: 0 }), /positive/);
    assert.equal(new HttpAuthProvider({ url: 'https://auth.example/hook' }).name, 'http');
  });
});

describe('the answer cache', () => {
  test('two identical logins make one request; another password or client id makes another', async () => {
    answer = () => ({ status: 200, json: { result: 'allow' } });
    const p = hook();
    await ask(p, 'gina');
    await ask(p, 'gina');
    assert.equal(seen.length, 1);
    await ask(p, 'gina', 'other password');
    await ask(p, 'gina', SECRET, 'c2');
    assert.equal(seen.length, 3);
    assert.equal(p.cacheSize, 3);
  });

  test('concurrent identical logins share one request', async () => {
    answer = () => ({ status: 200, json: { result: 'allow' } });
    const p = hook();
    const all = await Promise.all([ask(p, 'hank'), ask(p, 'hank'), ask(p, 'hank')]);
    assert.ok(all.every((d) => d.decision === 'allow'));
    assert.equal(seen.length, 1);
  });

  test('allow and deny are kept for their own times (injected clock); failures are not cached', async () => {
    let now = 0;
    answer = (body) => ({ status: 200, json: { result: body.username === 'ivan' ? 'allow' : 'deny' } });
    const p = hook({ now: () => now, allowCacheTtlMs: 60_000, denyCacheTtlMs: 1_000 });
    await ask(p, 'ivan');
    await ask(p, 'judy');
    assert.equal(seen.length, 2);
    now = 999;
    await ask(p, 'ivan');
    await ask(p, 'judy');
    assert.equal(seen.length, 2, 'both cached');
    now = 1_000;
    await ask(p, 'ivan');
    await ask(p, 'judy');
    assert.equal(seen.length, 3, 'the deny expired, the allow did not');
    now = 60_999;
    await ask(p, 'ivan');
    assert.equal(seen.length, 4, 'the allow expired');
    answer = () => ({ status: 503 });
    await ask(p, 'kim');
    await ask(p, 'kim');
    assert.equal(seen.length, 6);
  });

  test('the cache is bounded: the oldest answer goes first', async () => {
    answer = () => ({ status: 200, json: { result: 'allow' } });
    const p = hook({ cacheMaxEntries: 2 });
    await ask(p, 'u1');
    await ask(p, 'u2');
    await ask(p, 'u3');
    assert.equal(p.cacheSize, 2);
    await ask(p, 'u3');
    await ask(p, 'u2');
    assert.equal(seen.length, 3, 'u2 and u3 still cached');
    await ask(p, 'u1');
    assert.equal(seen.length, 4, 'u1 was evicted');
  });
});

describe('logins through the broker', { timeout: 30_000 }, () => {
  test('MQTT.js is admitted or refused (0x86) as the hook answers', async () => {
    answer = (body) =>
      body.password === 'open sesame' ? { status: 200, json: { result: 'allow' } } : { status: 403 };
    const b = await broker({ hooks: hooksFrom(hook()) });
    const ok = await connackOf(
      mqttClient(b.url, { protocolVersion: 5, clientId: 'h1', username: 'u', password: 'open sesame' }),
    );
    assert.equal(ok.reasonCode, 0);
    await assert.rejects(
      connackOf(mqttClient(b.url, { protocolVersion: 5, clientId: 'h2', username: 'u', password: SECRET })),
      { code: 0x86 },
    );
    await until(() => seen.length === 2, 'two hook requests');
    assert.equal(seen[0]!.body.clientId, 'h1');
    assert.match(String(seen[0]!.body.listener), /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(seen[0]!.body.remoteAddress, '127.0.0.1');
    assert.equal(seen[0]!.body.protocolVersion, 5);
  });
});

describe('secrets', () => {
  test('no decision or reported error of this file contains a password', () => {
    assert.ok(decisions.length > 20 && errors.length > 5);
    const texts = [
      ...decisions.map((d) => JSON.stringify(d)),
      ...errors.map((e) => `${e.message} ${String(e.cause)}`),
    ];
    for (const text of texts) {
      for (const secret of [SECRET, 'open sesame', 'other password']) assert.ok(!text.includes(secret), text);
    }
  });
});
