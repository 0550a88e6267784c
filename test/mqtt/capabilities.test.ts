import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { publishPacket, RawClient } from '../helpers/raw-client.js';

/**
 * Features a broker can be configured without (MQTT 3.2.2.3.11-13): CONNACK says so, and
 * subscriptions that need them are refused with the matching reason code.
 */

describe('capabilities switched off', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({
      wildcardSubscriptionsAvailable: false,
      sharedSubscriptionsAvailable: false,
      subscriptionIdentifiersAvailable: false,
    });
  });
  after(() => b.close());

  test('the 5.0 CONNACK advertises Wildcard, Shared and Subscription Identifier availability as false', async () => {
    const client = await mqtt.connectAsync(b.url, { protocolVersion: 5, reconnectPeriod: 0 });
    try {
      // MQTT.js keeps the CONNACK it received (mqtt-packet's property names).
      const connack = (client as unknown as { connackPacket?: { properties?: Record<string, unknown> } })
        .connackPacket?.properties;
      assert.ok(connack, 'CONNACK properties were received');
      assert.equal(connack.wildcardSubscriptionAvailable, false);
      assert.equal(connack.sharedSubscriptionAvailable, false);
      assert.equal(connack.subscriptionIdentifiersAvailable, false);
    } finally {
      await client.endAsync();
    }
  });

  test('5.0: a wildcard filter gets SUBACK 0xA2 and a shared one 0x9E, while a plain filter in the same SUBSCRIBE is granted', async () => {
    const raw = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'caps-v5' });
    try {
      raw.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [
          { topicFilter: 'a/+', qos: 1 },
          { topicFilter: '$share/g/a/b', qos: 1 },
          { topicFilter: 'a/b', qos: 1 },
        ],
      });
      const suback = await raw.next('suback');
      assert.deepEqual(suback.reasonCodes, [0xa2, 0x9e, 1]);
    } finally {
      raw.end();
    }
  });

  test('3.1.1: the same filters get the failure return code 0x80', async () => {
    const raw = await RawClient.connect(b.port, { protocolVersion: 4, clientId: 'caps-v4' });
    try {
      raw.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [
          { topicFilter: 'a/#', qos: 0 },
          { topicFilter: '$share/g/a', qos: 0 },
          { topicFilter: 'a', qos: 0 },
        ],
      });
      const suback = await raw.next('suback');
      assert.deepEqual(suback.reasonCodes, [0x80, 0x80, 0]);
    } finally {
      raw.end();
    }
  });

  test('a SUBSCRIBE with a Subscription Identifier is answered with DISCONNECT 0xA1', async () => {
    const raw = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'caps-subid' });
    raw.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: 'x', qos: 0 }],
      properties: { subscriptionIdentifiers: [7] },
    });
    const disconnect = await raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0xa1);
    await raw.closedByBroker();
  });
});

describe('capabilities on by default', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.close());

  test('MQTT-3.3.4-6: a PUBLISH from a client carrying a Subscription Identifier is a protocol error (0x82)', async () => {
    const raw = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'caps-pub-subid' });
    raw.send(publishPacket('t', { properties: { subscriptionIdentifiers: [3] } }));
    const disconnect = await raw.next('disconnect');
    assert.equal(disconnect.reasonCode, 0x82);
    await raw.closedByBroker();
  });
});
