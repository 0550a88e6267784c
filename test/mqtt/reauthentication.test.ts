import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SCRAM_SHA_256 } from '../../src/auth/scram-credential.js';
import type { AuthPacket, ConnectPacket } from '../../src/codec/mqtt/index.js';
import type { TestBroker } from '../helpers/broker.js';
import { authPacket, reauthenticate, scramHandshake, scramHook } from '../helpers/enhanced-auth.js';
import { collect, connackOf, perTest, untilTopic } from '../helpers/mqtt-client.js';
import { publishPacket, type RawClient } from '../helpers/raw-client.js';
import { ScramClient } from '../helpers/scram-client.js';

/**
 * Re-authentication on a live connection (MQTT 4.12.1) with SCRAM-SHA-256, through the raw
 * client (MQTT.js has no API for it): AUTH 0x19 starts a new exchange under the original
 * method; success is AUTH 0x00, failure DISCONNECT 0x87 and close (0x86 is not a DISCONNECT code).
 */

const { broker, mqttClient, raw } = perTest();

function scramBroker(): Promise<TestBroker> {
  return broker({ hooks: { enhancedAuthentication: scramHook } });
}

/** A raw 5.0 client connected through SCRAM as alice. */
async function rawScram(
  b: TestBroker,
  clientId: string,
  fields: Partial<ConnectPacket> = {},
): Promise<RawClient> {
  return scramHandshake(await raw(b.port, 5), clientId, fields);
}

describe('the raw client: re-authentication (MQTT 4.12.1)', { timeout: 30_000 }, () => {
  test('AUTH 0x19 with the same method: a new exchange ending in AUTH 0x00 with final data; publishing goes on meanwhile', async () => {
    const b = await scramBroker();
    const r = await rawScram(b, 'reauth-ok');
    const side = new ScramClient('alice', 'wonderland');
    r.send(authPacket(0x19, side.first()));
    const auth = await r.next('auth');
    assert.equal(auth.reasonCode, 0x18);
    // MQTT 4.12.1: other packets keep flowing under the previous authentication.
    r.send(publishPacket('reauth/during', { qos: 1, packetId: 7 }));
    assert.equal((await r.next('puback')).packetId, 7);
    r.send(authPacket(0x18, side.final(auth.properties?.authenticationData)));
    const success = await r.next('auth');
    assert.equal(success.reasonCode, 0x00);
    assert.equal(success.properties?.authenticationMethod, SCRAM_SHA_256);
    assert.ok(side.verify(success.properties?.authenticationData));
    // Still connected, and it may re-authenticate again.
    const again = await reauthenticate(r, 'alice', 'wonderland');
    assert.equal(again.last.type === 'auth' && again.last.reasonCode, 0x00);
    r.send({ type: 'pingreq' });
    await r.next('pingresp');
  });

  test('a failed re-authentication: DISCONNECT 0x87, close, and the will is published', async () => {
    const b = await scramBroker();
    const watcher = mqttClient(b.url, { protocolVersion: 5, clientId: 'will-watcher' });
    await connackOf(watcher);
    const got = collect(watcher);
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    const will = { topic: 'wills/reauth', payload: Buffer.from('gone'), qos: 1 as const, retain: false };
    const r = await rawScram(b, 'reauth-bad', { will });
    const { last } = await reauthenticate(r, 'alice', 'not the password');
    assert.deepEqual(last, { type: 'disconnect', reasonCode: 0x87, properties: undefined });
    await r.closedByBroker();
    await untilTopic(got, 'wills/reauth');
  });

  test('re-authenticating as another user fails (DISCONNECT 0x87): the connection keeps its identity', async () => {
    const b = await scramBroker();
    const r = await rawScram(b, 'reauth-bob');
    const { last } = await reauthenticate(r, 'bob', 'builder');
    assert.equal(last.type === 'disconnect' && last.reasonCode, 0x87);
    await r.closedByBroker();
  });

  const violations: [string, AuthPacket][] = [
    ['AUTH 0x19 with another method (MQTT-4.12.1-1)', authPacket(0x19, Buffer.from('x'), 'SCRAM-SHA-1')],
    ['AUTH 0x18 with no exchange in progress', authPacket(0x18, Buffer.from('c=biws'))],
    ['AUTH 0x00 from a client', authPacket(0x00, undefined)],
  ];
  for (const [what, packet] of violations) {
    test(`${what}: DISCONNECT 0x82`, async () => {
      const b = await scramBroker();
      const r = await rawScram(b, 'violator');
      r.send(packet);
      assert.equal((await r.next('disconnect')).reasonCode, 0x82);
      await r.closedByBroker();
    });
  }

  test('AUTH from a client that connected without enhanced authentication: DISCONNECT 0x82 (MQTT-4.12.0-7)', async () => {
    const b = await scramBroker();
    const r = await raw(b.port, 5);
    const connack = await r.handshake({ clientId: 'plain-raw' });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, undefined, 'MQTT-4.12.0-6');
    r.send(authPacket(0x19, new ScramClient('alice', 'wonderland').first()));
    assert.equal((await r.next('disconnect')).reasonCode, 0x82);
    await r.closedByBroker();
    assert.ok(
      !r.packets.some((p) => p.type === 'auth'),
      'no AUTH to a client without a method (MQTT-4.12.0-6)',
    );
  });
});
