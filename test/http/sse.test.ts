import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import type { DropReason } from '../../src/broker/hooks.js';
import { until } from '../helpers/broker.js';
import { connackOf, id, perTest } from '../helpers/mqtt-client.js';
import { aclOptions, basic } from './access.js';
import { openSse, type SseReader } from './sse-reader.js';
import { ADMIN, fetchJson, httpBroker } from './support.js';

/**
 * `GET /api/v1/sse` end to end with Node's fetch as the EventSource: messages published by
 * MQTT.js over TCP arrive as events, keep-alive comments, Last-Event-ID replay, the
 * subscribe ACL, and the stream's session coming and going with the stream; then a real
 * EventSource in headless Chromium, same-origin with the broker's HTTP listener.
 */

const CHROMIUM = '/usr/bin/chromium';

const { cleanups, mqttClient } = perTest();

/** A connected MQTT 5 publisher. */
async function publisher(mqttUrl: string, options: { username?: string; password?: string } = {}) {
  const client = mqttClient(mqttUrl, { clientId: id('pub'), protocolVersion: 5, ...options });
  await connackOf(client);
  return client;
}

/** Opens a stream, closed after the test. */
async function stream(url: string, headers: Record<string, string> = ADMIN): Promise<SseReader> {
  const reader = await openSse(url, headers);
  cleanups.push(() => reader.close());
  return reader;
}

/** The broker's SSE sessions. */
function sseSessions(cicada: { broker: { sessions: Map<string, unknown> } }): string[] {
  return [...cicada.broker.sessions.keys()].filter((key) => key.startsWith('sse-'));
}

describe('GET /api/v1/sse', () => {
  test('streams messages matching a/+/b published over MQTT, and not others', async () => {
    const { base, mqttUrl } = await httpBroker();
    const sse = await stream(`${base}/api/v1/sse?filter=${encodeURIComponent('a/+/b')}`);
    assert.equal(sse.status, 200);
    assert.match(sse.headers.get('content-type') ?? '', /^text\/event-stream/);
    const pub = await publisher(mqttUrl);
    await pub.publishAsync('a/x/c', 'no');
    await pub.publishAsync('a/x/b', 'yes 1', {
      properties: { contentType: 'text/plain', userProperties: { k: 'v' } },
    });
    await pub.publishAsync('b/x/b', 'no');
    await pub.publishAsync('a/y/b', Buffer.from([0xff, 0]));
    await sse.untilTopic('a/y/b');
    const messages = sse.messages();
    assert.deepEqual(
      messages.map((m) => m.topic),
      ['a/x/b', 'a/y/b'],
    );
    assert.equal(messages[0]!.payload, 'yes 1');
    assert.equal(messages[0]!.encoding, 'utf8');
    assert.equal(messages[0]!.retain, false);
    assert.equal(messages[0]!.properties.contentType, 'text/plain');
    assert.deepEqual(messages[0]!.properties.userProperties, [['k', 'v']]);
    assert.equal(messages[1]!.encoding, 'base64');
    assert.deepEqual(Buffer.from(messages[1]!.payload, 'base64'), Buffer.from([0xff, 0]));
    assert.ok(Number(messages[1]!.id) > Number(messages[0]!.id), 'ids increase');
  });

  test('a new stream gets the retained messages of its filters first, without ids', async () => {
    const { base, cicada } = await httpBroker();
    await cicada.publish({ topic: 'r/1', payload: 'kept', retain: true });
    const sse = await stream(`${base}/api/v1/sse?filter=r/%23`);
    await sse.untilTopic('r/1');
    const [retained] = sse.messages();
    assert.equal(retained!.retain, true);
    assert.equal(retained!.id, undefined);
  });

  test('sends keep-alive comments every sseKeepAlive seconds', async () => {
    const { base } = await httpBroker({ http: { sseKeepAlive: 0.05 } });
    const sse = await stream(`${base}/api/v1/sse?filter=k`);
    await until(() => sse.comments.includes('keep-alive'), 'a keep-alive comment');
  });

  test('Last-Event-ID replays the matching messages missed, then continues live; no retained again', async () => {
    const { base, cicada } = await httpBroker();
    await cicada.publish({ topic: 'feed/state', payload: 'retained', retain: true });
    const url = `${base}/api/v1/sse?filter=feed/%2B`;
    const first = await stream(url);
    await cicada.publish({ topic: 'feed/1', payload: 'seen' });
    await first.untilTopic('feed/1');
    const lastId = first.lastEventId();
    assert.ok(lastId !== undefined);
    first.close();
    await until(() => sseSessions(cicada).length === 0, 'the first stream to end its session');

    await cicada.publish({ topic: 'feed/2', payload: 'missed 2' });
    await cicada.publish({ topic: 'other/x', payload: 'not for this stream' });
    await cicada.publish({ topic: 'feed/3', payload: 'missed 3' });
    const second = await stream(url, { ...ADMIN, 'last-event-id': lastId });
    await second.untilTopic('feed/3');
    await cicada.publish({ topic: 'feed/4', payload: 'live' });
    await second.untilTopic('feed/4');
    const messages = second.messages();
    assert.deepEqual(
      messages.map((m) => m.payload),
      ['missed 2', 'missed 3', 'live'],
    );
    assert.ok(messages.every((m) => Number(m.id) > Number(lastId)));
  });

  test('a Last-Event-ID outside the replay window starts the stream afresh, retained messages first', async () => {
    const { base, cicada } = await httpBroker();
    await cicada.publish({ topic: 'w/state', payload: 'retained', retain: true });
    const sse = await stream(`${base}/api/v1/sse?filter=w/%23`, { ...ADMIN, 'last-event-id': '1' });
    await sse.untilTopic('w/state');
    assert.equal(sse.messages()[0]!.retain, true);
  });

  test('HEAD answers as a stream would, without opening one', async () => {
    const { base, cicada } = await httpBroker();
    const response = await fetch(`${base}/api/v1/sse?filter=h`, { method: 'HEAD', headers: ADMIN });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.deepEqual(sseSessions(cicada), []);
  });

  test('bad or missing filters are 400', async () => {
    const { base } = await httpBroker();
    for (const query of ['', '?filter=', '?filter=a/%23/b', '?filter=a%2Bb', '?filter=%24share/g/a']) {
      const { status } = await fetchJson(base, `/api/v1/sse${query}`, { headers: ADMIN });
      assert.equal(status, 400, query);
    }
  });

  test('under access control: 401 without credentials, 403 for a denied filter, allowed filters stream', async () => {
    const { base, mqttUrl, cicada } = await httpBroker(aclOptions());
    assert.equal((await fetchJson(base, '/api/v1/sse?filter=news/%23')).status, 401);
    const denied = await fetchJson(base, '/api/v1/sse?filter=news/%23&filter=alice/%23', {
      headers: basic('bob'),
    });
    assert.equal(denied.status, 403);
    assert.equal((denied.body as { error: { code: string } }).error.code, 'forbidden');
    assert.deepEqual(sseSessions(cicada), [], 'no session for a refused stream');
    const sse = await stream(`${base}/api/v1/sse?filter=news/%23`, basic('bob'));
    assert.equal(sse.status, 200);
    const alice = await publisher(mqttUrl, { username: 'alice', password: 'alice-secret' });
    await alice.publishAsync('alice/own', 'mine');
    await cicada.publish({ topic: 'news/today', payload: 'headline' });
    await sse.untilTopic('news/today');
    assert.deepEqual(
      sse.messages().map((m) => m.topic),
      ['news/today'],
    );
  });

  test('a stream is a session while open; it ends on disconnect and on broker close', async () => {
    const { base, cicada } = await httpBroker();
    const connected: string[] = [];
    cicada.on('clientConnected', (client) => connected.push(client.protocol));
    const leaving = await stream(`${base}/api/v1/sse?filter=s`);
    const staying = await stream(`${base}/api/v1/sse?filter=s`);
    assert.deepEqual(connected, ['http', 'http']);
    assert.equal(sseSessions(cicada).length, 2);
    leaving.close();
    await until(() => sseSessions(cicada).length === 1, 'the closed stream to end its session');
    await cicada.close();
    await staying.ended;
    assert.equal(sseSessions(cicada).length, 0);
    assert.equal(staying.events.at(-1)?.event, 'close');
  });

  test('a client that stops reading has messages dropped, then its stream closed', async () => {
    const { base, cicada } = await httpBroker({ http: { sseKeepAlive: 0.05 } });
    const drops: DropReason[] = [];
    cicada.on('dropped', (_message, clientId, reason) => {
      if (clientId.startsWith('sse-')) drops.push(reason);
    });
    // A raw socket that sends the request and never reads the answer.
    const { connect } = await import('node:net');
    const socket = connect(Number(new URL(base).port), '127.0.0.1');
    cleanups.push(() => socket.destroy());
    socket.write(
      `GET /api/v1/sse?filter=big HTTP/1.1\r\nHost: x\r\nAuthorization: ${ADMIN.authorization}\r\n\r\n`,
    );
    socket.pause();
    await until(() => sseSessions(cicada).length === 1, 'the stream to start');
    const payload = Buffer.alloc(64 * 1024, 'x');
    // Publish until the broker drops for slowness (the kernel buffers fill first).
    for (let i = 0; i < 10_000 && !drops.includes('slow-consumer'); i++) {
      await cicada.publish({ topic: 'big', payload });
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(drops.includes('slow-consumer'), 'QoS 0 dropped for a slow consumer');
    await until(() => sseSessions(cicada).length === 0, 'the stalled stream to be closed');
  });
});

/** What the page keeps on `window`. */
interface PageState {
  open?: boolean;
  received: { id: string; topic: string; payload: string }[];
}

describe('a browser EventSource', { timeout: 60_000 }, () => {
  test('receives what MQTT.js publishes, and resumes with Last-Event-ID after the broker ends the stream', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: install the Debian package \`chromium\` for the browser test`);
    // No access control: callers are anonymous clients, which an EventSource (no headers) can be.
    const { base, mqttUrl, cicada } = await httpBroker();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    cleanups.push(() => browser.close());
    const page = await browser.newPage();
    // Same origin as the stream: any page of the listener will do.
    await page.goto(`${base}/healthz`);
    await page.evaluate(() => {
      const state = globalThis as unknown as PageState;
      state.received = [];
      const source = new EventSource('/api/v1/sse?filter=browser/%2B');
      source.onopen = () => {
        state.open = true;
      };
      source.addEventListener('message', (event) => {
        const data = JSON.parse(event.data) as { topic: string; payload: string };
        state.received.push({ id: event.lastEventId, topic: data.topic, payload: data.payload });
      });
    });
    const received = async (count: number) => {
      await page.waitForFunction((n) => (globalThis as unknown as PageState).received.length >= n, count, {
        timeout: 30_000,
      });
      return page.evaluate(() => (globalThis as unknown as PageState).received);
    };
    await page.waitForFunction(() => (globalThis as unknown as PageState).open === true, null, {
      timeout: 15_000,
    });
    const pub = await publisher(mqttUrl);
    await pub.publishAsync('browser/one', 'hello, EventSource');
    const [first] = await received(1);
    assert.equal(first!.topic, 'browser/one');
    assert.equal(first!.payload, 'hello, EventSource');

    // The administrator ends the stream; the browser reconnects by itself with Last-Event-ID.
    const [session] = sseSessions(cicada);
    const kicked = await fetchJson(base, `/api/v1/sessions/${session}`, { method: 'DELETE', headers: ADMIN });
    assert.equal(kicked.status, 204);
    // Published while no stream is open (the browser waits seconds before retrying): only the replay has it.
    assert.deepEqual(sseSessions(cicada), []);
    await cicada.publish({ topic: 'browser/two', payload: 'while away' });
    const all = await received(2);
    assert.deepEqual(
      all.map((m) => m.payload),
      ['hello, EventSource', 'while away'],
    );
    assert.ok(Number(all[1]!.id) > Number(first!.id));
  });
});
