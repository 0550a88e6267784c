import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type Socket, connect as tcpConnect } from 'node:net';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { MqttClient } from 'mqtt';
import type { ClientInfo } from '../../src/broker/hooks.js';
import { type Cicada, createBroker } from '../../src/index.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { TlsTransport } from '../../src/transport/tls.js';
import type { Listener, ListenOptions } from '../../src/transport/transport.js';
import { testCerts } from '../helpers/certs.js';
import { collect, connackOf, id, perTest, untilPayload, within } from '../helpers/mqtt-client.js';
import type { RawClient } from '../helpers/raw-client.js';
import { serverTls } from './tls-fixture.js';

/**
 * Listeners behind a PROXY protocol load balancer, end to end: the header's source address
 * becomes the client's, the MQTT bytes after it are untouched, a bad or missing header
 * closes only that connection, and on TLS listeners the header comes before the handshake.
 */

const { cleanups, raw } = perTest();

/** A broker with one listener at `url` (port 0) and `options`; records who connected. */
async function brokerOn(
  url: string,
  options: ListenOptions,
): Promise<{ broker: Cicada; listener: Listener; connected: ClientInfo[] }> {
  const broker = createBroker({ onError: (e) => assert.fail(`broker error: ${e}`) });
  cleanups.push(() => broker.close());
  const listener = await broker.listen(url, options);
  const connected: ClientInfo[] = [];
  broker.on('clientConnected', (client) => connected.push(client));
  return { broker, listener, connected };
}

const v1 = (source: string, port: number): Buffer =>
  Buffer.from(`PROXY TCP4 ${source} 192.0.2.100 ${port} 1883\r\n`);

/** A v2 PROXY header for TCP over IPv6 from `2001:db8::7` port 40000, with a NOOP TLV. */
const V2_TCP6 = Buffer.concat([
  Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
  Buffer.from([0x21, 0x21, 0x00, 36 + 5]),
  Buffer.from('20010db8000000000000000000000007', 'hex'),
  Buffer.from('00000000000000000000000000000001', 'hex'),
  Buffer.from([0x9c, 0x40, 0x22, 0xb3]),
  Buffer.from([0x04, 0x00, 0x02, 0x00, 0x00]),
]);

/** MQTT.js over a socket that first sends `header` (as a load balancer would). */
function mqttBehindProxy(port: number, header: Buffer, clientId: string): MqttClient {
  const client = new MqttClient(
    () => {
      const socket = tcpConnect({ host: '127.0.0.1', port });
      socket.write(header);
      return socket;
    },
    { protocolVersion: 5, clientId, reconnectPeriod: 0, connectTimeout: 5000 },
  );
  cleanups.push(() => client.end(true));
  return client;
}

describe('a TCP listener with proxyProtocol', { timeout: 60_000 }, () => {
  test('v1 header then CONNECT in one write: ClientInfo has the header source', async () => {
    const { listener, connected } = await brokerOn('mqtt://127.0.0.1:0', { proxyProtocol: true });
    const r = await raw(listener.port);
    r.sendBytes(v1('203.0.113.7', 40000));
    const connack = await r.handshake({ clientId: 'proxied-v1' });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connected[0]?.remoteAddress, '203.0.113.7');
    assert.equal(connected[0]?.remotePort, 40000);
    assert.equal(connected[0]?.secure, false);
  });

  test('MQTT.js behind a v1 header: its messages flow as usual', async () => {
    const { listener, connected } = await brokerOn('mqtt://127.0.0.1:0', { proxyProtocol: true });
    const c = mqttBehindProxy(listener.port, v1('198.51.100.23', 5555), id('mqttjs-proxied'));
    await connackOf(c);
    const got = collect(c);
    await c.subscribeAsync('proxy/echo', { qos: 1 });
    await c.publishAsync('proxy/echo', 'through the proxy', { qos: 1 });
    await untilPayload(got, 'through the proxy');
    assert.equal(connected[0]?.remoteAddress, '198.51.100.23');
  });

  test('a v2 LOCAL header keeps the real address', async () => {
    const { listener, connected } = await brokerOn('mqtt://127.0.0.1:0', { proxyProtocol: true });
    const local = Buffer.concat([
      Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
      Buffer.from([0x20, 0, 0, 0]),
    ]);
    await connackOf(mqttBehindProxy(listener.port, local, id('local')));
    assert.equal(connected[0]?.remoteAddress, '127.0.0.1');
  });

  test('a bad header closes that connection only; a proxied client carries on', async () => {
    const { listener, connected } = await brokerOn('mqtt://127.0.0.1:0', { proxyProtocol: true });
    const good = mqttBehindProxy(listener.port, v1('203.0.113.8', 1), id('good'));
    await connackOf(good);
    const got = collect(good);
    await good.subscribeAsync('proxy/carry-on', { qos: 1 });
    const badHeaders = [
      Buffer.from('PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n'),
      Buffer.from(`PROXY UNKNOWN ${'x'.repeat(200)}`),
      Buffer.from([0x10, 0x0c, 0x00, 0x04]), // a CONNECT with no header before it
    ];
    const bad: RawClient[] = [];
    for (const header of badHeaders) {
      const r = await raw(listener.port);
      r.sendBytes(header);
      bad.push(r);
    }
    await Promise.all(bad.map((r) => r.closedByBroker()));
    await good.publishAsync('proxy/carry-on', 'unharmed', { qos: 1 });
    await untilPayload(got, 'unharmed');
    assert.equal(connected.length, 1);
  });

  test('a connection that sends no header is closed after the header timeout', async () => {
    const transport = new TcpTransport({ proxyHeaderTimeoutMs: 200 });
    const handed: unknown[] = [];
    const listener = await transport.listen(new URL('mqtt://127.0.0.1:0'), (s) => handed.push(s), {
      proxyProtocol: true,
    });
    cleanups.push(() => listener.close());
    const r = await raw(listener.port);
    r.sendBytes(Buffer.from('PROXY TCP4 192.0.2.1'));
    await r.closedByBroker();
    assert.equal(handed.length, 0);
  });

  test('without proxyProtocol a PROXY header is just bad MQTT: the connection is closed', async () => {
    const { listener, connected } = await brokerOn('mqtt://127.0.0.1:0', {});
    const r = await raw(listener.port);
    r.sendBytes(v1('203.0.113.7', 40000));
    await r.closedByBroker();
    assert.equal(connected.length, 0);
  });
});

describe('a TLS listener with proxyProtocol: the header comes before the handshake', {
  timeout: 60_000,
}, () => {
  /** A TLS connection to `port` over a socket that first sent `header`. */
  async function tlsBehindProxy(port: number, header: Buffer): Promise<Socket> {
    const certs = await testCerts();
    const socket = tcpConnect({ host: '127.0.0.1', port });
    cleanups.push(() => socket.destroy());
    await once(socket, 'connect');
    socket.write(header);
    const secure = tlsConnect({ socket, ca: certs.ca.certPem, servername: 'localhost' });
    cleanups.push(() => secure.destroy());
    await within(once(secure, 'secureConnect'), 'the TLS handshake behind the PROXY header');
    return secure;
  }

  test('v2 over IPv6: MQTT.js connects and ClientInfo has the header source, secure', async () => {
    const { listener, connected } = await brokerOn('mqtts://127.0.0.1:0', {
      proxyProtocol: true,
      tls: await serverTls(),
    });
    const secure = await tlsBehindProxy(listener.port, V2_TCP6);
    const c = new MqttClient(() => secure, {
      protocolVersion: 4,
      clientId: id('tls-v2'),
      reconnectPeriod: 0,
    });
    cleanups.push(() => c.end(true));
    await connackOf(c);
    const got = collect(c);
    await c.subscribeAsync('proxy/tls', { qos: 1 });
    await c.publishAsync('proxy/tls', 'encrypted behind a proxy', { qos: 1 });
    await untilPayload(got, 'encrypted behind a proxy');
    assert.equal(connected[0]?.remoteAddress, '2001:db8::7');
    assert.equal(connected[0]?.remotePort, 40000);
    assert.equal(connected[0]?.secure, true);
  });

  test('a TLS ClientHello where the header should be closes that connection', async () => {
    const transport = new TlsTransport();
    const handed: unknown[] = [];
    const listener = await transport.listen(new URL('mqtts://127.0.0.1:0'), (s) => handed.push(s), {
      proxyProtocol: true,
      tls: await serverTls(),
    });
    cleanups.push(() => listener.close());
    const certs = await testCerts();
    const secure = tlsConnect({ host: '127.0.0.1', port: listener.port, ca: certs.ca.certPem });
    cleanups.push(() => secure.destroy());
    const [error] = await within(
      once(secure, 'error').catch((e: unknown) => [e]),
      'the handshake to fail',
    );
    assert.ok(error instanceof Error);
    assert.equal(handed.length, 0);
  });
});
