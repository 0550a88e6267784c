import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { ClientInfo } from '../../src/broker/hooks.js';
import { type Cicada, createBroker } from '../../src/index.js';
import { collect, connackOf, id, perTest, untilPayload } from '../helpers/mqtt-client.js';

/**
 * A real browser (Chromium, headless) runs @stomp/stompjs's browser bundle in a page and talks
 * STOMP over `ws://127.0.0.1:PORT/stomp` (subprotocol v12.stomp) with MQTT.js clients on TCP
 * on the other side, both ways: the desktop/web-app-to-phone case the topic mapping is for.
 */

const CHROMIUM = '/usr/bin/chromium';

/** What the page keeps on `window` for the test to read. */
interface PageState {
  ready?: boolean;
  error?: string;
  version?: string;
  received: { destination: string; body: string; headers: Record<string, string> }[];
}

/** The page: connects to the broker URL in its query string, subscribes, records messages. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Cicada STOMP over WebSocket</title>
<script src="/stomp.umd.min.js"></script></head>
<body><script>
  const params = new URLSearchParams(location.search);
  window.received = [];
  const client = new StompJs.Client({
    brokerURL: params.get('broker'),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  window.client = client;
  client.onStompError = (frame) => { window.error = frame.headers.message || 'ERROR frame'; };
  client.onWebSocketError = () => { window.error = window.error || 'WebSocket error'; };
  client.onConnect = (frame) => {
    window.version = frame.headers.version;
    client.subscribe(params.get('destination'), (message) => {
      window.received.push({
        destination: message.headers.destination,
        body: message.body,
        headers: message.headers,
      });
    }, { receipt: 'subscribed' });
    client.watchForReceipt('subscribed', () => { window.ready = true; });
  };
  client.activate();
</script></body></html>`;

let browser: Browser | undefined;
let pageServer: Server | undefined;
let pageOrigin = '';

before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install the Debian package \`chromium\` for the browser test`);
  // The package's exports hide package.json; its main entry lies under the package folder.
  const entry = createRequire(import.meta.url).resolve('@stomp/stompjs');
  const root = entry.slice(0, entry.lastIndexOf('/@stomp/stompjs/') + '/@stomp/stompjs/'.length);
  const bundle = await readFile(join(root, 'bundles', 'stomp.umd.min.js'));
  pageServer = createServer((request, response) => {
    if (request.url === '/stomp.umd.min.js') {
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

interface Brokers {
  cicada: Cicada;
  stompUrl: string;
  mqttUrl: string;
  seen: ClientInfo[];
}

/** A broker with STOMP over WebSocket and MQTT over TCP. */
async function start(): Promise<Brokers> {
  const cicada = createBroker({ onError: (e) => console.error('broker error:', e) });
  cleanups.push(() => cicada.close());
  const ws = await cicada.listen('ws://127.0.0.1:0/stomp');
  const tcp = await cicada.listen('mqtt://127.0.0.1:0');
  const seen: ClientInfo[] = [];
  cicada.broker.on('clientConnected', (client) => seen.push(client));
  return {
    cicada,
    stompUrl: `ws://127.0.0.1:${ws.port}/stomp`,
    mqttUrl: `mqtt://127.0.0.1:${tcp.port}`,
    seen,
  };
}

/** A page connected over STOMP and subscribed to `destination`. */
async function openPage(stompUrl: string, destination: string): Promise<Page> {
  const page = await browser!.newPage();
  cleanups.push(() => page.close());
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const query = new URLSearchParams({ broker: stompUrl, destination });
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

describe('a browser speaks STOMP over WebSocket', { timeout: 60_000 }, () => {
  test('the page receives, as a STOMP MESSAGE, what an MQTT.js client publishes', async () => {
    const b = await start();
    const page = await openPage(b.stompUrl, '/topic/browser.news');
    assert.equal(b.seen[0]?.protocol, 'stomp', 'the page came in over STOMP');
    assert.equal(await page.evaluate(() => (globalThis as unknown as PageState).version), '1.2');
    const publisher = mqttClient(b.mqttUrl, { protocolVersion: 5, clientId: id('tcp-pub') });
    await connackOf(publisher);
    await publisher.publishAsync('browser/news', 'hello, browser', {
      qos: 1,
      properties: { contentType: 'text/plain', userProperties: { source: 'mqtt' } },
    });
    await page.waitForFunction(() => (globalThis as unknown as PageState).received.length > 0, null, {
      timeout: 15_000,
    });
    const [message] = await page.evaluate(() => (globalThis as unknown as PageState).received);
    assert.equal(message?.destination, '/topic/browser.news');
    assert.equal(message?.body, 'hello, browser');
    assert.equal(message?.headers['content-type'], 'text/plain');
    assert.equal(message?.headers.source, 'mqtt', 'the user property arrives as a header');
  });

  test('an MQTT.js subscriber receives what the page SENDs, headers as user properties', async () => {
    const b = await start();
    const subscriber = mqttClient(b.mqttUrl, { protocolVersion: 5, clientId: id('tcp-sub') });
    await connackOf(subscriber);
    const got = collect(subscriber);
    await subscriber.subscribeAsync('browser/out', { qos: 1 });
    const page = await openPage(b.stompUrl, '/topic/browser.in');
    await page.evaluate(() => {
      const client = (
        globalThis as unknown as {
          client: { publish(p: { destination: string; body: string; headers: object }): void };
        }
      ).client;
      client.publish({
        destination: '/topic/browser.out',
        body: 'hello from the browser',
        headers: { 'content-type': 'text/plain', origin: 'chromium' },
      });
    });
    await untilPayload(got, 'hello from the browser');
    const message = got[0]!;
    assert.equal(message.topic, 'browser/out');
    assert.equal(message.packet.properties?.contentType, 'text/plain');
    assert.equal(message.packet.properties?.userProperties?.origin, 'chromium');
  });
});
