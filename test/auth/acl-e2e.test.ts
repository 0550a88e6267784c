import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { Acl } from '../../src/auth/acl.js';
import type { AclSubject, Authorizer, Identity } from '../../src/auth/types.js';
import type { BrokerHooks, ClientInfo, DropReason } from '../../src/broker/hooks.js';
import type { Message } from '../../src/broker/message.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';
import { type TestBroker, until } from '../helpers/broker.js';
import {
  collect,
  connackOf,
  detached,
  id,
  leave,
  perTest,
  type Received,
  within,
} from '../helpers/mqtt-client.js';
import { publishCode, subackCodes } from '../helpers/mqtt-codes.js';

/**
 * The ACL end to end: a broker whose hooks ask an `Acl`, MQTT.js 5.0 and 3.1.1 clients and
 * mosquitto_sub on the wire. Denied publishes (0x87, or acknowledged and dropped in 3.1.1),
 * denied subscriptions (0x87 / 0x80), per-message filtering of partly readable subscriptions
 * (shared groups and retained messages too), retained and will messages, credential grants,
 * and the re-check of a persistent session's subscriptions on reconnect, after a reload and
 * after a restart.
 */

const { cleanups, broker, mqttClient } = perTest();

const RULES = `
# anonymous clients: nothing
user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read sensors/+/temperature
topic write sensors/#
topic read shared/+/temperature

user bob
topic read sensors/#
topic read shared/#
topic readwrite bob/#

pattern write wills/%u
`;

/** Identities the test's authenticate hook hands out, by CONNECT username. */
const IDENTITIES: Record<string, Identity> = {
  admin: { provider: 'test', username: 'admin', superuser: true },
  token: { provider: 'jwt', username: 'alice', acl: { publish: ['jwt/out/#'], subscribe: ['jwt/in/#'] } },
};

/** Hooks as the lead's access control builds them: every client accepted, topics through the authorizer. */
function aclHooks(authorizer: Authorizer): BrokerHooks {
  const identities = new WeakMap<ClientInfo, Identity>();
  const subject = (client: ClientInfo): AclSubject => {
    const identity = identities.get(client);
    return { clientId: client.clientId, username: identity?.username ?? client.username, identity };
  };
  return {
    authenticate(request) {
      const identity = IDENTITIES[request.username ?? ''];
      if (identity !== undefined) identities.set(request.client, identity);
      return true;
    },
    authorizePublish: (client: ClientInfo, message: Message) =>
      authorizer.canPublish(subject(client), message.topic),
    authorizeSubscribe: (client, filter) => authorizer.canSubscribe(subject(client), filter),
  };
}

async function aclBroker(authorizer: Authorizer = Acl.fromText(RULES, 'e2e.acl'), store?: MemoryStore) {
  return broker({ hooks: aclHooks(authorizer), ...(store === undefined ? {} : { store }) });
}

/** MQTT.js connected as `username`, recording what it receives. */
async function connect(
  b: TestBroker,
  username: string | undefined,
  version: 4 | 5,
  options: IClientOptions = {},
): Promise<{ client: MqttClient; got: Received[] }> {
  const client = mqttClient(b.url, {
    protocolVersion: version,
    clientId: id(username ?? 'anon'),
    ...(username === undefined ? {} : { username }),
    ...options,
  });
  const got = collect(client);
  await connackOf(client);
  return { client, got };
}

/** An application publish after which earlier messages to `got`'s client have arrived. */
async function marker(b: TestBroker, got: Received[], topic: string): Promise<void> {
  await b.broker.publish({ topic, payload: 'marker', qos: 1 });
  await until(() => got.some((m) => m.topic === topic), `the marker on ${topic}`);
}

const topics = (got: Received[]): string[] => got.map((m) => m.topic).filter((t) => !t.endsWith('/marker'));

/** Counts the broker's drops for `reason`. */
function drops(b: TestBroker, reason: DropReason): Message[] {
  const list: Message[] = [];
  b.broker.on('dropped', (message, _clientId, why) => {
    if (why === reason) list.push(message);
  });
  return list;
}

// ---- publish ----------------------------------------------------------------------------------

describe('denied publishes', { timeout: 30_000 }, () => {
  test('MQTT 5: PUBACK and PUBREC 0x87 Not authorized; the message goes nowhere', async () => {
    const b = await aclBroker();
    const watcher = await connect(b, 'admin', 5);
    await watcher.client.subscribeAsync('#', { qos: 1 });
    const { client } = await connect(b, 'alice', 5);
    assert.equal(await publishCode(client, 'alice/ok', 1), 0);
    assert.equal(await publishCode(client, 'alice/ok2', 2), 0);
    assert.equal(await publishCode(client, 'bob/x', 1), 0x87);
    assert.equal(await publishCode(client, 'bob/y', 2), 0x87);
    assert.equal(await publishCode(client, 'alice/secret/plan', 1), 0x87, 'deny wins over alice/#');
    client.publish('bob/qos0', 'dropped', { qos: 0 });
    await marker(b, watcher.got, 'admin/marker');
    assert.deepEqual(topics(watcher.got), ['alice/ok', 'alice/ok2']);
    assert.equal(client.connected, true, 'a denied publish does not cost the connection');
  });

  test('MQTT 3.1.1: acknowledged (PUBACK, PUBREC/PUBCOMP) and dropped silently', async () => {
    const b = await aclBroker();
    const watcher = await connect(b, 'admin', 5);
    await watcher.client.subscribeAsync('#', { qos: 1 });
    const { client } = await connect(b, 'alice', 4);
    assert.equal(await publishCode(client, 'bob/x', 1), 0);
    assert.equal(await publishCode(client, 'bob/y', 2), 0);
    client.publish('bob/z', 'dropped', { qos: 0 });
    assert.equal(await publishCode(client, 'alice/ok', 1), 0);
    await marker(b, watcher.got, 'admin/marker');
    assert.deepEqual(topics(watcher.got), ['alice/ok']);
    assert.equal(client.connected, true);
  });

  for (const version of [5, 4] as const) {
    test(`a denied retained publish leaves the retained store as it was (MQTT ${version === 5 ? '5' : '3.1.1'})`, async () => {
      const b = await aclBroker();
      await b.broker.publish({ topic: 'bob/status', payload: 'original', qos: 1, retain: true });
      const { client } = await connect(b, 'alice', version);
      assert.equal(await publishCode(client, 'bob/status', 1, { retain: true }), version === 5 ? 0x87 : 0);
      client.publish('bob/status', '', { qos: 0, retain: true }); // an attempt to clear it
      assert.equal(await publishCode(client, 'bob/new', 1, { retain: true }), version === 5 ? 0x87 : 0);
      await leave(b, client);
      const reader = await connect(b, 'bob', 5);
      await reader.client.subscribeAsync('bob/#', { qos: 1 });
      await until(() => reader.got.length > 0, 'the retained message');
      await marker(b, reader.got, 'bob/marker');
      assert.deepEqual(
        reader.got.filter((m) => m.packet.retain).map((m) => [m.topic, m.payload.toString()]),
        [['bob/status', 'original']],
      );
      assert.equal(b.broker.broker.retainedCount, 1);
    });
  }

  test('a will the client may not publish is not published (immediate and delayed)', async () => {
    const b = await aclBroker();
    const refused = drops(b, 'not-authorized');
    const watcher = await connect(b, 'admin', 5);
    await watcher.client.subscribeAsync('#', { qos: 1 });
    const willOf = (topic: string, delay = 0) => ({
      will: {
        topic,
        payload: Buffer.from(topic),
        qos: 1 as const,
        retain: false,
        properties: { willDelayInterval: delay },
      },
      properties: { sessionExpiryInterval: 60 },
    });
    const sessions = [
      await connect(b, 'alice', 5, willOf('bob/will')),
      await connect(b, 'alice', 4, {
        will: { topic: 'wills/bob', payload: Buffer.from('x'), qos: 1, retain: false },
      }),
      await connect(b, 'alice', 5, willOf('bob/delayed', 1)),
      await connect(b, 'alice', 5, willOf('wills/alice', 1)),
    ];
    for (const { client } of sessions) {
      const gone = detached(b, client.options.clientId!);
      client.stream.destroy();
      await within(gone, 'the broker to notice the lost connection');
    }
    await until(() => watcher.got.some((m) => m.topic === 'wills/alice'), 'the permitted delayed will');
    await marker(b, watcher.got, 'admin/marker');
    assert.deepEqual(topics(watcher.got), ['wills/alice']);
    assert.deepEqual(refused.map((m) => m.topic).sort(), ['bob/delayed', 'bob/will', 'wills/bob']);
  });
});

// ---- subscribe --------------------------------------------------------------------------------

describe('subscriptions', { timeout: 30_000 }, () => {
  test('SUBACK: granted QoS, or 0x87 (MQTT 5) / 0x80 (MQTT 3.1.1) for a denied filter', async () => {
    const b = await aclBroker();
    const v5 = await connect(b, 'alice', 5);
    assert.deepEqual(
      await subackCodes(v5.client, ['alice/#', 'bob/#', 'sensors/#', 'alice/secret/x']),
      [1, 0x87, 1, 0x87],
    );
    const v4 = await connect(b, 'alice', 4);
    assert.deepEqual(
      await subackCodes(v4.client, ['alice/x', 'bob/#', '$share/g/alice/#', '#'], 2),
      [2, 0x80, 2, 2],
    );
    const anonymous = await connect(b, undefined, 5);
    assert.deepEqual(await subackCodes(anonymous.client, ['#', 'alice/x']), [0x87, 0x87]);
    // A denied filter delivers nothing.
    await b.broker.publish({ topic: 'bob/x', payload: 'x', qos: 1 });
    await marker(b, v5.got, 'alice/marker');
    assert.deepEqual(topics(v5.got), []);
  });

  test('a partly readable subscription delivers only the readable topics, retained ones too', async () => {
    const b = await aclBroker();
    await b.broker.publish({ topic: 'sensors/r/temperature', payload: 'r', qos: 1, retain: true });
    await b.broker.publish({ topic: 'sensors/r/humidity', payload: 'r', qos: 1, retain: true });
    for (const version of [5, 4] as const) {
      const { client, got } = await connect(b, 'alice', version);
      assert.deepEqual(await subackCodes(client, ['sensors/#']), [1], 'allowed, with a guard');
      await until(() => got.length > 0, 'the readable retained message');
      const publisher = await connect(b, 'admin', 5);
      for (const t of [
        'sensors/a/temperature',
        'sensors/a/humidity',
        'sensors/b/temperature',
        'sensors/b',
        'sensors',
      ])
        await publisher.client.publishAsync(t, t, { qos: 1 });
      await marker(b, got, 'sensors/marker/temperature');
      assert.deepEqual(topics(got).sort(), [
        'sensors/a/temperature',
        'sensors/b/temperature',
        'sensors/marker/temperature',
        'sensors/r/temperature',
      ]);
    }
  });

  test('a shared group passes over a member that may not read a topic', async () => {
    const b = await aclBroker();
    const alice = await connect(b, 'alice', 5);
    const bob = await connect(b, 'bob', 5);
    assert.deepEqual(await subackCodes(alice.client, ['$share/g/shared/#']), [1]);
    assert.deepEqual(await subackCodes(bob.client, ['$share/g/shared/#']), [1]);
    // Round-robin would hand alice (the first member) the first message and every other one after.
    const kinds = [
      'humidity',
      'humidity',
      'temperature',
      'humidity',
      'temperature',
      'temperature',
      'humidity',
    ];
    const sent = kinds.map((kind, i) => `shared/${i}/${kind}`);
    for (const t of sent) await b.broker.publish({ topic: t, payload: t, qos: 1 });
    await until(
      () => alice.got.length + bob.got.length === sent.length,
      'every shared message delivered once',
    );
    assert.ok(alice.got.length > 0, 'alice took part');
    assert.ok(
      alice.got.every((m) => m.topic.endsWith('/temperature')),
      `alice got only readable topics: ${topics(alice.got)}`,
    );
    assert.deepEqual([...topics(alice.got), ...topics(bob.got)].sort(), sent.sort());
  });

  test('mosquitto_sub: a denied subscription is reported as denied', async () => {
    const sub = which('mosquitto_sub');
    if (sub === undefined) {
      assert.fail("mosquitto_sub not found: install the Debian package 'mosquitto-clients'");
    }
    const b = await aclBroker();
    for (const version of ['mqttv311', 'mqttv5']) {
      const run = await runCommand(sub, [
        '-h',
        '127.0.0.1',
        '-p',
        String(b.port),
        '-V',
        version,
        '-u',
        'alice',
        '-t',
        'bob/#',
        '-W',
        '5',
      ]);
      assert.match(run.stderr, /All subscription requests were denied/, `${version}: ${run.stderr}`);
    }
  });
});

// ---- credential grants ------------------------------------------------------------------------

describe('a grant carried by the credential replaces the file rules', { timeout: 30_000 }, () => {
  test('publish and subscribe are judged by the grant alone', async () => {
    const b = await aclBroker();
    const { client, got } = await connect(b, 'token', 5);
    assert.equal(await publishCode(client, 'jwt/out/1', 1), 0);
    assert.equal(
      await publishCode(client, 'alice/x', 1),
      0x87,
      'the file grants alice alice/#, the token does not',
    );
    assert.deepEqual(await subackCodes(client, ['jwt/in/#', 'alice/#', 'jwt/#']), [1, 0x87, 1]);
    await b.broker.publish({ topic: 'jwt/out/2', payload: 'not readable', qos: 1 });
    await b.broker.publish({ topic: 'jwt/in/1', payload: 'readable', qos: 1 });
    await marker(b, got, 'jwt/in/marker');
    // Two subscriptions match it; one copy is delivered (MQTT-3.3.4-2).
    assert.deepEqual(topics(got), ['jwt/in/1']);
  });
});

// ---- re-checking a persistent session on reconnect ----------------------------------------------

describe('a resumed session is authorized again when its client reconnects', { timeout: 30_000 }, () => {
  test('after an ACL reload: guards attached, denied subscriptions removed, queued messages re-judged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cicada-acl-e2e-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'acl');
    await writeFile(path, 'user carol\ntopic read news/#\n');
    const acl = await Acl.load(path);
    const b = await aclBroker(acl);
    const clientId = id('carol');
    const options = { clientId, clean: false, properties: { sessionExpiryInterval: 300 } };

    const first = await connect(b, 'carol', 5, options);
    assert.deepEqual(await subackCodes(first.client, ['news/#']), [1]);
    await leave(b, first.client);

    await writeFile(path, 'user carol\ntopic read news/public/#\n');
    await acl.reload();
    // Queued while carol is away, through the subscription as it was allowed then.
    await b.broker.publish({ topic: 'news/private/1', payload: 'p', qos: 1 });
    await b.broker.publish({ topic: 'news/public/1', payload: 'p', qos: 1 });

    const second = await connect(b, 'carol', 5, options);
    await b.broker.publish({ topic: 'news/private/2', payload: 'p', qos: 1 });
    await b.broker.publish({ topic: 'news/public/2', payload: 'p', qos: 1 });
    await marker(b, second.got, 'news/public/marker');
    assert.deepEqual(topics(second.got), ['news/public/1', 'news/public/2']);
    await leave(b, second.client);

    await writeFile(path, 'user carol\ntopic read elsewhere/#\n');
    await acl.reload();
    await b.broker.publish({ topic: 'news/public/3', payload: 'p', qos: 1 });
    const third = await connect(b, 'carol', 5, options);
    assert.equal(b.broker.broker.sessions.get(clientId)?.subscriptions.size, 0, 'the subscription is gone');
    await b.broker.publish({ topic: 'news/public/4', payload: 'p', qos: 1 });
    await b.broker.publish({ topic: 'elsewhere/x', payload: 'p', qos: 1 });
    assert.deepEqual(await subackCodes(third.client, ['elsewhere/#']), [1]);
    await marker(b, third.got, 'elsewhere/marker');
    assert.deepEqual(topics(third.got), []);
  });

  test('after a restart: the restored subscription gets its guard back, queued messages are re-judged', async () => {
    const store = new MemoryStore();
    const acl = Acl.fromText('user carol\ntopic read news/public/#\ntopic read news/+\n', 'restart.acl');
    const first = await aclBroker(acl, store);
    const clientId = id('carol');
    const options = { clientId, clean: false, properties: { sessionExpiryInterval: 300 } };
    const before = await connect(first, 'carol', 5, options);
    assert.deepEqual(await subackCodes(before.client, ['news/#']), [1], 'allowed with a guard');
    await leave(first, before.client);
    await first.close();

    const second = await aclBroker(acl, store);
    // Routed through the restored subscription, which has no guard until carol reconnects.
    for (const t of ['news/private/1', 'news/public/1', 'news/flash']) {
      await second.broker.publish({ topic: t, payload: t, qos: 1 });
    }
    const after = await connect(second, 'carol', 5, options);
    await second.broker.publish({ topic: 'news/private/2', payload: 'p', qos: 1 });
    await marker(second, after.got, 'news/public/marker');
    assert.deepEqual(topics(after.got), ['news/public/1', 'news/flash']);
  });
});

// ---- mosquitto_sub --------------------------------------------------------------------------------

function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin'];
  for (const dir of dirs) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  return undefined;
}

function runCommand(command: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  return within(
    new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr }))),
    `${command} to finish`,
  );
}
