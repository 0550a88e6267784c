import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { ClientInfo } from '../../src/broker/hooks.js';
import { collect, connackOf, id, perTest, untilPayload } from '../helpers/mqtt-client.js';
import { startWsBroker, type WsBroker } from '../transport/ws-fixture.js';

/**
 * A real browser (Chromium, headless) runs MQTT.js's browser bundle in a page and talks
 * MQTT over `ws://127.0.0.1:PORT/mqtt` with clients on TCP, both ways.
 */

const CHROMIUM = '/usr/bin/chromium';

/** What the page keeps on `window` for the test to read. */
interface PageState {
  ready?: boolean;
  error?: string;
  received: { topic: string; payload: string }[];
}

/** The page: connects to the broker URL in its query string, subscribes, records messages. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Cicada over WebSocket</title>
<script src="/mqtt.min.js"></script></head>
<body><script>
  const params = new URLSearchParams(location.search);
  window.received = [];
  const client = mqtt.connect(params.get('broker'), {
    clientId: params.get('clientId'),
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  window.client = client;
  client.on('error', (error) => { window.error = String(error); });
  client.on('message', (topic, payload) => {
    window.received.push({ topic, payload: new TextDecoder().decode(payload) });
  });
  client.on('connect', () => {
    client.subscribe(params.get('topic'), { qos: 1 }, (error) => {
      if (error) window.error = String(error); else window.ready = true;
    });
  });
</script></body></html>`;

let browser: Browser | undefined;
let pageServer: Server | undefined;
let pageOrigin = '';

before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install the Debian package \`chromium\` for the browser test`);
  const packageJson = createRequire(import.meta.url).resolve('mqtt/package.json');
  const bundle = await readFile(join(dirname(packageJson), 'dist', 'mqtt.min.js'));
  pageServer = createServer((request, response) => {
    if (request.url === '/mqtt.min.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    } else if (request.url?.startsWith('/?')) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => pageServer!.listen(0, '127.0.0.1', resolve));
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
  pageServer?.close();
});

const { cleanups, mqttClient } = perTest();

/** A page connected to `b` over WebSocket as `clientId`, subscribed to `topic`. */
async function openPage(b: WsBroker, clientId: string, topic: string): Promise<Page> {
  const page = await browser!.newPage();
  cleanups.push(() => page.close());
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const query = new URLSearchParams({ broker: b.wsUrl, clientId, topic });
  await page.goto(`${pageOrigin}/?${query}`);
  await page.waitForFunction(
    () => {
      const state = globalThis as unknown as PageState;
      return state.ready === true || state.error !== undefined;
    },
    null,
    { timeout: 15_000 },
  );
  const error = await page.evaluate(() => (globalThis as unknown as PageState).error);
  assert.equal(error, undefined, `the page could not subscribe: ${error}`);
  assert.deepEqual(errors, [], 'no script errors in the page');
  return page;
}

describe('a browser speaks MQTT over WebSocket', { timeout: 60_000 }, () => {
  test('the page receives what an MQTT.js client on TCP publishes', async () => {
    const b = await startWsBroker();
    cleanups.push(() => b.close());
    const seen: ClientInfo[] = [];
    b.broker.on('clientConnected', (client) => seen.push(client));
    const page = await openPage(b, id('browser'), 'browser/news');
    assert.equal(
      seen[0]?.listener,
      'ws://127.0.0.1:0/mqtt',
      'the browser came in through the WebSocket listener',
    );
    assert.equal(seen[0]?.protocolVersion, 5);
    const publisher = mqttClient(b.tcpUrl, { protocolVersion: 4, clientId: id('tcp-pub') });
    await connackOf(publisher);
    await publisher.publishAsync('browser/news', 'hello, browser', { qos: 1 });
    await page.waitForFunction(() => (globalThis as unknown as PageState).received.length > 0, null, {
      timeout: 15_000,
    });
    const received = await page.evaluate(() => (globalThis as unknown as PageState).received);
    assert.deepEqual(received, [{ topic: 'browser/news', payload: 'hello, browser' }]);
  });

  test('an MQTT.js client on TCP receives what the page publishes', async () => {
    const b = await startWsBroker();
    cleanups.push(() => b.close());
    const subscriber = mqttClient(b.tcpUrl, { protocolVersion: 5, clientId: id('tcp-sub') });
    await connackOf(subscriber);
    const got = collect(subscriber);
    await subscriber.subscribeAsync('browser/out', { qos: 1 });
    const page = await openPage(b, id('browser'), 'browser/in');
    await page.evaluate(() => {
      const client = (globalThis as unknown as { client: { publish(t: string, p: string, o: object): void } })
        .client;
      client.publish('browser/out', 'hello from the browser', { qos: 1 });
    });
    await untilPayload(got, 'hello from the browser');
    assert.equal(got[0]!.topic, 'browser/out');
  });
});
