import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { HS_SECRET, token } from '../auth/jwt-support.js';
import { requireBinary, runProgram } from '../auth/support.js';
import { authPacket, challenge, connectPacket } from '../helpers/enhanced-auth.js';
import { collect, connackOf, perTest, untilPayload } from '../helpers/mqtt-client.js';
import { publishCode, subackCodes } from '../helpers/mqtt-codes.js';
import { ScramClient } from '../helpers/scram-client.js';
import {
  admits,
  eventually,
  failureOf,
  fileDir,
  LOCAL,
  logged,
  login,
  NO_WAY_IN,
  passwd,
  refusal,
  reloadFailures,
  sighup,
  startReady,
  stop,
  writeConfig,
} from './security-fixture.js';

/**
 * Authentication through the `cicada` command: anonymous access off by default, a password
 * file made by `cicada passwd` (MQTT.js, mosquitto_pub, SCRAM-SHA-256), its reload on change
 * and on SIGHUP, and what the log says about refusals (never the password).
 */

const dir = fileDir('cli-security');
const { mqttClient, raw } = perTest();

describe('anonymous access', { timeout: 60_000 }, () => {
  test('off by default: 0x87 (5.0) and 5 (3.1.1), one failure line per attempt, and a start-up warning', async () => {
    const cicada = await startReady(['--listen', LOCAL], dir());
    const warning = logged(cicada, NO_WAY_IN);
    assert.equal(warning.length, 1, 'nothing configured: the operator is told');
    assert.equal(warning[0]?.['level'], 'warn');
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;

    assert.equal(await refusal(mqttClient(url, login('anon-5', undefined, undefined, 5))), 0x87);
    assert.equal(await refusal(mqttClient(url, login('anon-4', undefined, undefined, 4))), 5);
    await failureOf(cicada, 'anon-4');
    await stop(cicada);

    const failures = logged(cicada, 'authentication failed');
    assert.deepEqual(
      failures.map((line) => [line['clientId'], line['by'], line['reason'], line['level']]),
      [
        ['anon-5', 'anonymous', 'anonymous access is not allowed', 'warn'],
        ['anon-4', 'anonymous', 'anonymous access is not allowed', 'warn'],
      ],
    );
    for (const line of failures) {
      assert.equal(line['remoteAddress'], '127.0.0.1');
      assert.equal(line['listener'], LOCAL);
      assert.ok(!('password' in line) && !('username' in line), JSON.stringify(line));
    }
    assert.equal(logged(cicada, 'client connected').length, 0);
  });

  test('--allow-anonymous lets a client in without credentials, and there is no warning', async () => {
    const cicada = await startReady(['--listen', LOCAL, '--allow-anonymous'], dir());
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;
    const client = mqttClient(url, login('anon-ok', undefined, undefined));
    assert.equal((await connackOf(client)).reasonCode, 0);
    const got = collect(client);
    await client.subscribeAsync('open/door', { qos: 1 });
    await client.publishAsync('open/door', 'come in', { qos: 1 });
    await untilPayload(got, 'come in');
    await stop(cicada);
    assert.equal(logged(cicada, NO_WAY_IN).length, 0);
    assert.equal(logged(cicada, 'authentication failed').length, 0);
    assert.equal(logged(cicada, 'client connected')[0]?.['clientId'], 'anon-ok');
  });

  test("a listener's allowAnonymous lets clients in there only, and counts as a way in", async () => {
    const WS = 'ws://127.0.0.1:0/mqtt';
    const config = await writeConfig(join(dir(), 'open-ws.json'), {
      listen: [LOCAL],
      listeners: [{ url: WS, allowAnonymous: true }],
    });
    const cicada = await startReady(['--config', config], dir());
    assert.equal(logged(cicada, NO_WAY_IN).length, 0, 'the ws listener is a way in');
    const [plain, ws] = await Promise.all([cicada.port(LOCAL), cicada.port(WS)]);
    const open = mqttClient(`ws://127.0.0.1:${ws}/mqtt`, login('over-ws', undefined, undefined));
    assert.equal((await connackOf(open)).reasonCode, 0);
    assert.equal(
      await refusal(mqttClient(`mqtt://127.0.0.1:${plain}`, login('plain', undefined, undefined))),
      0x87,
    );
    await stop(cicada);
  });
});

describe('a password file made by cicada passwd', { timeout: 120_000 }, () => {
  test('mosquitto_pub -u -P: the right password publishes, a wrong one is refused and never logged', async () => {
    const pub = requireBinary('mosquitto_pub', 'mosquitto-clients');
    const file = join(dir(), 'passwords');
    await passwd(file, 'alice', 'wonderland', ['-c']);
    const cicada = await startReady(['--listen', LOCAL, '--password-file', file], dir());
    assert.equal(logged(cicada, NO_WAY_IN).length, 0, 'a password file is a way in');
    const port = await cicada.port(LOCAL);

    const reader = mqttClient(`mqtt://127.0.0.1:${port}`, login('reader', 'alice', 'wonderland'));
    await connackOf(reader);
    const got = collect(reader);
    await reader.subscribeAsync('cli/passwords', { qos: 1 });
    const common = ['-h', '127.0.0.1', '-p', String(port), '-t', 'cli/passwords', '-q', '1', '-u', 'alice'];
    const publish = (version: string, clientId: string, password: string) =>
      runProgram(pub, [...common, '-V', version, '-i', clientId, '-P', password, '-m', version]);
    for (const version of ['mqttv311', 'mqttv5']) {
      const right = await publish(version, `right-${version}`, 'wonderland');
      assert.equal(right.code, 0, right.stderr);
      await untilPayload(got, version);
      const wrong = await publish(version, `wrong-${version}`, 'Guessed-4711');
      assert.notEqual(wrong.code, 0, 'a wrong password is refused');
      assert.match(wrong.stderr, /bad user name or password/i);
      const failure = await failureOf(cicada, `wrong-${version}`);
      assert.equal(failure['username'], 'alice');
      assert.equal(failure['by'], 'password-file');
      assert.equal(failure['reason'], 'wrong password');
    }
    await stop(cicada);
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      ['mqttv311', 'mqttv5'],
    );
    assert.equal(logged(cicada, 'authentication failed').length, 2);
    assert.ok(!cicada.stdout().includes('Guessed-4711'), 'the wrong password is not in the log');
    assert.ok(!cicada.stdout().includes('wonderland'), 'nor the right one');
  });

  test('SCRAM-SHA-256 over MQTT 5 for a user cicada passwd made; a wrong password fails with 0x87', async () => {
    const file = join(dir(), 'scram-passwords');
    await passwd(file, 'alice', 'wonderland', ['-c']);
    const cicada = await startReady(['--listen', LOCAL, '--password-file', file], dir());
    const port = await cicada.port(LOCAL);

    const right = await raw(port, 5);
    const side = new ScramClient('alice', 'wonderland');
    const first = await challenge(right, side, 'scram-right');
    right.send(authPacket(0x18, side.final(first.properties?.authenticationData)));
    const connack = await right.next('connack');
    assert.equal(connack.reasonCode, 0);
    assert.ok(side.verify(connack.properties?.authenticationData), 'the server proves it holds the verifier');
    const connected = await cicada.waitFor((l) => l['msg'] === 'client connected', 'client connected');
    assert.equal(connected['username'], 'alice', 'SCRAM named the user');

    const wrong = await raw(port, 5);
    const guess = new ScramClient('alice', 'wonderlanD');
    const second = await challenge(wrong, guess, 'scram-wrong');
    wrong.send(authPacket(0x18, guess.final(second.properties?.authenticationData)));
    assert.equal((await wrong.next('connack')).reasonCode, 0x87);
    const failure = await failureOf(cicada, 'scram-wrong');
    assert.equal(failure['by'], 'SCRAM-SHA-256');
    await stop(cicada);
    assert.ok(!cicada.stdout().includes('wonderlanD'));
  });

  test('a listener whose auth list leaves out password-file offers no SCRAM (0x8C); the others still do', async () => {
    const file = join(dir(), 'scram-jwt-passwords');
    await passwd(file, 'alice', 'wonderland', ['-c']);
    const secretFile = join(dir(), 'scram-jwt-secret');
    await writeFile(secretFile, HS_SECRET);
    const TOKENS_ONLY = 'tcp://127.0.0.1:0';
    const config = await writeConfig(join(dir(), 'tokens-only.json'), {
      listen: [LOCAL],
      listeners: [{ url: TOKENS_ONLY, auth: ['jwt'] }],
      auth: { passwordFile: file, jwt: { algorithm: 'HS256', secretFile } },
    });
    const cicada = await startReady(['--config', config], dir());
    const [everyWay, tokensOnly] = await Promise.all([cicada.port(LOCAL), cicada.port(TOKENS_ONLY)]);

    const there = await raw(tokensOnly, 5);
    there.send(connectPacket('scram-tokens-only', new ScramClient('alice', 'wonderland').first()));
    assert.equal((await there.next('connack')).reasonCode, 0x8c, 'Bad authentication method');
    const byPassword = mqttClient(
      `mqtt://127.0.0.1:${tokensOnly}`,
      login('pw-tokens-only', 'alice', 'wonderland'),
    );
    assert.equal(await refusal(byPassword), 0x86);

    const here = await raw(everyWay, 5);
    const side = new ScramClient('alice', 'wonderland');
    const first = await challenge(here, side, 'scram-every-way');
    here.send(authPacket(0x18, side.final(first.properties?.authenticationData)));
    assert.equal((await here.next('connack')).reasonCode, 0);
    await stop(cicada);
  });

  test('a changed file is picked up without a signal: a new password works, the old one no longer', async () => {
    const file = join(dir(), 'watched-passwords');
    await passwd(file, 'alice', 'wonderland', ['-c']);
    // Retries below are refusals: let them through unslowed.
    const config = await writeConfig(join(dir(), 'no-throttle.json'), {
      auth: { throttle: { freeFailures: 1_000_000 } },
    });
    const cicada = await startReady(['--config', config, '--listen', LOCAL, '--password-file', file], dir());
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;
    assert.equal(await admits(url, login('before', 'alice', 'wonderland')), true);

    await passwd(file, 'alice', 'looking-glass');
    let tries = 0;
    await eventually(
      () => admits(url, login(`retry-${++tries}`, 'alice', 'looking-glass')),
      'the new password admits',
    );
    assert.equal(await refusal(mqttClient(url, login('old', 'alice', 'wonderland'))), 0x86);
    await stop(cicada);
    assert.equal(logged(cicada, 'reloading').length, 0, 'no SIGHUP was needed');
  });

  test('SIGHUP re-reads the file (logged reloading, reloaded); a broken file leaves the old users in', async () => {
    // The broker is given a link in a directory of its own, and the file behind it changes
    // elsewhere: the directory watch sees nothing, so only SIGHUP can reload it.
    const real = join(dir(), 'hup-real');
    const linked = join(dir(), 'hup-link');
    await Promise.all([mkdir(real), mkdir(linked)]);
    const file = join(real, 'passwords');
    await passwd(file, 'alice', 'wonderland', ['-c']);
    await symlink(file, join(linked, 'passwords'));
    const cicada = await startReady(['--listen', LOCAL, '--password-file', join(linked, 'passwords')], dir());
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;

    await passwd(file, 'carol', 'carol-pw');
    assert.equal(await refusal(mqttClient(url, login('carol-1', 'carol', 'carol-pw'))), 0x86, 'not yet');
    assert.deepEqual(reloadFailures(await sighup(cicada)), []);
    assert.equal(await admits(url, login('carol-2', 'carol', 'carol-pw')), true, 'carol is in after SIGHUP');

    await writeFile(file, 'alice has no colon\n');
    const [failed, ...more] = reloadFailures(await sighup(cicada));
    assert.ok(failed !== undefined && more.length === 0, 'one reload failed line');
    assert.equal(failed['level'], 'error');
    assert.match(JSON.stringify(failed['error']), /passwords:1: expected username:hash/);
    assert.equal(await admits(url, login('alice-after', 'alice', 'wonderland')), true, 'the old users stay');
    await stop(cicada);
  });
});

describe('JSON Web Tokens from the config', { timeout: 60_000 }, () => {
  test('HS256 with a secretFile: a valid token admits, an expired or forged one not; its ACL claim restricts topics', async () => {
    const secretFile = join(dir(), 'jwt-secret');
    await writeFile(secretFile, `${HS_SECRET}\n`);
    const config = await writeConfig(join(dir(), 'jwt.json'), {
      listen: [LOCAL],
      auth: { jwt: { algorithm: 'HS256', secretFile } },
    });
    const cicada = await startReady(['--config', config], dir());
    assert.equal(logged(cicada, NO_WAY_IN).length, 0, 'tokens are a way in');
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;
    const now = Math.floor(Date.now() / 1000);
    const grant = (publish: string[], subscribe: string[]) => ({
      exp: now + 3600,
      acl: { publish, subscribe },
    });

    const sensorToken = token('HS256', HS_SECRET, {
      sub: 'sensor-7',
      ...grant(['sensors/sensor-7/#'], ['commands/sensor-7/#']),
    });
    const sensor = mqttClient(url, login('sensor-7', 'anyone', sensorToken));
    assert.equal((await connackOf(sensor)).reasonCode, 0);
    const controllerToken = token('HS256', HS_SECRET, {
      sub: 'controller',
      ...grant(['commands/#'], ['sensors/#']),
    });
    const controller = mqttClient(url, login('controller', 'controller', controllerToken));
    await connackOf(controller);
    const toSensor = collect(sensor);
    const toController = collect(controller);

    // No ACL file: the grants alone decide. commands/# is partly readable for the sensor:
    // allowed, and filtered message by message (docs/acl.md).
    assert.deepEqual(
      await subackCodes(sensor, ['commands/sensor-7/#', 'commands/#', 'sensors/#']),
      [1, 1, 0x87],
    );
    assert.deepEqual(await subackCodes(controller, ['sensors/#', 'alerts/#']), [1, 0x87]);
    assert.equal(await publishCode(sensor, 'sensors/sensor-8/temp', 1), 0x87);
    assert.equal(await publishCode(sensor, 'sensors/sensor-7/temp', 1), 0);
    assert.equal(await publishCode(controller, 'sensors/sensor-7/fake', 1), 0x87);
    assert.equal(await publishCode(controller, 'commands/sensor-8/reboot', 1), 0);
    assert.equal(await publishCode(controller, 'commands/sensor-7/reboot', 1), 0);
    await untilPayload(toController, 'to sensors/sensor-7/temp');
    await untilPayload(toSensor, 'to commands/sensor-7/reboot');
    assert.deepEqual(
      toController.map((m) => m.topic),
      ['sensors/sensor-7/temp'],
      'the denied publishes went nowhere',
    );
    assert.deepEqual(
      [...new Set(toSensor.map((m) => m.topic))],
      ['commands/sensor-7/reboot'],
      'the sensor reads only its own commands, even through commands/#',
    );

    const expired = token('HS256', HS_SECRET, { sub: 'sensor-7', exp: now - 3600 });
    assert.equal(await refusal(mqttClient(url, login('expired', 'sensor-7', expired))), 0x86);
    const forged = token('HS256', 'another secret of more than thirty-two bytes', {
      sub: 'root',
      exp: now + 3600,
    });
    assert.equal(await refusal(mqttClient(url, login('forged', 'root', forged))), 0x86);
    assert.deepEqual(
      [await failureOf(cicada, 'expired'), await failureOf(cicada, 'forged')].map((l) => [
        l['by'],
        l['reason'],
      ]),
      [
        ['jwt', 'token expired'],
        ['jwt', 'bad signature'],
      ],
    );
    await stop(cicada);
    for (const jwt of [sensorToken, controllerToken, expired, forged]) {
      assert.ok(!cicada.stdout().includes(jwt.split('.')[2]!), 'no token in the log');
    }
  });
});
