import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { scramAuthentication } from '../../src/auth/scram.js';
import {
  deriveScramCredential,
  SCRAM_SHA_256,
  type ScramCredential,
} from '../../src/auth/scram-credential.js';
import type {
  AuthConversation,
  AuthenticationRequest,
  BrokerHooks,
  ClientInfo,
} from '../../src/broker/hooks.js';
import type { AuthPacket, ConnectPacket, Packet } from '../../src/codec/mqtt/index.js';
import { type TestBroker, until } from '../helpers/broker.js';
import { bytes } from '../helpers/bytes.js';
import { collect, connackOf, perTest, untilTopic } from '../helpers/mqtt-client.js';
import { publishPacket, type RawClient } from '../helpers/raw-client.js';
import { ScramClient } from '../helpers/scram-client.js';

/**
 * MQTT 5 enhanced authentication end to end (MQTT 4.12, AUTH 3.15) with SCRAM-SHA-256: MQTT.js
 * through CONNECT/AUTH/CONNACK, and the raw client for exact packets, misbehaviour and
 * re-authentication (4.12.1), which MQTT.js has no API for.
 *
 * Refusal codes, as chosen: a failed SCRAM proof (wrong password or unknown user) is 0x87 Not
 * authorized, as the User Name and Password fields played no part and 0x87 is also a valid
 * DISCONNECT code for a failed re-authentication (0x86 is CONNACK-only). An unknown method is 0x8C.
 * A protocol error before CONNACK is answered with CONNACK 0x82, not DISCONNECT: the server
 * sends nothing but AUTH before a CONNACK (MQTT-3.2.0-1).
 */

const { broker, mqttClient, raw } = perTest();

const ITERATIONS = 4096;
const credentials = new Map<string, ScramCredential>([
  ['alice', await deriveScramCredential('wonderland', ITERATIONS)],
  ['bob', await deriveScramCredential('builder', ITERATIONS)],
]);
const scram = scramAuthentication((name) => credentials.get(name), { fakeIterations: ITERATIONS });

/** A broker offering SCRAM-SHA-256 over `credentials`, with `hooks` added. */
function scramBroker(hooks: BrokerHooks = {}, mqtt = {}): Promise<TestBroker> {
  return broker({ hooks: { enhancedAuthentication: scram, ...hooks }, mqtt });
}

// ---- MQTT.js -----------------------------------------------------------------------------------

/** MQTT.js 5.0 authenticating with SCRAM-SHA-256 as `user`; `handleAuth` answers the server-first-message. */
function scramClient(
  url: string,
  user: string,
  password: string,
  options: IClientOptions = {},
): { client: MqttClient; scram: ScramClient } {
  const scramSide = new ScramClient(user, password);
  const client = mqttClient(url, {
    protocolVersion: 5,
    clientId: `mqttjs-${user}`,
    ...options,
    properties: { authenticationMethod: SCRAM_SHA_256, authenticationData: scramSide.first() },
  });
  client.handleAuth = (packet, callback) => {
    try {
      const authenticationData = scramSide.final(packet.properties?.authenticationData);
      callback(undefined, {
        cmd: 'auth',
        reasonCode: 0x18,
        properties: { authenticationMethod: SCRAM_SHA_256, authenticationData },
      });
    } catch (error) {
      callback(error as Error);
    }
  };
  return { client, scram: scramSide };
}

/** The CONNACK refusal code an MQTT.js client got. */
async function refusalOf(client: MqttClient): Promise<number> {
  const error = await connackOf(client).then(
    () => assert.fail('the broker accepted the connection'),
    (e: unknown) => e as { code: number },
  );
  return error.code;
}

describe('MQTT.js: SCRAM-SHA-256 at CONNECT', { timeout: 30_000 }, () => {
  test('the right password: CONNACK 0x00 names the method and carries server-final data the client verifies', async () => {
    const requests: AuthenticationRequest[] = [];
    const b = await scramBroker({
      authenticate: (request) => {
        requests.push(request);
        return true;
      },
    });
    const connected: ClientInfo[] = [];
    b.broker.on('clientConnected', (client) => connected.push(client));
    const { client, scram: side } = scramClient(b.url, 'alice', 'wonderland');
    const connack = await connackOf(client);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, SCRAM_SHA_256);
    assert.ok(side.verify(connack.properties?.authenticationData), 'v= proves the server holds the verifier');
    // The authenticate hook still runs, told who SCRAM proved the client to be.
    assert.deepEqual(requests[0]?.enhancedAuthentication, { method: SCRAM_SHA_256, username: 'alice' });
    assert.equal(connected[0]?.username, 'alice');
    // The connection works.
    const got = collect(client);
    await client.subscribeAsync('scram/ok', { qos: 1 });
    await client.publishAsync('scram/ok', 'hello', { qos: 1 });
    await untilTopic(got, 'scram/ok');
  });

  test('the authenticate hook may still refuse a client SCRAM accepted (here: banned, 0x8A)', async () => {
    const b = await scramBroker({ authenticate: () => ({ refuse: 'banned' }) });
    assert.equal(await refusalOf(scramClient(b.url, 'alice', 'wonderland').client), 0x8a);
  });

  test('a wrong password: CONNACK 0x87 (Not authorized), no session', async () => {
    const b = await scramBroker();
    assert.equal(await refusalOf(scramClient(b.url, 'alice', 'Wonderland').client), 0x87);
    assert.equal(b.broker.broker.sessions.size, 0);
  });

  test('an unknown user: the same CONNACK 0x87 as a wrong password', async () => {
    const b = await scramBroker();
    assert.equal(await refusalOf(scramClient(b.url, 'mallory', 'wonderland').client), 0x87);
  });

  test('an unknown method: CONNACK 0x8C (Bad authentication method, MQTT-4.12.0-1)', async () => {
    const b = await scramBroker();
    const client = mqttClient(b.url, {
      protocolVersion: 5,
      clientId: 'kerberos',
      properties: { authenticationMethod: 'GSSAPI', authenticationData: Buffer.from('ticket') },
    });
    assert.equal(await refusalOf(client), 0x8c);
  });

  test('a broker offering no method answers 0x8C to SCRAM too, and connects clients without a method', async () => {
    const b = await broker();
    assert.equal(await refusalOf(scramClient(b.url, 'alice', 'wonderland').client), 0x8c);
    const plain = mqttClient(b.url, { protocolVersion: 5, clientId: 'plain' });
    assert.equal((await connackOf(plain)).properties?.authenticationMethod, undefined);
  });
});

// ---- the raw client: exact packets -----------------------------------------------------------

function connectPacket(clientId: string, data: Buffer, fields: Partial<ConnectPacket> = {}): ConnectPacket {
  return {
    type: 'connect',
    protocolVersion: 5,
    clean: true,
    keepAlive: 60,
    clientId,
    properties: { authenticationMethod: SCRAM_SHA_256, authenticationData: data },
    ...fields,
  };
}

function authPacket(reasonCode: number, data: Buffer | undefined, method = SCRAM_SHA_256): AuthPacket {
  return {
    type: 'auth',
    reasonCode,
    properties: { authenticationMethod: method, ...(data === undefined ? {} : { authenticationData: data }) },
  };
}

/** Sends a SCRAM CONNECT and returns the server's AUTH 0x18, checked. */
async function challenge(
  r: RawClient,
  side: ScramClient,
  clientId: string,
  fields = {},
): Promise<AuthPacket> {
  r.send(connectPacket(clientId, side.first(), fields));
  const auth = await r.next('auth');
  assert.equal(auth.reasonCode, 0x18, 'Continue authentication (MQTT-4.12.0-2)');
  assert.equal(auth.properties?.authenticationMethod, SCRAM_SHA_256, 'the same method (MQTT-4.12.0-5)');
  return auth;
}

/** A raw 5.0 client through the whole SCRAM exchange as `user`; fails unless CONNACK 0x00 verifies. */
async function rawScram(
  b: TestBroker,
  clientId: string,
  fields: Partial<ConnectPacket> = {},
): Promise<RawClient> {
  const r = await raw(b.port, 5);
  const side = new ScramClient('alice', 'wonderland');
  const auth = await challenge(r, side, clientId, fields);
  r.send(authPacket(0x18, side.final(auth.properties?.authenticationData)));
  const connack = await r.next('connack');
  assert.equal(connack.reasonCode, 0);
  assert.ok(side.verify(connack.properties?.authenticationData));
  return r;
}

/** Sends AUTH 0x19 and answers the challenge as `user`; returns what the broker answered last. */
async function reauthenticate(
  r: RawClient,
  user: string,
  password: string,
): Promise<{ side: ScramClient; last: Packet }> {
  const side = new ScramClient(user, password);
  r.send(authPacket(0x19, side.first()));
  const auth = await r.next('auth');
  assert.equal(auth.reasonCode, 0x18);
  r.send(authPacket(0x18, side.final(auth.properties?.authenticationData)));
  await until(() => r.packets.some(isAnswer), 'AUTH or DISCONNECT');
  return { side, last: r.packets.splice(r.packets.findIndex(isAnswer), 1)[0]! };
}

function isAnswer(packet: Packet): boolean {
  return packet.type === 'auth' || packet.type === 'disconnect';
}

describe('the raw client: the exchange at CONNECT', { timeout: 30_000 }, () => {
  test('AUTH before CONNECT closes the connection with nothing sent (MQTT-3.1.0-1)', async () => {
    const b = await scramBroker();
    const r = await raw(b.port, 5);
    r.sendBytes(
      bytes(`
        f0 11                        # AUTH, remaining length 17
        18                           # Continue authentication
        0f 15 000c "SCRAM-SHA-256"   # properties: Authentication Method
      `),
    );
    await r.closedByBroker();
    assert.deepEqual(r.packets, []);
  });

  const misbehaviours: [string, Packet][] = [
    ['AUTH with another method (MQTT-4.12.0-5)', authPacket(0x18, Buffer.from('c=biws'), 'SCRAM-SHA-1')],
    ['AUTH 0x19 (Re-authenticate) before CONNACK', authPacket(0x19, Buffer.from('n,,n=alice,r=x'))],
    ['PUBLISH', publishPacket('during/exchange', { payload: Buffer.from('too early') })],
    ['SUBSCRIBE', { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'x', qos: 0 }] }],
    ['PINGREQ', { type: 'pingreq' }],
  ];
  for (const [what, packet] of misbehaviours) {
    test(`${what} during the exchange: CONNACK 0x82 and close, no session`, async () => {
      const b = await scramBroker();
      const watcher = mqttClient(b.url, { protocolVersion: 5, clientId: 'watcher' });
      await connackOf(watcher);
      const got = collect(watcher);
      await watcher.subscribeAsync('during/#', { qos: 1 });

      const r = await raw(b.port, 5);
      await challenge(r, new ScramClient('alice', 'wonderland'), 'misbehaving');
      r.send(packet);
      const connack = await r.next('connack');
      assert.equal(connack.reasonCode, 0x82);
      await r.closedByBroker();
      assert.ok(!b.broker.broker.sessions.has('misbehaving'));
      // Marker: a publish sent during the exchange was not routed ahead of it.
      await b.broker.publish({ topic: 'during/marker', payload: 'marker', qos: 1 });
      await untilTopic(got, 'during/marker');
      assert.deepEqual(
        got.map((m) => m.topic),
        ['during/marker'],
      );
    });
  }

  test('DISCONNECT during the exchange: closed, no CONNACK, no session', async () => {
    const b = await scramBroker();
    const r = await raw(b.port, 5);
    await challenge(r, new ScramClient('alice', 'wonderland'), 'gives-up');
    r.send({ type: 'disconnect', reasonCode: 0 });
    await r.closedByBroker();
    assert.deepEqual(r.packets, []);
    assert.ok(!b.broker.broker.sessions.has('gives-up'));
  });

  test('a client that never answers the challenge is closed by the connect timeout, without CONNACK', async () => {
    const b = await scramBroker({}, { connectTimeout: 300 });
    const r = await raw(b.port, 5);
    await challenge(r, new ScramClient('alice', 'wonderland'), 'silent');
    await r.closedByBroker();
    assert.deepEqual(r.packets, []);
  });

  test('the connect timeout bounds the whole exchange, however lively: a method that never ends is cut off', async () => {
    const endless: AuthConversation = {
      step: async () => ({ status: 'continue', data: Buffer.from('more') }),
    };
    const b = await broker({
      hooks: { enhancedAuthentication: (method) => (method === 'ENDLESS' ? endless : undefined) },
      mqtt: { connectTimeout: 300 },
    });
    const r = await raw(b.port, 5);
    r.send({
      type: 'connect',
      protocolVersion: 5,
      clean: true,
      keepAlive: 60,
      clientId: 'endless',
      properties: { authenticationMethod: 'ENDLESS' },
    });
    let rounds = 0;
    // Answer every challenge at once: an idle timer alone would never fire.
    for (;;) {
      await until(() => r.closed || r.packets.length > 0, 'a challenge or the close');
      const packet = r.packets.shift();
      if (packet === undefined) break;
      assert.equal(packet.type, 'auth');
      rounds++;
      r.send(authPacket(0x18, Buffer.from('again'), 'ENDLESS'));
    }
    assert.ok(rounds > 0);
    assert.ok(!b.broker.broker.sessions.has('endless'));
  });

  test('a conversation that throws: CONNACK 0x88 (Server unavailable), reported to onError', async () => {
    const errors: unknown[] = [];
    const b = await broker({
      onError: (error) => errors.push(error),
      hooks: {
        enhancedAuthentication: scramAuthentication(() => {
          throw new Error('credential store down');
        }),
      },
    });
    const r = await raw(b.port, 5);
    r.send(connectPacket('unlucky', new ScramClient('alice', 'wonderland').first()));
    assert.equal((await r.next('connack')).reasonCode, 0x88);
    await r.closedByBroker();
    assert.match(String(errors[0]), /credential store down/);
  });
});

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
