import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { applyEnvironment, ENV_SETTINGS, envVariableName } from '../../src/config/env.js';
import { ConfigError } from '../../src/config/load.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import {
  type CicadaProcess,
  killCicadas,
  runCicada,
  SAFETY_MS,
  startCicada,
} from '../helpers/cicada-process.js';
import { connackOf, mqttConnect } from '../helpers/mqtt-client.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cicada-env-'));
});
after(async () => {
  killCicadas();
  await rm(dir, { recursive: true, force: true });
});

/** Runs `fn` with `vars` in this process's environment (a child spawned in it inherits them). */
function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const saved = Object.keys(vars).map((name) => [name, process.env[name]] as const);
  Object.assign(process.env, vars);
  try {
    return fn();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** The ConfigError `applyEnvironment` raises for `env`, checked to be one line. */
function envError(env: Record<string, string>): string {
  try {
    applyEnvironment(DEFAULT_CONFIG, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.ok(!error.message.includes('\n'), error.message);
    return error.message;
  }
  assert.fail(`accepted: ${JSON.stringify(env)}`);
}

describe('environment variables (unit)', () => {
  test('names follow the dotted keys in upper snake case; lists of sections have none', () => {
    assert.equal(envVariableName('mqtt.receiveMaximum'), 'CICADA_MQTT_RECEIVE_MAXIMUM');
    assert.equal(envVariableName('auth.allowAnonymous'), 'CICADA_AUTH_ALLOW_ANONYMOUS');
    assert.equal(envVariableName('auth.jwt.secretFile'), 'CICADA_AUTH_JWT_SECRET_FILE');
    assert.equal(envVariableName('broker.maximumQoS'), 'CICADA_BROKER_MAXIMUM_QOS');
    const keys = ENV_SETTINGS.map((s) => s.key);
    assert.ok(keys.includes('listen') && keys.includes('logLevel') && keys.includes('limits.maxConnections'));
    assert.ok(!keys.some((key) => key.startsWith('listeners')), 'listeners are not settable');
  });

  test('values are parsed like the file gives them: integers, booleans, enums, comma lists', () => {
    const config = applyEnvironment(DEFAULT_CONFIG, {
      CICADA_MQTT_RECEIVE_MAXIMUM: '5',
      CICADA_AUTH_ALLOW_ANONYMOUS: 'true',
      CICADA_BROKER_MAXIMUM_QOS: '1',
      CICADA_LOG_LEVEL: 'debug',
      CICADA_LISTEN: 'mqtt://127.0.0.1:1883, ws://127.0.0.1:8080/mqtt',
      CICADA_TLS_PASSPHRASE: ' spaces kept ',
      CICADA_NODE_ARGS: '--cpu-prof',
      CICADA_CONFIG: '/etc/cicada/cicada.yaml',
      PATH: '/bin',
    });
    assert.equal(config.mqtt.receiveMaximum, 5);
    assert.equal(config.auth.allowAnonymous, true);
    assert.equal(config.broker.maximumQoS, 1);
    assert.equal(config.logLevel, 'debug');
    assert.deepEqual(config.listen, ['mqtt://127.0.0.1:1883', 'ws://127.0.0.1:8080/mqtt']);
    assert.equal(config.tls.passphrase, ' spaces kept ');
    // The rest is untouched, and the input is not modified.
    assert.equal(config.mqtt.maxTopicLength, DEFAULT_CONFIG.mqtt.maxTopicLength);
    assert.equal(DEFAULT_CONFIG.mqtt.receiveMaximum, 1024);
  });

  test('an empty value unsets a setting that has no default', () => {
    const base = applyEnvironment(DEFAULT_CONFIG, { CICADA_MQTT_SERVER_KEEP_ALIVE: '30' });
    assert.equal(base.mqtt.serverKeepAlive, 30);
    assert.equal(
      applyEnvironment(base, { CICADA_MQTT_SERVER_KEEP_ALIVE: '' }).mqtt.serverKeepAlive,
      undefined,
    );
  });

  test('a bad value names the variable, the value and what was expected', () => {
    assert.match(
      envError({ CICADA_MQTT_RECEIVE_MAXIMUM: 'lots' }),
      /CICADA_MQTT_RECEIVE_MAXIMUM is "lots", expected an integer from 1 to 65535/,
    );
    assert.match(
      envError({ CICADA_MQTT_RECEIVE_MAXIMUM: '0' }),
      /CICADA_MQTT_RECEIVE_MAXIMUM is 0, expected an integer from 1 to 65535/,
    );
    assert.match(
      envError({ CICADA_AUTH_ALLOW_ANONYMOUS: 'yes' }),
      /CICADA_AUTH_ALLOW_ANONYMOUS is "yes", expected true or false/,
    );
    assert.match(
      envError({ CICADA_LOG_LEVEL: 'loud' }),
      /CICADA_LOG_LEVEL is "loud", expected one of error, warn, info, debug/,
    );
    assert.match(
      envError({ CICADA_LISTEN: 'mqtt://127.0.0.1:1,gopher://x' }),
      /CICADA_LISTEN\[1\] is "gopher:\/\/x", expected a URL/,
    );
    assert.match(
      envError({ CICADA_LISTEN: '' }),
      /CICADA_LISTEN is \[\], expected at least one listener URL/,
    );
  });

  test('an unknown variable is an error with the closest name; listeners say why', () => {
    assert.match(
      envError({ CICADA_MQTT_RECIEVE_MAXIMUM: '5' }),
      /unknown variable CICADA_MQTT_RECIEVE_MAXIMUM \(did you mean CICADA_MQTT_RECEIVE_MAXIMUM\?\)/,
    );
    assert.match(
      envError({ CICADA_MQTT_MAXIMUM_QOS: '1' }),
      /unknown variable CICADA_MQTT_MAXIMUM_QOS \(did you mean CICADA_BROKER_MAXIMUM_QOS\?\)/,
    );
    assert.match(
      envError({ CICADA_FROBNICATE: '1' }),
      /unknown variable CICADA_FROBNICATE \(not a Cicada setting\)/,
    );
    assert.match(envError({ CICADA_MQTT: '1' }), /unknown variable CICADA_MQTT /);
    assert.match(
      envError({ CICADA_LISTENERS_0_URL: 'mqtt://127.0.0.1:1' }),
      /CICADA_LISTENERS_0_URL: listeners cannot be set from the environment/,
    );
  });
});

describe('precedence: defaults < file < environment < flags (cicada child process)', {
  timeout: 4 * SAFETY_MS,
}, () => {
  const clients: MqttClient[] = [];
  after(() => {
    for (const c of clients) c.end(true);
  });

  /** Starts cicada with `env` and waits for `ready`; returns it and the URLs it listens on. */
  async function start(
    args: string[],
    env: Record<string, string>,
  ): Promise<{ cicada: CicadaProcess; urls: unknown[] }> {
    const cicada = withEnv(env, () => startCicada(['--memory', ...args], dir));
    await cicada.waitFor((line) => line['msg'] === 'ready', 'the ready line');
    const urls = cicada.lines.filter((line) => line['msg'] === 'listening').map((line) => line['url']);
    return { cicada, urls };
  }

  /** The Receive Maximum an MQTT 5 client is told in CONNACK (anonymous: no credentials). */
  async function receiveMaximum(cicada: CicadaProcess, url: string): Promise<unknown> {
    const port = await cicada.port(url);
    const c = mqttConnect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5 });
    clients.push(c);
    const connack = await connackOf(c);
    c.end(true);
    return connack.properties?.receiveMaximum;
  }

  async function stopped(cicada: CicadaProcess): Promise<void> {
    cicada.child.kill('SIGTERM');
    assert.equal((await cicada.exited).code, 0, cicada.stderr());
  }

  test('the file, then the environment over it, then a flag over both', async () => {
    const file = join(dir, 'precedence.yaml');
    // logLevel error in the file: the environment's info must win, or no ready line comes.
    await writeFile(file, 'listen: ["mqtt://127.0.0.1:0"]\nmqtt:\n  receiveMaximum: 10\nlogLevel: error\n');
    // Anonymous access comes from the environment alone (no --allow-anonymous).
    const anonymous = { CICADA_AUTH_ALLOW_ANONYMOUS: 'true', CICADA_LOG_LEVEL: 'info' };
    const env = { ...anonymous, CICADA_LISTEN: 'tcp://127.0.0.1:0' };
    const fromFile = await start(['--config', file], anonymous);
    assert.deepEqual(fromFile.urls, ['mqtt://127.0.0.1:0']);
    assert.equal(await receiveMaximum(fromFile.cicada, 'mqtt://127.0.0.1:0'), 10);
    await stopped(fromFile.cicada);

    const fromEnv = await start(['--config', file], { ...env, CICADA_MQTT_RECEIVE_MAXIMUM: '20' });
    assert.deepEqual(fromEnv.urls, ['tcp://127.0.0.1:0']);
    assert.equal(await receiveMaximum(fromEnv.cicada, 'tcp://127.0.0.1:0'), 20);
    await stopped(fromEnv.cicada);

    const fromFlag = await start(['--config', file, '--listen', 'mqtt://localhost:0'], {
      ...env,
      CICADA_MQTT_RECEIVE_MAXIMUM: '20',
    });
    assert.deepEqual(fromFlag.urls, ['mqtt://localhost:0']);
    assert.equal(await receiveMaximum(fromFlag.cicada, 'mqtt://localhost:0'), 20);
    await stopped(fromFlag.cicada);
  });

  test('CICADA_CONFIG names the file when --config is not given', async () => {
    const file = join(dir, 'named.yaml');
    await writeFile(file, 'listen: ["tcp://127.0.0.1:0"]\nauth:\n  allowAnonymous: true\n');
    const { cicada, urls } = await start([], { CICADA_CONFIG: file });
    assert.deepEqual(urls, ['tcp://127.0.0.1:0']);
    await stopped(cicada);
  });

  test('a bad or unknown variable stops start-up with one line and exit 1', async () => {
    const bad = await withEnv({ CICADA_MQTT_RECEIVE_MAXIMUM: '70000' }, () =>
      runCicada(['--memory', '--listen', 'mqtt://127.0.0.1:0'], dir),
    );
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      'cicada: config environment: CICADA_MQTT_RECEIVE_MAXIMUM is 70000, expected an integer from 1 to 65535\n',
    );
    assert.equal(bad.stdout, '');
    const unknown = await withEnv({ CICADA_LOGLEVEL: 'debug' }, () =>
      runCicada(['--memory', '--listen', 'mqtt://127.0.0.1:0'], dir),
    );
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr,
      'cicada: config environment: unknown variable CICADA_LOGLEVEL (did you mean CICADA_LOG_LEVEL?)\n',
    );
  });
});
