import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { AccessControl } from '../../src/auth/access-control.js';
import type { AuthProvider } from '../../src/auth/types.js';
import type { Cicada } from '../../src/index.js';
import { until } from '../helpers/broker.js';
import { connackOf, mqttConnect, within } from '../helpers/mqtt-client.js';
import { ADMIN, httpBroker } from '../http/support.js';
import { type Exposition, parseExposition, sampleValue, sumOf } from './exposition.js';

/**
 * `GET /metrics` end to end: MQTT.js traffic through a broker with an HTTP listener, then the
 * scraped counters must have moved by exactly what the traffic was.
 */

/** alice and bob log in with the password `right`; anything else is refused by this provider. */
const PROVIDER: AuthProvider = {
  name: 'test-users',
  async check({ username, password }) {
    if ((username === 'alice' || username === 'bob') && password?.toString() === 'right')
      return { decision: 'allow', identity: { provider: 'test-users', username } };
    return { decision: 'deny', refusal: 'bad-credentials', reason: 'wrong password' };
  },
};

/** Access control whose refusals are counted by the broker's metrics (as the CLI wires it). */
function countedAccess(metrics: () => Cicada['metrics']): AccessControl {
  return new AccessControl({
    providers: [PROVIDER],
    onFailure: (failure) => metrics()?.recordAuthFailure(failure),
  });
}

async function scrape(base: string, headers: Record<string, string> = {}): Promise<Exposition> {
  const response = await fetch(`${base}/metrics`, { headers });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

const clients: MqttClient[] = [];
async function connect(url: string, options: Parameters<typeof mqttConnect>[1]): Promise<MqttClient> {
  const c = mqttConnect(url, { protocolVersion: 5, username: 'alice', password: 'right', ...options });
  clients.push(c);
  await connackOf(c);
  return c;
}

/** The difference of one sample between two scrapes. */
function moved(
  before: Exposition,
  after: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number {
  return sumOf(after, name, labels) - sumOf(before, name, labels);
}

describe('GET /metrics after MQTT traffic', () => {
  test('connections, messages and bytes by QoS, drops by reason and auth failures move by the exact amounts', async (t) => {
    let cicada: Cicada | undefined;
    const access = countedAccess(() => cicada?.metrics);
    const b = await httpBroker({ hooks: access.hooks() });
    cicada = b.cicada;
    t.after(async () => {
      await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    });
    const before = await scrape(b.base);
    assert.equal(sampleValue(before, 'cicada_connections'), undefined, 'no connection yet');

    // A subscriber at QoS 2 gets every message at the QoS it was published with.
    const sub = await connect(b.mqttUrl, { clientId: 'm-sub' });
    const got: string[] = [];
    sub.on('message', (topic) => got.push(topic));
    await sub.subscribeAsync('m/#', { qos: 2 });
    // A subscriber that takes packets of at most 64 bytes: a larger message is dropped for it.
    const small = await connect(b.mqttUrl, { clientId: 'm-small', properties: { maximumPacketSize: 64 } });
    await small.subscribeAsync('big/#', { qos: 0 });
    // A persistent session, then offline: QoS 0 for it is dropped (queueQoS0 is off).
    const away = await connect(b.mqttUrl, {
      clientId: 'm-away',
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    await away.subscribeAsync('off/#', { qos: 1 });
    const gone = once(b.cicada.broker, 'clientDisconnected');
    await away.endAsync();
    await within(gone, 'the broker to detach m-away');

    const pub = await connect(b.mqttUrl, { clientId: 'm-pub' });
    const payloads = { 0: ['a', 'bb', 'ccc'], 1: ['dddd', 'eeeee'], 2: ['ffffff'] } as const;
    for (const [qos, texts] of Object.entries(payloads)) {
      for (const text of texts) await pub.publishAsync(`m/${qos}`, text, { qos: Number(qos) as 0 | 1 | 2 });
    }
    await pub.publishAsync('big/x', 'x'.repeat(200), { qos: 0 });
    await pub.publishAsync('off/x', 'zz', { qos: 0 });
    await until(() => got.length === 6, 'six deliveries to m-sub');

    // Two refused logins: a wrong password, and no credentials at all.
    for (const options of [{ password: 'wrong' }, { username: undefined, password: undefined }]) {
      const refused = mqttConnect(b.mqttUrl, {
        protocolVersion: 5,
        clientId: 'm-bad',
        username: 'bob',
        ...options,
      });
      clients.push(refused);
      await assert.rejects(connackOf(refused));
    }

    await until(() => b.cicada.metrics?.stats().droppedMessages === 2, 'two drops counted');
    const after = await scrape(b.base);
    assert.equal(
      sumOf(after, 'cicada_connections', { protocol: 'mqtt' }),
      3,
      'm-sub, m-small and m-pub are connected',
    );
    // Labelled with the listener as configured (the URL given to listen).
    assert.equal(sampleValue(after, 'cicada_connections', { listener: 'mqtt://127.0.0.1:0' }), 3);
    assert.equal(moved(before, after, 'cicada_connects_total', { protocol: 'mqtt' }), 4);
    assert.equal(moved(before, after, 'cicada_disconnects_total', { reason: 'client-disconnect' }), 1);
    assert.equal(moved(before, after, 'cicada_auth_failures_total', { by: 'test-users' }), 1);
    assert.equal(moved(before, after, 'cicada_auth_failures_total', { by: 'anonymous' }), 1);

    // Received: 3 + big + off at QoS 0, 2 at QoS 1, 1 at QoS 2; sent: only what reached m-sub.
    assert.equal(moved(before, after, 'cicada_messages_received_total', { qos: '0' }), 5);
    assert.equal(moved(before, after, 'cicada_messages_received_total', { qos: '1' }), 2);
    assert.equal(moved(before, after, 'cicada_messages_received_total', { qos: '2' }), 1);
    assert.equal(
      moved(before, after, 'cicada_message_bytes_received_total', { qos: '0' }),
      1 + 2 + 3 + 200 + 2,
    );
    assert.equal(moved(before, after, 'cicada_message_bytes_received_total', { qos: '1' }), 4 + 5);
    assert.equal(moved(before, after, 'cicada_message_bytes_received_total', { qos: '2' }), 6);
    assert.equal(moved(before, after, 'cicada_messages_sent_total', { qos: '0' }), 3);
    assert.equal(moved(before, after, 'cicada_messages_sent_total', { qos: '1' }), 2);
    assert.equal(moved(before, after, 'cicada_messages_sent_total', { qos: '2' }), 1);
    assert.equal(moved(before, after, 'cicada_message_bytes_sent_total', { qos: '0' }), 6);
    assert.equal(moved(before, after, 'cicada_message_bytes_sent_total', { qos: '1' }), 9);
    assert.equal(moved(before, after, 'cicada_message_bytes_sent_total', { qos: '2' }), 6);
    assert.equal(moved(before, after, 'cicada_messages_dropped_total', { reason: 'packet-too-large' }), 1);
    assert.equal(moved(before, after, 'cicada_messages_dropped_total', { reason: 'offline-qos0' }), 1);
    assert.ok(moved(before, after, 'cicada_network_bytes_received_total') > 200, 'the big PUBLISH was read');
    assert.ok(moved(before, after, 'cicada_network_bytes_sent_total') > 0);

    // Gauges: 4 sessions (m-away's persists), 3 subscriptions, nothing queued or in flight.
    assert.equal(sampleValue(after, 'cicada_sessions'), 4);
    assert.equal(sampleValue(after, 'cicada_subscriptions'), 3);
    assert.equal(sampleValue(after, 'cicada_queued_messages'), 0);
    assert.equal(sampleValue(after, 'cicada_retained_messages'), 0);
    for (const name of [
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'process_cpu_seconds_total',
    ])
      assert.ok((sampleValue(after, name) ?? 0) > 0, `${name} is reported`);
    assert.ok(sampleValue(after, 'cicada_event_loop_lag_seconds', { stat: 'max' }) !== undefined);

    // The admin API's stats read the same counters.
    const stats = b.cicada.metrics!.stats();
    assert.equal(stats.connections, 3);
    assert.equal(stats.sessions, 4);
    assert.equal(stats.messagesIn, sumOf(after, 'cicada_messages_received_total'));
    assert.equal(stats.messagesOut, sumOf(after, 'cicada_messages_sent_total'));
    assert.equal(stats.droppedMessages, 2);
  });

  test('store commits are timed when the store is durable', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'cicada-metrics-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const b = await httpBroker({ dataDir: dir });
    const before = await scrape(b.base);
    assert.equal(sampleValue(before, 'cicada_store_commit_duration_seconds_count'), 0);
    const c = mqttConnect(b.mqttUrl, { protocolVersion: 5, clientId: 'durable-pub' });
    t.after(() => c.endAsync(true));
    await connackOf(c);
    // The PUBACK of a retained QoS 1 message comes once it is on disk.
    await c.publishAsync('kept', 'on disk', { qos: 1, retain: true });
    const after = await scrape(b.base);
    const count = sampleValue(after, 'cicada_store_commit_duration_seconds_count') ?? 0;
    assert.ok(count >= 1, `commits timed: ${count}`);
    assert.equal(sampleValue(after, 'cicada_store_commit_duration_seconds_bucket', { le: '+Inf' }), count);
    assert.equal(sampleValue(after, 'cicada_retained_messages'), 1);
  });

  test('http.metricsAuth restricts /metrics to the administrator; metrics: false switches it off', async () => {
    const guarded = await httpBroker({ http: { metricsAuth: true } });
    const anonymous = await fetch(`${guarded.base}/metrics`);
    assert.notEqual(anonymous.status, 200);
    await anonymous.arrayBuffer();
    await scrape(guarded.base, ADMIN);
    const off = await httpBroker({ metrics: false });
    const response = await fetch(`${off.base}/metrics`);
    assert.equal(response.status, 404);
    await response.arrayBuffer();
    assert.equal(off.cicada.metrics, undefined);
  });
});
