import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { type Socket, connect as tcpConnect } from 'node:net';
import { describe, test } from 'node:test';
import { encode } from '../../src/codec/mqtt/index.js';
import { TlsTransport } from '../../src/transport/tls.js';
import { until } from '../helpers/broker.js';
import { testCerts } from '../helpers/certs.js';
import { collect, connackOf, id, perTest, untilPayload, within } from '../helpers/mqtt-client.js';
import { seeded, seedFrom } from '../helpers/random.js';
import { transportContract } from './contract.js';
import { mqttTls, serverTls, startTlsBroker, type TlsBroker, tlsClient } from './tls-fixture.js';

/**
 * MQTT over TLS (`mqtts://`): the transport contract, MQTT.js and Mosquitto's client over
 * TLS, and hostile handshakes that must cost only their senders.
 */

const transport = new TlsTransport();

transportContract('tls', {
  secure: true,
  listen: async (handler) =>
    transport.listen(new URL('mqtts://127.0.0.1:0'), handler, { tls: await serverTls() }),
  connect: (listener) => tlsClient(listener.port),
});

const { cleanups, mqttClient } = perTest();

async function tlsBroker(...args: Parameters<typeof startTlsBroker>): Promise<TlsBroker> {
  const b = await startTlsBroker(...args);
  cleanups.push(() => b.close());
  return b;
}

describe('the TLS listener', { timeout: 60_000 }, () => {
  test('refuses to start without TLS settings, naming what is missing', async () => {
    await assert.rejects(
      transport.listen(new URL('mqtts://127.0.0.1:0'), () => {}),
      /needs TLS settings: a certificate and a key file/,
    );
  });

  test('refuses to start when a file is missing, naming the file', async () => {
    const tls = await serverTls({ key: '/nonexistent/server.key' });
    await assert.rejects(
      transport.listen(new URL('mqtts://127.0.0.1:0'), () => {}, { tls }),
      /cannot read TLS key file '\/nonexistent\/server\.key'/,
    );
  });

  test('serves the mqtts:, ssl:, tls: and stomps: schemes', () => {
    assert.deepEqual([...transport.schemes].sort(), ['mqtts:', 'ssl:', 'stomps:', 'tls:']);
  });
});

describe('MQTT.js over mqtts:// with the test CA', { timeout: 60_000 }, () => {
  for (const version of [4, 5] as const) {
    test(`MQTT ${version === 4 ? '3.1.1' : '5.0'}: publish and subscribe through TLS`, async () => {
      const certs = await testCerts();
      const b = await tlsBroker(await serverTls());
      const secureSeen: boolean[] = [];
      b.broker.on('clientConnected', (client) => secureSeen.push(client.secure === true));
      const sub = mqttClient(b.url, { protocolVersion: version, clientId: id('sub'), ...mqttTls(certs) });
      await connackOf(sub);
      const got = collect(sub);
      await sub.subscribeAsync('tls/news', { qos: 1 });
      const pub = mqttClient(b.url, { protocolVersion: version, clientId: id('pub'), ...mqttTls(certs) });
      await connackOf(pub);
      await pub.publishAsync('tls/news', 'over tls', { qos: 1 });
      await untilPayload(got, 'over tls');
      assert.deepEqual(secureSeen, [true, true], 'ClientInfo.secure is true for TLS clients');
    });
  }

  test('a client that does not trust the server certificate gets no connection', async () => {
    const certs = await testCerts();
    const b = await tlsBroker(await serverTls());
    const c = mqttClient(b.url, { protocolVersion: 5, clientId: id('distrust'), ca: certs.otherCa.certPem });
    await assert.rejects(connackOf(c), /self[- ]signed|unable to verify|certificate/i);
  });
});

/** Runs mosquitto_pub; fails naming the Debian package when it is not installed. */
function runMosquittoPub(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return within(
    new Promise((resolve, reject) => {
      const child = spawn('mosquitto_pub', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      cleanups.push(() => child.kill('SIGKILL'));
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'ENOENT'
            ? new Error('mosquitto_pub not found: install the Debian package `mosquitto-clients`')
            : error,
        ),
      );
      child.on('close', (code) => resolve({ code, stderr }));
    }),
    'mosquitto_pub',
    15_000,
  );
}

describe("Mosquitto's client over TLS", { timeout: 60_000 }, () => {
  test('mosquitto_pub --cafile --cert --key delivers to an MQTT.js subscriber', async () => {
    const certs = await testCerts();
    const b = await tlsBroker(await serverTls({ ca: certs.ca.cert, requestCert: true }));
    const sub = mqttClient(b.url, {
      protocolVersion: 5,
      clientId: id('msub'),
      ...mqttTls(certs, certs.client),
    });
    await connackOf(sub);
    const got = collect(sub);
    await sub.subscribeAsync('tls/mosquitto', { qos: 1 });
    const args = ['-h', '127.0.0.1', '-p', String(b.port), '-t', 'tls/mosquitto', '-m', 'from mosquitto'];
    args.push('-q', '1', '--cafile', certs.ca.cert, '--cert', certs.client.cert, '--key', certs.client.key);
    const result = await runMosquittoPub(args);
    assert.equal(result.code, 0, `mosquitto_pub failed: ${result.stderr}`);
    await untilPayload(got, 'from mosquitto');
  });
});

describe('hostile handshakes cost only their senders', { timeout: 120_000 }, () => {
  const seed = seedFrom('TLS_HOSTILE_SEED');
  const random = seeded(seed);

  /** A raw TCP socket to `port` that sends `bytes`; resolves once the server has closed it. */
  function hostile(port: number, bytes: Buffer): Promise<void> {
    return new Promise((resolve) => {
      const socket: Socket = tcpConnect({ host: '127.0.0.1', port });
      cleanups.push(() => socket.destroy());
      socket.on('error', () => {});
      socket.on('close', () => resolve());
      socket.on('connect', () => socket.write(bytes));
    });
  }

  /** What the hostile socket number `i` sends, and whether the server can refuse it at once. */
  function attack(i: number): { bytes: Buffer; refusedAtOnce: boolean } {
    switch (i % 5) {
      case 0: // noise that cannot start a TLS record
        return {
          bytes: Buffer.concat([Buffer.from([0x42]), random.bytes(random.int(2000))]),
          refusedAtOnce: true,
        };
      case 1: // plain MQTT on the TLS port
        return {
          bytes: encode(
            { type: 'connect', protocolVersion: 4, clean: true, keepAlive: 10, clientId: 'x' },
            4,
          ),
          refusedAtOnce: true,
        };
      case 2: // plain HTTP on the TLS port
        return { bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), refusedAtOnce: true };
      case 3: // a handshake record header and part of its body, then nothing
        return {
          bytes: Buffer.concat([Buffer.from('1603010200', 'hex'), random.bytes(random.int(60))]),
          refusedAtOnce: false,
        };
      default: // two bytes of a record header, then nothing
        return { bytes: Buffer.from([0x16, 0x03]), refusedAtOnce: false };
    }
  }

  test(`garbage and half handshakes from 50 sockets while an honest client publishes QoS 1 (seed ${seed})`, async () => {
    const certs = await testCerts();
    const errors: unknown[] = [];
    const b = await tlsBroker(await serverTls(), {}, { onError: (e) => errors.push(e) });
    const sub = mqttClient(b.url, { protocolVersion: 5, clientId: id('honest-sub'), ...mqttTls(certs) });
    await connackOf(sub);
    const got = collect(sub);
    await sub.subscribeAsync('tls/honest', { qos: 1 });
    const pub = mqttClient(b.url, { protocolVersion: 4, clientId: id('honest'), ...mqttTls(certs) });
    await connackOf(pub);

    const refused: Promise<void>[] = [];
    const publishes: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      const { bytes, refusedAtOnce } = attack(i);
      const closed = hostile(b.port, bytes);
      if (refusedAtOnce) refused.push(closed);
      publishes.push(pub.publishAsync('tls/honest', `m${i}`, { qos: 1 }));
    }
    await within(Promise.all(publishes), 'the honest QoS 1 publishes to be acknowledged');
    await until(() => got.length >= 50, 'all 50 honest messages');
    assert.deepEqual(
      got.map((m) => m.payload.toString()).sort(),
      Array.from({ length: 50 }, (_, i) => `m${i}`).sort(),
    );
    await within(Promise.all(refused), 'the server to close every garbage connection');
    assert.ok(pub.connected && sub.connected, 'the honest clients are still connected');
    assert.deepEqual(errors, []);
  });

  test('a handshake that never completes is closed after the handshake timeout', async () => {
    const short = new TlsTransport({ handshakeTimeoutMs: 300 });
    const accepted: unknown[] = [];
    const listener = await short.listen(new URL('mqtts://127.0.0.1:0'), (s) => accepted.push(s), {
      tls: await serverTls(),
    });
    cleanups.push(() => listener.close());
    await within(
      hostile(listener.port, Buffer.from([0x16, 0x03, 0x01])),
      'the stalled handshake to be closed',
    );
    assert.equal(accepted.length, 0, 'nothing was handed to the protocol');
  });
});
