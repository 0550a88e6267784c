import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { Limits } from '../../src/limits/index.js';
import { until } from '../helpers/broker.js';
import { connackOf } from '../helpers/mqtt-client.js';
import { attempt, type LimitedBroker, limitedTests, NO_LIMITS, outcome } from './limited-broker.js';

/**
 * Connection admission end to end: the total cap, the per-address cap and the per-address
 * connection rate, each reached and seen to act on the wire, with honest clients unaffected.
 */

const t = limitedTests();

/** Sockets a test opened by hand, destroyed after it. */
function sockets(): Socket[] {
  const list: Socket[] = [];
  t.defer(() => {
    for (const s of list) s.destroy();
  });
  return list;
}

/** An MQTT.js client that proves it works: it receives its own QoS 1 publish. */
async function roundTrip(c: MqttClient, topic: string): Promise<void> {
  const got: string[] = [];
  c.on('message', (tp, payload) => {
    if (tp === topic) got.push(payload.toString());
  });
  await c.subscribeAsync(topic, { qos: 1 });
  await c.publishAsync(topic, 'ping', { qos: 1 });
  await until(() => got.includes('ping'), `a round trip on ${topic}`);
}

async function connected(b: LimitedBroker, clientId: string, version: 4 | 5 = 5): Promise<MqttClient> {
  const c = t.client(b.url, { clientId, protocolVersion: version });
  await connackOf(c);
  return c;
}

describe('the total connection cap', { timeout: 30_000 }, () => {
  test('the N+1th connection gets CONNACK 0x97 Quota exceeded (5.0); existing clients are unaffected', async () => {
    const b = await t.start({ limits: { ...NO_LIMITS, maxConnections: 2 } });
    const first = await connected(b, 'cap-1');
    await connected(b, 'cap-2');
    const open = sockets();
    assert.equal(outcome(await attempt(b.port, { version: 5, clientId: 'cap-3', sockets: open })), 0x97);
    assert.equal(b.handler.limits?.gate.refusals['total-quota'], 1);
    await roundTrip(first, 'cap/first');
  });

  test('MQTT 3.1.1 is refused with return code 3 Server unavailable', async () => {
    const b = await t.start({ limits: { ...NO_LIMITS, maxConnections: 1 } });
    await connected(b, 'cap311-1', 4);
    const c = t.client(b.url, { clientId: 'cap311-2', protocolVersion: 4 });
    await assert.rejects(connackOf(c), (error: { code?: number }) => error.code === 3);
  });

  test('a connection that ends makes room for the next', async () => {
    const b = await t.start({ limits: { ...NO_LIMITS, maxConnections: 1 } });
    const first = await connected(b, 'room-1');
    const open = sockets();
    assert.equal(outcome(await attempt(b.port, { clientId: 'room-2', sockets: open })), 0x97);
    await first.endAsync();
    await until(() => b.handler.limits?.gate.open === 0, 'the first connection to be released');
    assert.equal(outcome(await attempt(b.port, { clientId: 'room-3', sockets: open })), 0);
  });
});

describe('the per-address connection cap', { timeout: 30_000 }, () => {
  test('a third connection from one address gets 0x97 (5.0) or 3 (3.1.1); another address is admitted', async () => {
    const b = await t.start({ limits: { ...NO_LIMITS, maxConnectionsPerAddress: 2 } });
    const open = sockets();
    const from = (localAddress: string, version: 4 | 5 = 5) =>
      attempt(b.port, { localAddress, version, sockets: open });
    assert.equal(outcome(await from('127.0.0.1')), 0);
    assert.equal(outcome(await from('127.0.0.1')), 0);
    assert.equal(outcome(await from('127.0.0.1')), 0x97);
    assert.equal(outcome(await from('127.0.0.1', 4)), 3);
    assert.equal(outcome(await from('127.0.0.2')), 0);
    assert.equal(b.handler.limits?.gate.openFrom('127.0.0.1'), 2);
    assert.equal(b.handler.limits?.gate.refusals['address-quota'], 2);
  });
});

describe('the per-address connection rate', { timeout: 30_000 }, () => {
  test('a flood from one address is closed at once without CONNACK; an honest client elsewhere connects', async () => {
    // A stopped clock: the bucket never refills during the test, so the figures are exact.
    const limits = new Limits(
      { ...NO_LIMITS, connectionRatePerAddress: 1, connectionBurstPerAddress: 5 },
      { now: () => 0 },
    );
    const b = await t.start({ limits });
    const open = sockets();
    const flood = await Promise.all(
      Array.from({ length: 30 }, () => attempt(b.port, { localAddress: '127.0.0.3', sockets: open })),
    );
    const results = flood.map(outcome);
    assert.equal(results.filter((r) => r === 0).length, 5);
    assert.equal(results.filter((r) => r === 'closed').length, 25);
    assert.equal(limits.gate.refusals['connection-rate'], 25);
    const honest = await connected(b, 'honest');
    await roundTrip(honest, 'rate/honest');
    // The flooder's admitted connections work too: the limit took only what was over it.
    const admitted = flood.find((r) => 'connack' in r);
    assert.ok(admitted !== undefined && 'socket' in admitted && !admitted.socket.destroyed);
  });
});
