import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import { scramAuthentication } from '../../src/auth/scram.js';
import { SCRAM_SHA_256 } from '../../src/auth/scram-credential.js';
import type {
  AuthConversation,
  AuthenticationRequest,
  BrokerHooks,
  ClientInfo,
} from '../../src/broker/hooks.js';
import type { Packet } from '../../src/codec/mqtt/index.js';
import { type TestBroker, until } from '../helpers/broker.js';
import { bytes } from '../helpers/bytes.js';
import { authPacket, challenge, connectPacket, scramHook } from '../helpers/enhanced-auth.js';
import { collect, connackOf, perTest, untilTopic } from '../helpers/mqtt-client.js';
import { publishPacket } from '../helpers/raw-client.js';
import { ScramClient } from '../helpers/scram-client.js';

/**
 * MQTT 5 enhanced authentication at CONNECT, end to end (MQTT 4.12, AUTH 3.15) with
 * SCRAM-SHA-256: MQTT.js through CONNECT/AUTH/CONNACK, and the raw client for exact packets and
 * misbehaviour. Re-authentication is in reauthentication.test.ts.
 *
 * Refusal codes, as chosen: a failed SCRAM proof (wrong password or unknown user) is 0x87 Not
 * authorized, as the User Name and Password fields played no part and 0x87 is also a valid
 * DISCONNECT code for a failed re-authentication (0x86 is CONNACK-only). An unknown method is 0x8C.
 * A protocol error before CONNACK is answered with CONNACK 0x82, not DISCONNECT: the server
 * sends nothing but AUTH before a CONNACK (MQTT-3.2.0-1).
 */

const { broker, mqttClient, raw } = perTest();

/** A broker offering SCRAM-SHA-256 to alice and bob, with `hooks` added. */
function scramBroker(hooks: BrokerHooks = {}, mqtt = {}): Promise<TestBroker> {
  return broker({ hooks: { enhancedAuthentication: scramHook, ...hooks }, mqtt });
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
