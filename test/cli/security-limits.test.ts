import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ConnectPacket } from '../../src/codec/mqtt/index.js';
import { until } from '../helpers/broker.js';
import { SAFETY_MS } from '../helpers/cicada-process.js';
import { collect, connackOf, perTest, untilPayload } from '../helpers/mqtt-client.js';
import type { RawClient } from '../helpers/raw-client.js';
import {
  admits,
  eventually,
  fileDir,
  LOCAL,
  logged,
  login,
  passwd,
  refusal,
  startReady,
  stop,
  writeConfig,
} from './security-fixture.js';

/**
 * Protection through the `cicada` command: a login storm from one address while an honest
 * client carries on (the failed-login throttle holding refusals back), the per-address rate
 * gate closing a flood, and the connection caps of `limits` and of one listener.
 */

const dir = fileDir('cli-limits');
const { mqttClient, raw } = perTest();

/**
 * Sends CONNECT and settles with the CONNACK code, or `closed` if the broker closes the
 * connection without one; stays pending while the broker holds its answer back (no timer).
 */
function outcome(r: RawClient, connect: Partial<ConnectPacket>): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    // The client's own listeners run first: a CONNACK is decoded, `closed` set, by then.
    const settle = (): void => {
      const connack = r.packets.find((p) => p.type === 'connack');
      if (connack !== undefined) resolve(connack.reasonCode);
      else if (r.closed) resolve('closed');
    };
    r.socket.on('data', settle);
    r.socket.once('close', settle);
    r.send({
      type: 'connect',
      protocolVersion: r.version,
      clean: true,
      keepAlive: 60,
      clientId: '',
      ...connect,
    });
  });
}

describe('a login storm from one address', { timeout: 4 * SAFETY_MS }, () => {
  test('honest QoS 1 messages all arrive in order; refusals past the free failures are held back', async () => {
    const passwords = join(dir(), 'storm-passwords');
    await passwd(passwords, 'alice', 'the-real-one', ['-c']);
    const config = await writeConfig(join(dir(), 'storm.json'), {
      listen: [LOCAL],
      auth: { passwordFile: passwords, throttle: { freeFailures: 5, maxDelayMs: 600_000 } },
      // The rate gate would close the storm before it reaches authentication: off here.
      limits: { connectionRatePerAddress: 0, maxConnectionsPerAddress: 0 },
    });
    const cicada = await startReady(['--config', config], dir());
    const port = await cicada.port(LOCAL);
    const url = `mqtt://127.0.0.1:${port}`;
    const reader = mqttClient(url, login('reader', 'alice', 'the-real-one'));
    const writer = mqttClient(url, login('writer', 'alice', 'the-real-one'));
    await Promise.all([connackOf(reader), connackOf(writer)]);
    const got = collect(reader);
    await reader.subscribeAsync('honest/stream', { qos: 1 });

    // 40 wrong passwords for alice (each costs a full hash), 280 for names nobody has, 20
    // sockets of garbage: 320 logins from 127.0.0.1, at once, at both protocol versions.
    const GUESSES = 40;
    const STRANGERS = 280;
    const logins = Array.from({ length: GUESSES + STRANGERS }, (_, i) => ({
      version: i % 2 === 0 ? (5 as const) : (4 as const),
      clientId: `storm-${i}`,
      username: i < GUESSES ? 'alice' : `stranger-${i}`,
      password: Buffer.from(`guess-${i}-Zq9`),
    }));
    const answers: number[] = [];
    const storm = async (): Promise<void> => {
      const clients = await Promise.all(logins.map((l) => raw(port, l.version)));
      clients.forEach((client, i) => {
        const { clientId, username, password } = logins[i]!;
        void outcome(client, { clientId, username, password }).then((code) => {
          if (code !== 'closed') answers.push(code);
        });
      });
      const garbage = await Promise.all(Array.from({ length: 20 }, () => raw(port, 5)));
      for (const [i, g] of garbage.entries()) g.sendBytes(Buffer.from(`GET /${i} HTTP/1.1\r\n\r\n`));
      await Promise.all(garbage.map((g) => g.closedByBroker(SAFETY_MS)));
    };
    const MESSAGES = 200;
    const honest = async (): Promise<void> => {
      for (let i = 0; i < MESSAGES; i++) await writer.publishAsync('honest/stream', `m-${i}`, { qos: 1 });
    };
    await Promise.all([storm(), honest()]);

    const failures = (): number => logged(cicada, 'authentication failed').length;
    await until(() => failures() === logins.length, 'every storm login judged', SAFETY_MS);
    await until(() => answers.length >= 5, 'the free failures answered', SAFETY_MS);
    // Every login was judged and logged, but past the five free failures the answers wait.
    assert.ok(answers.length < logins.length, `${answers.length} of ${logins.length} refusals sent`);
    assert.ok(
      answers.every((code) => code === 0x86 || code === 4),
      `bad user name or password: ${answers}`,
    );
    await untilPayload(got, `m-${MESSAGES - 1}`);
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      Array.from({ length: MESSAGES }, (_, i) => `m-${i}`),
      'every honest message, once, in order',
    );
    const byReason = new Map<string, number>();
    for (const line of logged(cicada, 'authentication failed')) {
      const key = `${String(line['by'])}: ${String(line['reason'])}`;
      byReason.set(key, (byReason.get(key) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(byReason), {
      'password-file: wrong password': GUESSES,
      'no-provider: no provider knows these credentials': STRANGERS,
    });
    assert.ok(!cicada.stdout().includes('-Zq9'), 'no guessed password in the log');
    assert.equal(cicada.child.exitCode, null, 'the broker is up');
    assert.equal(await admits(url, login('after-storm', 'alice', 'the-real-one')), true);
    await stop(cicada);
  });

  test('the per-address rate gate closes a flood while a connected client carries on', async () => {
    const config = await writeConfig(join(dir(), 'rate.json'), {
      listen: [LOCAL],
      limits: { connectionRatePerAddress: 1, connectionBurstPerAddress: 3 },
    });
    const cicada = await startReady(['--config', config, '--allow-anonymous'], dir());
    const port = await cicada.port(LOCAL);
    const steady = mqttClient(`mqtt://127.0.0.1:${port}`, login('steady', undefined, undefined));
    await connackOf(steady);
    const got = collect(steady);
    await steady.subscribeAsync('steady/#', { qos: 1 });

    const FLOOD = 60;
    const flood = await Promise.all(Array.from({ length: FLOOD }, () => raw(port, 5)));
    const outcomes = await Promise.all(flood.map((r, i) => outcome(r, { clientId: `flood-${i}` })));
    const closed = outcomes.filter((o) => o === 'closed').length;
    assert.ok(closed > 0, 'some of the flood was closed without a CONNACK');
    assert.ok(
      outcomes.every((o) => o === 'closed' || o === 0),
      `admitted or closed, nothing else: ${outcomes}`,
    );
    assert.ok(closed > FLOOD / 2, `most of the flood was closed: ${closed} of ${FLOOD}`);

    await steady.publishAsync('steady/still', 'here', { qos: 1 });
    await untilPayload(got, 'here');
    assert.equal(steady.connected, true);
    await stop(cicada);
  });
});

describe('connection caps from the config', { timeout: 2 * SAFETY_MS }, () => {
  test('limits.maxConnections 2: the third client gets 0x97 (5.0) or 3 (3.1.1); a freed place is taken again', async () => {
    const config = await writeConfig(join(dir(), 'max.json'), {
      listen: [LOCAL],
      limits: { maxConnections: 2 },
    });
    const cicada = await startReady(['--config', config, '--allow-anonymous'], dir());
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;
    const first = mqttClient(url, login('first', undefined, undefined));
    const second = mqttClient(url, login('second', undefined, undefined));
    await Promise.all([connackOf(first), connackOf(second)]);
    assert.equal(await refusal(mqttClient(url, login('third-5', undefined, undefined, 5))), 0x97);
    assert.equal(await refusal(mqttClient(url, login('third-4', undefined, undefined, 4))), 3);

    await first.endAsync();
    await eventually(
      () => admits(url, login('later', undefined, undefined)),
      'a place freed by a leaving client',
    );
    await stop(cicada);
  });

  test('a listener with maxConnections 1 of its own; the other listener is not capped by it', async () => {
    const CAPPED = 'tcp://127.0.0.1:0';
    const config = await writeConfig(join(dir(), 'listener-max.json'), {
      listen: [LOCAL],
      listeners: [{ url: CAPPED, limits: { maxConnections: 1 } }],
    });
    const cicada = await startReady(['--config', config, '--allow-anonymous'], dir());
    const [open, capped] = await Promise.all([cicada.port(LOCAL), cicada.port(CAPPED)]);
    const inCapped = mqttClient(`mqtt://127.0.0.1:${capped}`, login('capped-1', undefined, undefined));
    await connackOf(inCapped);
    assert.equal(
      await refusal(mqttClient(`mqtt://127.0.0.1:${capped}`, login('capped-2', undefined, undefined))),
      0x97,
    );
    const others = ['open-1', 'open-2', 'open-3'].map((id) =>
      mqttClient(`mqtt://127.0.0.1:${open}`, login(id, undefined, undefined)),
    );
    await Promise.all(others.map((c) => connackOf(c)));
    assert.equal(inCapped.connected, true);
    await stop(cicada);
  });
});
