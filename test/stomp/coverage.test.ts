import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { killCicadas, startCicada } from '../helpers/cicada-process.js';
import { connackOf, id, mqttConnect, within } from '../helpers/mqtt-client.js';
import { RawStomp, startStompBroker } from '../helpers/stomp-client.js';

/** Cases no other STOMP test covers. */

// STOMP 1.2 "Heart-beating": the client's beats are expected every max(cx, sy) ms, where cx is
// what the client can send and sy what the server wants; ClientInfo.keepAlive reports it.
describe('STOMP coverage: heart-beat negotiation', () => {
  test('the interval the server expects is max(client cx, server sy); 0 on either side means none', async () => {
    const b = await startStompBroker({ stomp: { heartbeatSend: 0, heartbeatReceive: 2000 } });
    try {
      const expected = new Map<string, number>();
      for (const [offer, keepAlive] of [
        ['5000,0', 5],
        ['1000,0', 2],
        ['0,1000', 0],
      ] as const) {
        const raw = await RawStomp.connect(b.port, [['heart-beat', offer]]);
        // The server sends none (sx 0): none is owed whatever the client wants.
        assert.equal(raw.frames[0]!.headers.find(([name]) => name === 'heart-beat')?.[1], '0,2000');
        const session = raw.frames[0]!.headers.find(([name]) => name === 'session')![1];
        expected.set(session, keepAlive);
        const client = [...b.broker.broker.sessions.values()].find((s) => s.clientId === session)?.client;
        assert.equal(client?.keepAlive, keepAlive, `heart-beat ${offer}`);
        raw.close();
      }
      assert.equal(expected.size, 3);
    } finally {
      await b.close();
    }
  });
});

// STOMP 1.0 has no header escaping, so a topic holding a line break cannot be a 1.0 MESSAGE's
// `destination`; MQTT allows one (only U+0000 is forbidden, MQTT-1.5.4-2). Bad input costs only
// its sender (house rules). Until 8c4b2be one such MQTT PUBLISH made the delivery tick throw and
// the cicada process exit.
describe('STOMP coverage: a real cicada process', () => {
  after(killCicadas);

  test('an MQTT topic with a line break, routed to a STOMP 1.0 subscriber, does not kill the broker', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'cicada-review-'));
    try {
      const cicada = startCicada(
        ['--allow-anonymous', '--listen', 'mqtt://127.0.0.1:0', '--listen', 'stomp://127.0.0.1:0'],
        cwd,
      );
      const mqttPort = await cicada.port('mqtt://127.0.0.1:0');
      const stompPort = await cicada.port('stomp://127.0.0.1:0');
      const old = await RawStomp.connect(stompPort, [['accept-version', '1.0']]);
      old.send('SUBSCRIBE', [
        ['destination', '/topic/lf.#'],
        ['receipt', 's'],
      ]);
      await old.nextFrame(1);
      const mqtt = mqttConnect(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 5, clientId: id('lf') });
      await connackOf(mqtt);
      mqtt.on('error', () => {});
      await mqtt.publishAsync('lf/a\nb', 'broken', { qos: 0 });
      await mqtt.publishAsync('lf/ok', 'fine', { qos: 0 });
      let exit: unknown;
      void cicada.exited.then((how) => {
        exit = how;
      });
      const next = await within(old.nextFrame(), 'a frame after the line-break topic').catch(
        async (error: unknown) => {
          await new Promise((resolve) => setImmediate(resolve));
          throw new Error(
            `${error}; cicada exited: ${JSON.stringify(exit)}; stderr: ${cicada.stderr().slice(0, 600)}`,
          );
        },
      );
      assert.equal(next.command, 'MESSAGE');
      assert.equal(next.body.toString(), 'fine');
      old.close();
      await mqtt.endAsync();
      cicada.child.kill('SIGTERM');
      await cicada.exited;
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
