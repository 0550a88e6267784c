import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientInfo } from '../../src/broker/hooks.js';
import { until } from '../helpers/broker.js';
import { collect, connackOf, id, perTest, untilPayload } from '../helpers/mqtt-client.js';
import { aclOptions, basic } from './access.js';
import { ADMIN, adminJson, fetchJson, httpBroker } from './support.js';

/**
 * `POST /api/v1/publish` and `/publish/batch` end to end: Node's fetch publishes, MQTT.js
 * subscribers (5.0 for properties) receive over TCP.
 */

const { mqttClient } = perTest();

/** A connected MQTT 5 subscriber of `filter` and what it receives. */
async function subscriber(
  mqttUrl: string,
  filter: string,
  options: { username?: string; password?: string } = {},
) {
  const client = mqttClient(mqttUrl, { clientId: id('sub'), protocolVersion: 5, ...options });
  await connackOf(client);
  const received = collect(client);
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, received };
}

function post(base: string, path: string, body: unknown, headers: Record<string, string> = ADMIN) {
  return fetchJson(base, path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('POST /api/v1/publish', () => {
  test('a text payload with MQTT 5 properties reaches an MQTT 5 subscriber, published by an http client', async () => {
    const { base, mqttUrl, cicada } = await httpBroker();
    const { received } = await subscriber(mqttUrl, 'push/#');
    const publishers: ClientInfo[] = [];
    cicada.on('published', (_message, client) => {
      if (client !== undefined) publishers.push(client);
    });
    const answer = await post(base, '/api/v1/publish', {
      topic: 'push/text',
      payload: 'héllo',
      properties: {
        contentType: 'text/plain',
        payloadFormatIndicator: true,
        responseTopic: 'push/replies',
        correlationData: Buffer.from([1, 2, 3]).toString('base64'),
        userProperties: [
          ['a', '1'],
          ['a', '2'],
        ],
        messageExpiryInterval: 600,
      },
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { ok: true });
    await untilPayload(received, 'héllo');
    const { packet, topic } = received[0]!;
    assert.equal(topic, 'push/text');
    assert.equal(packet.qos, 0);
    assert.equal(packet.properties?.contentType, 'text/plain');
    assert.equal(packet.properties?.payloadFormatIndicator, true);
    assert.equal(packet.properties?.responseTopic, 'push/replies');
    assert.deepEqual([...(packet.properties?.correlationData ?? [])], [1, 2, 3]);
    assert.deepEqual({ ...packet.properties?.userProperties }, { a: ['1', '2'] });
    const expiry = packet.properties?.messageExpiryInterval ?? 0;
    assert.ok(expiry > 0 && expiry <= 600, `expiry ${expiry}`);
    assert.equal(publishers.length, 1);
    assert.equal(publishers[0]!.protocol, 'http');
    assert.equal(publishers[0]!.clientId, 'http:admin');
  });

  test('a base64 payload arrives byte for byte', async () => {
    const { base, mqttUrl } = await httpBroker();
    const { received } = await subscriber(mqttUrl, 'bin');
    const bytes = Buffer.from([0, 0xff, 0xfe, 0x80, 10, 13]);
    const answer = await post(base, '/api/v1/publish', {
      topic: 'bin',
      payload: bytes.toString('base64'),
      encoding: 'base64',
    });
    assert.equal(answer.status, 200);
    await until(() => received.length === 1, 'the binary message');
    assert.deepEqual(received[0]!.payload, bytes);
  });

  test('QoS 1 retained: answered once stored, delivered at QoS 1, and kept for a later subscriber', async () => {
    const { base, mqttUrl } = await httpBroker();
    const early = await subscriber(mqttUrl, 'state/+');
    const answer = await post(base, '/api/v1/publish', {
      topic: 'state/lamp',
      payload: 'on',
      qos: 1,
      retain: true,
    });
    assert.equal(answer.status, 200);
    await untilPayload(early.received, 'on');
    assert.equal(early.received[0]!.packet.qos, 1);
    const late = await subscriber(mqttUrl, 'state/#');
    await untilPayload(late.received, 'on');
    assert.equal(late.received[0]!.topic, 'state/lamp');
    assert.equal(late.received[0]!.packet.retain, true);
  });

  test('bad bodies and topics are 400 with a JSON error; nothing is published', async () => {
    const { base, mqttUrl } = await httpBroker({ maximumQoS: 1 });
    const { received } = await subscriber(mqttUrl, '#');
    const cases: [string, unknown][] = [
      ['not JSON', '{"topic":'],
      ['an array', [{ topic: 'a', payload: 'x' }]],
      ['no topic', { payload: 'x' }],
      ['an empty topic', { topic: '', payload: 'x' }],
      ['a + wildcard', { topic: 'a/+/b', payload: 'x' }],
      ['a # wildcard', { topic: 'a/#', payload: 'x' }],
      ['U+0000 in the topic', { topic: 'a\u0000b', payload: 'x' }],
      ['a lone surrogate', { topic: 'a\ud800', payload: 'x' }],
      ['a topic too long', { topic: 'x'.repeat(70_000), payload: 'x' }],
      ['a number payload', { topic: 'a', payload: 5 }],
      ['bad base64', { topic: 'a', payload: 'no*base64', encoding: 'base64' }],
      ['an unknown encoding', { topic: 'a', payload: 'x', encoding: 'hex' }],
      ['QoS 3', { topic: 'a', payload: 'x', qos: 3 }],
      ['QoS above the maximum', { topic: 'a', payload: 'x', qos: 2 }],
      ['retain not boolean', { topic: 'a', payload: 'x', retain: 'yes' }],
      ['an unknown field', { topic: 'a', payload: 'x', colour: 'red' }],
      ['an unknown property', { topic: 'a', payload: 'x', properties: { topicAlias: 3 } }],
      ['bad user properties', { topic: 'a', payload: 'x', properties: { userProperties: [['k']] } }],
      ['a negative expiry', { topic: 'a', payload: 'x', properties: { messageExpiryInterval: -1 } }],
      ['a wildcard response topic', { topic: 'a', payload: 'x', properties: { responseTopic: 'r/#' } }],
      [
        'UTF-8 declared, bytes not',
        { topic: 'a', payload: '/w==', encoding: 'base64', properties: { payloadFormatIndicator: true } },
      ],
    ];
    for (const [what, body] of cases) {
      const answer = await post(base, '/api/v1/publish', body);
      assert.equal(answer.status, 400, what);
      const error = (answer.body as { error: { code: string; message: string } }).error;
      assert.equal(typeof error.code, 'string', what);
      assert.ok(error.message.length > 0, what);
    }
    // A marker: everything before it was refused, so it is the only message.
    assert.equal((await post(base, '/api/v1/publish', { topic: 'marker', payload: 'm' })).status, 200);
    await untilPayload(received, 'm');
    assert.deepEqual(
      received.map((m) => m.topic),
      ['marker'],
    );
  });
});

describe('POST /api/v1/publish/batch', () => {
  test('publishes the good items in order and reports the bad one in its place', async () => {
    const { base, mqttUrl } = await httpBroker();
    const { received } = await subscriber(mqttUrl, 'batch/#');
    const answer = await post(base, '/api/v1/publish/batch', [
      { topic: 'batch/1', payload: 'one', qos: 1 },
      { topic: 'batch/+', payload: 'bad' },
      { topic: 'batch/3', payload: 'three' },
    ]);
    assert.equal(answer.status, 200);
    const { results } = answer.body as { results: ({ ok: true } | { error: { code: string } })[] };
    assert.equal(results.length, 3);
    assert.deepEqual(results[0], { ok: true });
    assert.ok('error' in results[1]! && results[1].error.code === 'bad-request');
    assert.deepEqual(results[2], { ok: true });
    await untilPayload(received, 'three');
    assert.deepEqual(
      received.map((m) => m.payload.toString()),
      ['one', 'three'],
    );
  });

  test('a body that is not an array is a 400', async () => {
    const { base } = await httpBroker();
    const answer = await post(base, '/api/v1/publish/batch', { topic: 'a', payload: 'x' });
    assert.equal(answer.status, 400);
  });
});

describe('publishing under access control', () => {
  test('no credentials or a wrong password is 401 with WWW-Authenticate', async () => {
    const { base } = await httpBroker(aclOptions());
    const body = { topic: 'alice/x', payload: 'x' };
    const none = await post(base, '/api/v1/publish', body, {});
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /Basic/);
    const wrong = await post(base, '/api/v1/publish', body, basic('alice', 'nope'));
    assert.equal(wrong.status, 401);
  });

  test('the ACL decides per topic, for single and batch publishes; the admin token bypasses it', async () => {
    const { base, mqttUrl } = await httpBroker(aclOptions());
    const { received } = await subscriber(mqttUrl, 'alice/#', {
      username: 'alice',
      password: 'alice-secret',
    });
    const denied = await post(base, '/api/v1/publish', { topic: 'news/today', payload: 'x' }, basic('alice'));
    assert.equal(denied.status, 403);
    assert.equal((denied.body as { error: { code: string } }).error.code, 'forbidden');
    assert.equal(
      (await post(base, '/api/v1/publish', { topic: 'alice/in', payload: 'x' }, basic('bob'))).status,
      403,
    );
    const allowed = await post(
      base,
      '/api/v1/publish',
      { topic: 'alice/in', payload: 'from alice' },
      basic('alice'),
    );
    assert.equal(allowed.status, 200);
    const batch = await post(
      base,
      '/api/v1/publish/batch',
      [
        { topic: 'news/x', payload: 'no' },
        { topic: 'alice/in', payload: 'batched' },
      ],
      basic('alice'),
    );
    const { results } = batch.body as { results: ({ ok: true } | { error: { code: string } })[] };
    assert.ok('error' in results[0]! && results[0].error.code === 'forbidden');
    assert.deepEqual(results[1], { ok: true });
    const admin = await adminJson(base, '/api/v1/publish', {
      method: 'POST',
      body: JSON.stringify({ topic: 'alice/in', payload: 'from admin' }),
    });
    assert.equal(admin.status, 200);
    await untilPayload(received, 'from admin');
    assert.deepEqual(
      received.map((m) => m.payload.toString()),
      ['from alice', 'batched', 'from admin'],
    );
  });
});
