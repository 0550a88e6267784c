import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IDisconnectPacket } from 'mqtt';
import { until } from '../helpers/broker.js';
import { adminJson, eventually, httpBroker, mqttClient } from './support.js';

interface Page<T> {
  items: T[];
  next: string | null;
}
interface ClientItem {
  clientId: string;
  username: string | null;
  protocol: string;
  protocolVersion: number;
  remoteAddress: string;
  remotePort: number;
  listener: string;
  keepAlive: number;
  connectedAt: number;
  inflight: number;
  queued: number;
  subscriptions: number;
}

test('clients: list, search by id or username, and pages of `limit` with a cursor', async () => {
  const { base, mqttUrl } = await httpBroker();
  await mqttClient(mqttUrl, { clientId: 'sensor-1', protocolVersion: 5, keepalive: 30 });
  await mqttClient(mqttUrl, { clientId: 'sensor-2', protocolVersion: 4, username: 'bob' });
  await mqttClient(mqttUrl, { clientId: 'lamp-1', protocolVersion: 5, username: 'sensor-owner' });

  const all = (await adminJson(base, '/api/v1/clients')).body as Page<ClientItem>;
  assert.deepEqual(
    all.items.map((c) => c.clientId),
    ['lamp-1', 'sensor-1', 'sensor-2'],
  );
  const sensor1 = all.items.find((c) => c.clientId === 'sensor-1')!;
  assert.equal(sensor1.protocol, 'mqtt');
  assert.equal(sensor1.protocolVersion, 5);
  assert.equal(sensor1.keepAlive, 30);
  assert.equal(sensor1.remoteAddress, '127.0.0.1');
  assert.match(sensor1.listener, /^mqtt:\/\/127\.0\.0\.1:/);
  assert.equal(typeof sensor1.remotePort, 'number');
  assert.equal(all.items.find((c) => c.clientId === 'sensor-2')!.protocolVersion, 4);

  const search = (await adminJson(base, '/api/v1/clients?search=sensor')).body as Page<ClientItem>;
  assert.deepEqual(
    search.items.map((c) => c.clientId),
    ['lamp-1', 'sensor-1', 'sensor-2'],
    'lamp-1 matches by username',
  );
  const byUser = (await adminJson(base, '/api/v1/clients?search=bob')).body as Page<ClientItem>;
  assert.deepEqual(
    byUser.items.map((c) => c.clientId),
    ['sensor-2'],
  );

  const first = (await adminJson(base, '/api/v1/clients?limit=2')).body as Page<ClientItem>;
  assert.deepEqual(
    first.items.map((c) => c.clientId),
    ['lamp-1', 'sensor-1'],
  );
  assert.ok(first.next !== null);
  const second = (await adminJson(base, `/api/v1/clients?limit=2&cursor=${first.next}`))
    .body as Page<ClientItem>;
  assert.deepEqual(
    second.items.map((c) => c.clientId),
    ['sensor-2'],
  );
  assert.equal(second.next, null);

  assert.equal((await adminJson(base, '/api/v1/clients?limit=0')).status, 400);
  assert.equal((await adminJson(base, '/api/v1/clients?limit=1001')).status, 400);
  assert.equal((await adminJson(base, '/api/v1/clients/nobody')).status, 404);
});

test('inspect: a client that does not acknowledge shows its in-flight and queue depth', async () => {
  const { base, mqttUrl } = await httpBroker();
  const slow = await mqttClient(mqttUrl, {
    clientId: 'slow-reader',
    protocolVersion: 5,
    // One unacknowledged delivery at a time, and this client never acknowledges.
    properties: { receiveMaximum: 1 },
    customHandleAcks: () => {},
  });
  await slow.subscribeAsync('jobs/#', { qos: 1 });
  const publisher = await mqttClient(mqttUrl, { clientId: 'job-maker', protocolVersion: 5 });
  for (let i = 0; i < 3; i++) await publisher.publishAsync(`jobs/${i}`, `job ${i}`, { qos: 1 });

  const client = await eventually(
    async () => (await adminJson(base, '/api/v1/clients/slow-reader')).body as ClientItem,
    (c) => c.queued === 2,
    'two queued deliveries',
  );
  assert.equal(client?.inflight, 1);
  assert.equal(client?.queued, 2);
  assert.equal(client?.subscriptions, 1);

  const sessions = (await adminJson(base, '/api/v1/sessions?search=slow')).body as Page<{
    clientId: string;
    connected: boolean;
    inflight: number;
    queued: number;
  }>;
  assert.deepEqual(
    sessions.items.map(({ clientId, connected, inflight, queued }) => ({
      clientId,
      connected,
      inflight,
      queued,
    })),
    [{ clientId: 'slow-reader', connected: true, inflight: 1, queued: 2 }],
  );
});

test('subscriptions: listed with their options, by client and by filter text', async () => {
  const { base, mqttUrl } = await httpBroker();
  const a = await mqttClient(mqttUrl, { clientId: 'sub-a', protocolVersion: 5 });
  await a.subscribeAsync('home/+/temp', { qos: 1, nl: true, rap: true, rh: 2 });
  await a.subscribeAsync('alerts/#', { qos: 0 });
  const b = await mqttClient(mqttUrl, { clientId: 'sub-b', protocolVersion: 4 });
  await b.subscribeAsync('home/+/temp', { qos: 2 });

  const mine = (await adminJson(base, '/api/v1/subscriptions?clientId=sub-a')).body as Page<unknown>;
  assert.deepEqual(mine, {
    items: [
      {
        clientId: 'sub-a',
        filter: 'alerts/#',
        qos: 0,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      },
      {
        clientId: 'sub-a',
        filter: 'home/+/temp',
        qos: 1,
        noLocal: true,
        retainAsPublished: true,
        retainHandling: 2,
      },
    ],
    next: null,
  });
  const home = (await adminJson(base, '/api/v1/subscriptions?filter=home')).body as Page<{
    clientId: string;
  }>;
  assert.deepEqual(
    home.items.map((s) => s.clientId),
    ['sub-a', 'sub-b'],
  );
});

test('kick: DELETE /api/v1/clients/{id} sends an MQTT 5 client DISCONNECT 0x98; its session stays', async () => {
  const { base, mqttUrl } = await httpBroker();
  const victim = await mqttClient(mqttUrl, {
    clientId: 'kick-me',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
  });
  const disconnect = new Promise<IDisconnectPacket>((resolve) => victim.once('disconnect', resolve));
  const { status } = await adminJson(base, '/api/v1/clients/kick-me', { method: 'DELETE' });
  assert.equal(status, 204);
  const packet = await disconnect;
  assert.equal(packet.reasonCode, 0x98);
  await until(() => !victim.connected, 'the client to be closed');

  assert.equal((await adminJson(base, '/api/v1/clients/kick-me')).status, 404);
  const sessions = (await adminJson(base, '/api/v1/sessions?search=kick-me')).body as Page<{
    connected: boolean;
  }>;
  assert.deepEqual(
    sessions.items.map((s) => s.connected),
    [false],
  );
  assert.equal((await adminJson(base, '/api/v1/clients/kick-me', { method: 'DELETE' })).status, 404);
});

test('delete session: the client is disconnected and reconnects to no session', async () => {
  const { base, mqttUrl } = await httpBroker();
  const options = {
    clientId: 'doomed',
    protocolVersion: 5 as const,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
  };
  const first = await mqttClient(mqttUrl, options);
  await first.subscribeAsync('keep/me', { qos: 1 });
  const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
  assert.equal((await adminJson(base, '/api/v1/sessions/doomed', { method: 'DELETE' })).status, 204);
  await closed;
  const sessions = (await adminJson(base, '/api/v1/sessions')).body as Page<unknown>;
  assert.deepEqual(sessions, { items: [], next: null });
  assert.equal((await adminJson(base, '/api/v1/sessions/doomed', { method: 'DELETE' })).status, 404);

  const again = await mqttClient(mqttUrl, options);
  const connack = (again as unknown as { connackPacket?: { sessionPresent: boolean } }).connackPacket;
  assert.equal(connack?.sessionPresent, false);
  const subscriptions = (await adminJson(base, '/api/v1/subscriptions?clientId=doomed'))
    .body as Page<unknown>;
  assert.deepEqual(subscriptions.items, []);
});

test('retained: browsed by filter with payloads; cleared, a new subscriber gets nothing', async () => {
  const { base, mqttUrl } = await httpBroker();
  const publisher = await mqttClient(mqttUrl, { clientId: 'retainer', protocolVersion: 5 });
  await publisher.publishAsync('status/door', 'open', {
    qos: 1,
    retain: true,
    properties: { contentType: 'text/plain', userProperties: { floor: '1' } },
  });
  await publisher.publishAsync('status/raw', Buffer.from([0xff, 0x00]), { qos: 1, retain: true });
  await publisher.publishAsync('other/x', 'x', { qos: 1, retain: true });

  const { body } = await adminJson(base, '/api/v1/retained?filter=status/%2B');
  assert.deepEqual(body, {
    items: [
      {
        topic: 'status/door',
        payload: Buffer.from('open').toString('base64'),
        payloadText: 'open',
        qos: 1,
        retain: true,
        properties: { contentType: 'text/plain', userProperties: [['floor', '1']] },
      },
      {
        topic: 'status/raw',
        payload: Buffer.from([0xff, 0x00]).toString('base64'),
        qos: 1,
        retain: true,
        properties: {},
      },
    ],
    next: null,
  });
  const everything = (await adminJson(base, '/api/v1/retained')).body as Page<{ topic: string }>;
  assert.equal(everything.items.length, 3);
  assert.equal((await adminJson(base, '/api/v1/retained?filter=a/%23/b')).status, 400);

  const cleared = await adminJson(base, `/api/v1/retained/${encodeURIComponent('status/door')}`, {
    method: 'DELETE',
  });
  assert.equal(cleared.status, 204);
  assert.equal(
    (await adminJson(base, `/api/v1/retained/${encodeURIComponent('status/door')}`, { method: 'DELETE' }))
      .status,
    404,
  );

  // Retained messages come right after SUBACK: once a live marker arrives, none was sent.
  const subscriber = await mqttClient(mqttUrl, { clientId: 'late-reader', protocolVersion: 5 });
  const received: string[] = [];
  subscriber.on('message', (topic) => received.push(topic));
  await subscriber.subscribeAsync('status/door', { qos: 1 });
  await subscriber.subscribeAsync('marker', { qos: 1 });
  await publisher.publishAsync('marker', 'm', { qos: 1 });
  await until(() => received.includes('marker'), 'the marker');
  assert.deepEqual(received, ['marker']);
});

test('stats: what the broker holds, and cumulative counters', async () => {
  const { base, mqttUrl } = await httpBroker();
  const c = await mqttClient(mqttUrl, { clientId: 'counted', protocolVersion: 5 });
  await c.subscribeAsync('a/b');
  await c.publishAsync('kept', 'k', { retain: true, qos: 1 });
  const { status, body } = await adminJson(base, '/api/v1/stats');
  assert.equal(status, 200);
  const stats = body as Record<string, number>;
  for (const key of [
    'uptimeSeconds',
    'connections',
    'sessions',
    'subscriptions',
    'retained',
    'messagesIn',
    'messagesOut',
    'bytesIn',
    'bytesOut',
    'droppedMessages',
  ])
    assert.equal(typeof stats[key], 'number', key);
  assert.equal(stats['connections'], 1);
  assert.equal(stats['sessions'], 1);
  assert.equal(stats['subscriptions'], 1);
  assert.equal(stats['retained'], 1);
});
