import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { TCPWrapper } from '@stomp/tcp-wrapper';
import WebSocket from 'ws';
import { type ClientInfo, createBroker } from '../../src/index.js';
import { testCerts } from '../helpers/certs.js';
import { connackOf, id, mqttConnect, within } from '../helpers/mqtt-client.js';
import {
  closeStomp,
  connectStomp,
  header,
  RawStomp,
  sendConfirmed,
  subscribe,
} from '../helpers/stomp-client.js';

/** stompjs over TLS: the TCP wrapper with a TLS socket trusting the test CA, presenting `cert`. */
class TlsWrapper extends TCPWrapper {
  static options: { ca: string; cert: string; key: string } | undefined;
  protected override getSocket(port: number, host: string) {
    return tlsConnect({ host, port, ...TlsWrapper.options });
  }
}

describe('STOMP listeners', () => {
  test('stomps:// with a client certificate naming the user', async () => {
    const certs = await testCerts();
    const broker = createBroker({ onError: (e) => console.error('broker error:', e) });
    const connected: ClientInfo[] = [];
    broker.on('clientConnected', (client) => connected.push(client));
    try {
      const listener = await broker.listen('stomps://127.0.0.1:0', {
        tls: {
          cert: certs.server.cert,
          key: certs.server.key,
          ca: certs.ca.cert,
          requestCert: true,
          usernameFrom: 'cn',
        },
      });
      TlsWrapper.options = { ca: certs.ca.certPem, cert: certs.client.certPem, key: certs.client.keyPem };
      const client = await connectStomp(
        { port: listener.port },
        { webSocketFactory: () => new TlsWrapper('127.0.0.1', listener.port) },
      );
      assert.equal(connected[0]?.username, 'device-1');
      assert.equal(connected[0]?.secure, true);
      const inbox = await subscribe(client, '/topic/tls');
      await sendConfirmed(client, '/topic/tls', 'secret');
      assert.equal((await within(inbox.next(), 'MESSAGE over TLS')).body, 'secret');
      await closeStomp(client);
    } finally {
      await broker.close();
    }
  });

  test('one port serves MQTT on /mqtt and STOMP on /stomp; /stomp wants a STOMP subprotocol', async () => {
    const broker = createBroker({ onError: (e) => console.error('broker error:', e) });
    try {
      const stomp = await broker.listen('ws://127.0.0.1:0/stomp');
      await broker.listen(`ws://127.0.0.1:${stomp.port}/mqtt`);
      const mqtt = mqttConnect(`ws://127.0.0.1:${stomp.port}/mqtt`, {
        protocolVersion: 5,
        clientId: id('ws'),
      });
      await connackOf(mqtt);
      await mqtt.subscribeAsync('shared/port', { qos: 1 });
      const received = new Promise<string>((resolve) =>
        mqtt.once('message', (_t, payload) => resolve(String(payload))),
      );
      const client = await connectStomp({ url: `ws://127.0.0.1:${stomp.port}/stomp` });
      await sendConfirmed(client, '/topic/shared.port', 'both ways in');
      assert.equal(await within(received, 'the MQTT delivery'), 'both ways in');
      await closeStomp(client);
      await mqtt.endAsync();

      const wrong = new WebSocket(`ws://127.0.0.1:${stomp.port}/stomp`, ['mqtt']);
      wrong.on('error', () => {});
      const [, response] = (await once(wrong, 'unexpected-response')) as [unknown, { statusCode: number }];
      assert.equal(response.statusCode, 400);
    } finally {
      await broker.close();
    }
  });

  test("a listener's connection cap refuses with an ERROR, and only the connection over it", async () => {
    const broker = createBroker({
      onError: (e) => console.error('broker error:', e),
      limits: { memoryHighWaterMark: -1 },
    });
    try {
      const listener = await broker.listen('stomp://127.0.0.1:0', {
        limits: { maxConnectionsPerAddress: 1 },
      });
      const first = await RawStomp.connect(listener.port);
      const second = await RawStomp.open(listener.port);
      second.send('CONNECT', [['accept-version', '1.2']]);
      const [error] = await within(second.untilClosed(), 'the refused connection closed');
      assert.equal(error?.command, 'ERROR');
      assert.equal(header(error!, 'message'), 'too many connections from this address');
      first.send('SUBSCRIBE', [
        ['id', '1'],
        ['destination', '/topic/cap'],
        ['receipt', 'ok'],
      ]);
      assert.equal(header(await first.nextFrame(), 'receipt-id'), 'ok');
      first.close();
    } finally {
      await broker.close();
    }
  });
});
