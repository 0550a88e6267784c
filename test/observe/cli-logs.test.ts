import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { HS_SECRET, token } from '../auth/jwt-support.js';
import {
  failureOf,
  fileDir,
  LOCAL,
  logged,
  login,
  passwd,
  refusal,
  startReady,
  stop,
  writeConfig,
} from '../cli/security-fixture.js';
import { until } from '../helpers/broker.js';
import { collect, connackOf, perTest } from '../helpers/mqtt-client.js';
import { parseExposition, sampleValue } from './exposition.js';

/**
 * The `cicada` command's observability end to end: one log line per connect, per disconnect
 * (with its reason) and per refused login, and never a password or token in the log, after
 * successful and failed logins with a password and with a JWT; refusals counted in
 * `/metrics`; `$SYS` switched on by the config.
 */

const dir = fileDir('cli-observe');
const { mqttClient } = perTest();

const HTTP = 'http://127.0.0.1:0';
const RIGHT_PASSWORD = 'Wonder-pass-91';
const WRONG_PASSWORD = 'Guessed-4711-x';
const ADMIN_TOKEN = 'admin-token-never-logged-5150';

describe('cicada logs and metrics', { timeout: 90_000 }, () => {
  test('connect, disconnect and refusal lines; no password or token in the log; refusals in /metrics', async () => {
    const passwords = join(dir(), 'passwords');
    await passwd(passwords, 'alice', RIGHT_PASSWORD, ['-c']);
    const secretFile = join(dir(), 'jwt-secret');
    await writeFile(secretFile, `${HS_SECRET}\n`);
    const config = await writeConfig(join(dir(), 'observe.json'), {
      listen: [LOCAL, HTTP],
      auth: { passwordFile: passwords, jwt: { algorithm: 'HS256', secretFile } },
      http: { adminToken: ADMIN_TOKEN },
      sys: { interval: 1 },
    });
    const cicada = await startReady(['--config', config], dir());
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;
    const base = `http://127.0.0.1:${await cicada.port(HTTP)}`;
    const now = Math.floor(Date.now() / 1000);
    const validToken = token('HS256', HS_SECRET, { sub: 'sensor-7', exp: now + 3600 });
    const forgedToken = token('HS256', 'another secret of more than thirty-two bytes', {
      sub: 'root',
      exp: now + 3600,
    });

    const alice = mqttClient(url, login('alice-1', 'alice', RIGHT_PASSWORD));
    await connackOf(alice);
    const sensor = mqttClient(url, login('sensor-1', 'anyone', validToken, 4));
    await connackOf(sensor);
    assert.equal(await refusal(mqttClient(url, login('alice-wrong', 'alice', WRONG_PASSWORD))), 0x86);
    assert.equal(await refusal(mqttClient(url, login('root-forged', 'root', forgedToken))), 0x86);
    const failures = [await failureOf(cicada, 'alice-wrong'), await failureOf(cicada, 'root-forged')];
    assert.deepEqual(
      failures.map((line) => [line['level'], line['by'], line['username']]),
      [
        ['warn', 'password-file', 'alice'],
        ['warn', 'jwt', 'root'],
      ],
    );

    // $SYS is on (sys.interval from the config), read by a client the ACL (none) lets in.
    const got = collect(alice);
    await alice.subscribeAsync('$SYS/broker/clients/connected', { qos: 0 });
    await until(() => got.some((m) => m.payload.toString() === '2'), '$SYS/broker/clients/connected = 2');

    // The refusals are counted where Prometheus scrapes them (no auth: metricsAuth is off).
    const response = await fetch(`${base}/metrics`);
    assert.equal(response.status, 200);
    const metrics = parseExposition(await response.text());
    assert.equal(sampleValue(metrics, 'cicada_auth_failures_total', { by: 'password-file' }), 1);
    assert.equal(sampleValue(metrics, 'cicada_auth_failures_total', { by: 'jwt' }), 1);
    assert.equal(sampleValue(metrics, 'cicada_connections', { protocol: 'mqtt' }), 2);

    await alice.endAsync();
    await cicada.waitFor(
      (line) => line['msg'] === 'client disconnected' && line['clientId'] === 'alice-1',
      'the disconnect line of alice-1',
    );
    sensor.stream.destroy();
    await cicada.waitFor(
      (line) => line['msg'] === 'client disconnected' && line['clientId'] === 'sensor-1',
      'the disconnect line of sensor-1',
    );
    await stop(cicada);

    // One line per connect, per disconnect (with its reason) and per refusal.
    assert.deepEqual(
      logged(cicada, 'client connected').map((line) => [line['clientId'], line['username']]),
      [
        ['alice-1', 'alice'],
        ['sensor-1', 'anyone'],
      ],
    );
    const disconnects = logged(cicada, 'client disconnected');
    assert.deepEqual(
      disconnects.map((line) => line['clientId']),
      ['alice-1', 'sensor-1'],
    );
    assert.equal(disconnects[0]?.['reason'], 'client-disconnect');
    assert.match(String(disconnects[1]?.['reason']), /^(client-closed|socket-closed|socket-error)$/);
    assert.equal(logged(cicada, 'authentication failed').length, 2);

    // No secret anywhere in what the process wrote.
    const output = cicada.stdout() + cicada.stderr();
    for (const [what, secret] of [
      ['the right password', RIGHT_PASSWORD],
      ['the wrong password', WRONG_PASSWORD],
      ['the valid token', validToken],
      ["the valid token's signature", validToken.split('.')[2]!],
      ["the forged token's signature", forgedToken.split('.')[2]!],
      ['the admin token', ADMIN_TOKEN],
      ['the JWT secret', HS_SECRET],
    ] as const) {
      assert.ok(!output.includes(secret), `${what} is not in the log`);
    }
  });
});
