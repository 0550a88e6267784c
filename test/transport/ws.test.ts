import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import type { IClientOptions } from 'mqtt';
import type { ClientInfo } from '../../src/broker/hooks.js';
import { WebSocketTransport } from '../../src/transport/ws.js';
import { testCerts } from '../helpers/certs.js';
import { collect, connackOf, id, perTest, untilPayload, within } from '../helpers/mqtt-client.js';
import { WsRawClient } from '../helpers/ws-client.js';
import { transportContract } from './contract.js';
import { serverTls } from './tls-fixture.js';
import { startWsBroker, type WsBroker, wsClientStream } from './ws-fixture.js';

/**
 * MQTT over WebSocket (MQTT 6.0) end to end: the transport contract over ws: and wss:,
 * MQTT.js on WebSocket talking to MQTT.js on TCP at 3.1, 3.1.1 and 5.0, secure WebSocket
 * with the test CA, client certificates and certificate reload.
 */

const transport = new WebSocketTransport();

transportContract('ws', {
  secure: false,
  listen: (handler) => transport.listen(new URL('ws://127.0.0.1:0/mqtt'), handler),
  connect: (listener) => wsClientStream(`ws://127.0.0.1:${listener.port}/mqtt`),
});

transportContract('wss', {
  secure: true,
  listen: async (handler) =>
    transport.listen(new URL('wss://127.0.0.1:0/mqtt'), handler, { tls: await serverTls() }),
  connect: async (listener) =>
    wsClientStream(`wss://127.0.0.1:${listener.port}/mqtt`, { ca: (await testCerts()).ca.certPem }),
});

const { cleanups, mqttClient } = perTest();

async function wsBroker(...args: Parameters<typeof startWsBroker>): Promise<WsBroker> {
  const b = await startWsBroker(...args);
  cleanups.push(() => b.close());
  return b;
}

/** `from` publishes QoS 1 messages that `to`, subscribed first, must all receive in order. */
async function relay(
  b: WsBroker,
  from: { url: string; options: IClientOptions },
  to: { url: string; options: IClientOptions },
  topic: string,
): Promise<void> {
  const sub = mqttClient(to.url, { clientId: id('sub'), ...to.options });
  await connackOf(sub);
  const got = collect(sub);
  await sub.subscribeAsync(topic, { qos: 1 });
  const pub = mqttClient(from.url, { clientId: id('pub'), ...from.options });
  await connackOf(pub);
  const sent = Array.from({ length: 20 }, (_, i) => `${topic} #${i}`);
  for (const payload of sent) await pub.publishAsync(topic, payload, { qos: 1 });
  await untilPayload(got, sent.at(-1)!);
  assert.deepEqual(
    got.map((m) => m.payload.toString()),
    sent,
  );
  assert.ok(b.wsUrl.includes('/mqtt'));
}

describe('MQTT.js over ws:// and over TCP reach each other', { timeout: 30_000 }, () => {
  for (const version of [4, 5] as const) {
    test(`MQTT ${version === 4 ? '3.1.1' : '5.0'}: a WebSocket subscriber gets what a TCP client publishes`, async () => {
      const b = await wsBroker();
      const options = { protocolVersion: version };
      await relay(b, { url: b.tcpUrl, options }, { url: b.wsUrl, options }, `ws/in/${version}`);
    });

    test(`MQTT ${version === 4 ? '3.1.1' : '5.0'}: a TCP subscriber gets what a WebSocket client publishes`, async () => {
      const b = await wsBroker();
      const options = { protocolVersion: version };
      await relay(b, { url: b.wsUrl, options }, { url: b.tcpUrl, options }, `ws/out/${version}`);
    });
  }

  test('MQTT 3.1 (MQTT.js offers the mqttv3.1 subprotocol) on WebSocket talks to 3.1.1 on TCP', async () => {
    const b = await wsBroker();
    const seen: ClientInfo[] = [];
    b.broker.on('clientConnected', (client) => seen.push(client));
    await relay(
      b,
      { url: b.wsUrl, options: { protocolVersion: 3, protocolId: 'MQIsdp' } },
      { url: b.tcpUrl, options: { protocolVersion: 4 } },
      'ws/v31',
    );
    assert.deepEqual(
      seen.map((c) => c.protocolVersion),
      [4, 3],
    );
  });

  test('ClientInfo of a WebSocket client: the ws:// listener URL, its address, not secure', async () => {
    const b = await wsBroker();
    const seen: ClientInfo[] = [];
    b.broker.on('clientConnected', (client) => seen.push(client));
    const c = mqttClient(b.wsUrl, { protocolVersion: 5, clientId: id('info') });
    await connackOf(c);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.listener, 'ws://127.0.0.1:0/mqtt');
    assert.equal(seen[0]!.remoteAddress, '127.0.0.1');
    assert.ok((seen[0]!.remotePort ?? 0) > 0);
    assert.equal(seen[0]!.secure, false);
  });
});

describe('MQTT over wss:// with the test CA', { timeout: 30_000 }, () => {
  test('MQTT.js trusting the test CA publishes and subscribes over wss; ClientInfo.secure is true', async () => {
    const certs = await testCerts();
    const b = await wsBroker({}, { tls: await serverTls() });
    const secure: boolean[] = [];
    b.broker.on('clientConnected', (client) => secure.push(client.secure === true));
    const tls = { ca: certs.ca.certPem, rejectUnauthorized: true };
    await relay(
      b,
      { url: b.tcpUrl, options: { protocolVersion: 5 } },
      { url: b.wsUrl, options: { protocolVersion: 5, ...tls } },
      'wss/in',
    );
    await relay(
      b,
      { url: b.wsUrl, options: { protocolVersion: 4, ...tls } },
      { url: b.tcpUrl, options: { protocolVersion: 4 } },
      'wss/out',
    );
    assert.deepEqual(secure, [true, false, false, true]);
  });

  test('a client that does not trust the server certificate gets no connection', async () => {
    const certs = await testCerts();
    const b = await wsBroker({}, { tls: await serverTls() });
    const c = mqttClient(b.wsUrl, {
      protocolVersion: 5,
      clientId: id('distrust'),
      ca: certs.otherCa.certPem,
    });
    await assert.rejects(connackOf(c), /self[- ]signed|unable to verify|certificate/i);
  });

  test('a client certificate reaches the broker: subject, CN, authorized, and the username taken from it', async () => {
    const certs = await testCerts();
    const tls = await serverTls({ ca: certs.ca.cert, requestCert: true, usernameFrom: 'cn' });
    const b = await wsBroker({}, { tls });
    const seen: ClientInfo[] = [];
    b.broker.on('clientConnected', (client) => seen.push(client));
    const c = mqttClient(b.wsUrl, {
      protocolVersion: 5,
      clientId: id('cert'),
      ca: certs.ca.certPem,
      cert: certs.client.certPem,
      key: certs.client.keyPem,
    });
    await connackOf(c);
    const certificate = seen[0]?.certificate;
    assert.ok(certificate !== undefined, 'ClientInfo.certificate is set');
    assert.equal(certificate.commonName, 'device-1');
    assert.equal(certificate.subject, 'CN=device-1,O=Cicada Tests');
    assert.equal(certificate.authorized, true);
    assert.equal(seen[0]!.username, 'device-1');
  });

  test('a wss listener that requires a certificate refuses a client without one', async () => {
    const certs = await testCerts();
    const b = await wsBroker({}, { tls: await serverTls({ ca: certs.ca.cert, requestCert: true }) });
    const c = mqttClient(b.wsUrl, { protocolVersion: 5, clientId: id('nocert'), ca: certs.ca.certPem });
    await assert.rejects(connackOf(c));
  });

  test('reload() serves the new certificate to new connections; an open connection keeps working', async () => {
    const certs = await testCerts();
    // The listener's own copy of the files, overwritten below as a certificate renewal would.
    const dir = await mkdtemp(join(tmpdir(), 'cicada-wss-reload-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
    await Promise.all([copyFile(certs.server.cert, tls.cert), copyFile(certs.server.key, tls.key)]);
    const listener = await new WebSocketTransport().listen(
      new URL('wss://127.0.0.1:0/mqtt'),
      (stream) => {
        stream.on('data', (chunk: Buffer) => stream.write(chunk));
      },
      { tls },
    );
    cleanups.push(() => listener.close());
    const fingerprint = async (): Promise<string> => {
      const socket = tlsConnect({ host: '127.0.0.1', port: listener.port, ca: certs.ca.certPem });
      await once(socket, 'secureConnect');
      const seen = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      return seen;
    };
    assert.equal(await fingerprint(), new X509Certificate(certs.server.certPem).fingerprint256);
    const open = await wsClientStream(`wss://127.0.0.1:${listener.port}/mqtt`, { ca: certs.ca.certPem });
    cleanups.push(() => open.destroy());
    await Promise.all([copyFile(certs.server2.cert, tls.cert), copyFile(certs.server2.key, tls.key)]);
    await listener.reload!();
    assert.equal(await fingerprint(), new X509Certificate(certs.server2.certPem).fingerprint256);
    const echoed: Buffer[] = [];
    open.on('data', (chunk: Buffer) => echoed.push(chunk));
    open.write('still here');
    await within(
      new Promise<void>((resolve) => open.on('data', () => Buffer.concat(echoed).length >= 10 && resolve())),
      'the echo on the connection opened before reload',
    );
    assert.equal(Buffer.concat(echoed).toString(), 'still here');
  });

  test('a raw wss client with subprotocol mqtt completes CONNECT/CONNACK', async () => {
    const certs = await testCerts();
    const b = await wsBroker({}, { tls: await serverTls() });
    const raw = await WsRawClient.open(b.wsUrl, ['mqtt'], 4, { ca: certs.ca.certPem });
    cleanups.push(() => raw.end());
    raw.send({ type: 'connect', protocolVersion: 4, clean: true, keepAlive: 30, clientId: id('rawtls') });
    const connack = await raw.next('connack');
    assert.equal(connack.reasonCode, 0);
    assert.equal(raw.protocol, 'mqtt');
  });
});
