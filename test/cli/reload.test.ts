import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { IDisconnectPacket, MqttClient } from 'mqtt';
import { describeChange, diffConfig, isLiveSetting } from '../../src/config/diff.js';
import { type CicadaConfig, DEFAULT_CONFIG } from '../../src/config/schema.js';
import { type CicadaProcess, type LogLine, SAFETY_MS, startCicada } from '../helpers/cicada-process.js';
import { connackOf, mqttConnect, within } from '../helpers/mqtt-client.js';
import { publishCode } from '../helpers/mqtt-codes.js';
import { fileDir } from './security-fixture.js';

const dirOf = fileDir('cicada-reload-');

/** 0x90 Topic Name invalid: what a PUBACK says to a topic longer than mqtt.maxTopicLength. */
const TOPIC_NAME_INVALID = 0x90;
/** 0x8B Server shutting down. */
const SERVER_SHUTTING_DOWN = 0x8b;
const LONG_TOPIC = 'sensors/a-topic-well-over-twenty-bytes';

/** Config text: anonymous clients, memory store, one local listener, and `extra` lines. */
function configText(extra = ''): string {
  return `listen: ["mqtt://127.0.0.1:0"]\nstore:\n  type: memory\nauth:\n  allowAnonymous: true\n${extra}`;
}

async function startWith(file: string): Promise<CicadaProcess> {
  const cicada = startCicada(['--config', file], dirOf());
  await cicada.waitFor((line) => line['msg'] === 'ready', 'the ready line');
  return cicada;
}

/** Sends SIGHUP and returns the reload's outcome line (the one-line summary, or the failure). */
async function sighup(cicada: CicadaProcess): Promise<LogLine> {
  const from = cicada.lines.length;
  cicada.child.kill('SIGHUP');
  return cicada.waitFor(
    (line) => typeof line['msg'] === 'string' && line['msg'].startsWith('config reload'),
    'a config reload line',
    from,
  );
}

const clients: MqttClient[] = [];
async function connect(cicada: CicadaProcess): Promise<MqttClient> {
  const port = await cicada.port('mqtt://127.0.0.1:0');
  const c = mqttConnect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5 });
  clients.push(c);
  await connackOf(c);
  return c;
}

describe('SIGHUP reloads the config file', { timeout: 4 * SAFETY_MS }, () => {
  test('logLevel and mqtt.maxTopicLength apply live; a new listener and a passphrase need a restart', async (t) => {
    t.after(() => {
      for (const c of clients.splice(0)) c.end(true);
    });
    const file = join(dirOf(), 'live.yaml');
    await writeFile(file, configText('logLevel: info\n'));
    const cicada = await startWith(file);

    const before = await connect(cicada);
    assert.equal(await publishCode(before, LONG_TOPIC, 1), 0);
    await before.subscribeAsync('info/level', { qos: 0 });
    assert.ok(!cicada.lines.some((line) => line['msg'] === 'subscribed'), 'no debug lines at info');

    const secret = 'correct-horse-battery';
    await writeFile(
      file,
      configText(
        `logLevel: debug\nmqtt:\n  maxTopicLength: 20\ntls:\n  passphrase: ${secret}\n` +
          'listeners:\n  - url: mqtt://127.0.0.1:0\n',
      ),
    );
    const reloaded = await sighup(cicada);
    assert.equal(reloaded['msg'], 'config reloaded: some changes need a restart');
    assert.deepEqual(reloaded['applied'], ['logLevel: "info" → "debug"', 'mqtt.maxTopicLength: 4096 → 20']);
    const pending = reloaded['needsRestart'] as string[];
    assert.ok(pending.includes('tls.passphrase: (changed)'), JSON.stringify(pending));
    assert.ok(pending.includes('listeners[0].url: (unset) → "mqtt://127.0.0.1:0"'), JSON.stringify(pending));
    assert.ok(!cicada.stdout().includes(secret), 'the passphrase is never logged');
    // The new listener was not opened: still one listening line.
    assert.equal(cicada.lines.filter((line) => line['msg'] === 'listening').length, 1);

    // Seen in behaviour: a new connection gets the shorter topic limit, and debug lines appear.
    const after = await connect(cicada);
    assert.equal(await publishCode(after, LONG_TOPIC, 1), TOPIC_NAME_INVALID);
    assert.equal(await publishCode(after, 'sensors/short', 1), 0);
    await after.subscribeAsync('debug/level', { qos: 0 });
    await cicada.waitFor(
      (line) => line['msg'] === 'subscribed' && line['filter'] === 'debug/level' && line['level'] === 'debug',
      'a debug line for the subscription',
    );

    // A second reload with nothing new reports the restart-needing changes again.
    const again = await sighup(cicada);
    assert.deepEqual(again['applied'], []);
    assert.ok((again['needsRestart'] as string[]).includes('tls.passphrase: (changed)'));

    cicada.child.kill('SIGTERM');
    assert.equal((await cicada.exited).code, 0);
  });

  test('a broken config file keeps the running configuration and logs why', async (t) => {
    t.after(() => {
      for (const c of clients.splice(0)) c.end(true);
    });
    const file = join(dirOf(), 'broken.yaml');
    await writeFile(file, configText('mqtt:\n  maxTopicLength: 20\n'));
    const cicada = await startWith(file);

    await writeFile(file, configText('mqtt:\n  maxTopicLength: 4096\n  recieveMaximum: 5\n'));
    const failed = await sighup(cicada);
    assert.equal(failed['level'], 'error');
    assert.equal(failed['msg'], 'config reload failed: keeping the running configuration');
    assert.match(
      String(failed['reason']),
      /unknown key 'mqtt\.recieveMaximum' \(did you mean 'mqtt\.receiveMaximum'\?\)/,
    );

    await writeFile(file, 'listen: [\n');
    assert.match(String((await sighup(cicada))['reason']), /YAML syntax error/);

    // Still running, with the old limit (the broken file's 4096 was not applied).
    const c = await connect(cicada);
    assert.equal(await publishCode(c, LONG_TOPIC, 1), TOPIC_NAME_INVALID);

    // The file fixed: the reload goes through.
    await writeFile(file, configText('mqtt:\n  maxTopicLength: 4096\n'));
    const fixed = await sighup(cicada);
    assert.deepEqual(fixed['applied'], ['mqtt.maxTopicLength: 20 → 4096']);
    assert.equal(await publishCode(await connect(cicada), LONG_TOPIC, 1), 0);

    cicada.child.kill('SIGTERM');
    assert.equal((await cicada.exited).code, 0);
  });
});

describe('SIGTERM shuts down gracefully', { timeout: 4 * SAFETY_MS }, () => {
  test('connected MQTT 5 clients get DISCONNECT 0x8B and the process exits 0', async () => {
    const file = join(dirOf(), 'term.yaml');
    await writeFile(file, configText('shutdownTimeout: 30\n'));
    const cicada = await startWith(file);
    const a = await connect(cicada);
    const b = await connect(cicada);
    const disconnects = [a, b].map(
      (c) =>
        new Promise<number | undefined>((resolve) => {
          c.once('disconnect', (packet: IDisconnectPacket) => resolve(packet.reasonCode));
        }),
    );
    cicada.child.kill('SIGTERM');
    assert.deepEqual(await within(Promise.all(disconnects), 'DISCONNECT packets'), [
      SERVER_SHUTTING_DOWN,
      SERVER_SHUTTING_DOWN,
    ]);
    const { code } = await cicada.exited;
    assert.equal(code, 0, cicada.stderr());
    const shutting = cicada.lines.find((line) => line['msg'] === 'shutting down');
    assert.equal(shutting?.['shutdownTimeout'], 30);
    assert.ok(cicada.lines.some((line) => line['msg'] === 'stopped'));
    for (const c of [a, b]) c.end(true);
  });
});

describe('config diff (unit)', () => {
  test('dotted keys with old and new values; secrets only as changed, also inside a new listener', () => {
    const before = structuredClone(DEFAULT_CONFIG) as CicadaConfig;
    const after = structuredClone(DEFAULT_CONFIG) as CicadaConfig;
    after.mqtt.receiveMaximum = 5;
    after.tls.passphrase = 'p4ss';
    after.listeners = [];
    after.listeners[0] = {
      url: 'mqtts://0.0.0.0:8883',
      tls: { ...DEFAULT_CONFIG.tls, passphrase: 'hidden-too' },
      proxyProtocol: false,
      limits: {},
    };
    const lines = diffConfig(before, after).map(describeChange);
    assert.ok(lines.includes('mqtt.receiveMaximum: 1024 → 5'), lines.join('; '));
    assert.ok(lines.includes('tls.passphrase: (changed)'));
    assert.ok(lines.includes('listeners[0].tls.passphrase: (changed)'));
    assert.ok(lines.includes('listeners[0].url: (unset) → "mqtts://0.0.0.0:8883"'));
    assert.ok(!lines.join(' ').includes('p4ss') && !lines.join(' ').includes('hidden-too'));
    assert.deepEqual(diffConfig(before, structuredClone(before)), []);
  });

  test('what is live and what needs a restart', () => {
    for (const key of [
      'logLevel',
      'shutdownTimeout',
      'mqtt.maxTopicLength',
      'mqtt.receiveMaximum',
      'limits.maxConnections',
    ])
      assert.ok(isLiveSetting(key), key);
    for (const key of [
      'listen',
      'listeners[0].url',
      'mqtt.maxPacketSize',
      'store.type',
      'auth.passwordFile',
      'limits.memoryHighWaterMark',
    ])
      assert.ok(!isLiveSetting(key), key);
  });
});
