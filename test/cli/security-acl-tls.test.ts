import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { requireBinary, runProgram } from '../auth/support.js';
import { testCerts } from '../helpers/certs.js';
import { runCicada } from '../helpers/cicada-process.js';
import { collect, connackOf, perTest, untilPayload } from '../helpers/mqtt-client.js';
import { publishCode, subackCodes } from '../helpers/mqtt-codes.js';
import { mqttTls, tlsClient } from '../transport/tls-fixture.js';
import {
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
 * Topic access and TLS through the `cicada` command: `--acl-file` in Mosquitto syntax (and its
 * reload on SIGHUP), `mqtts://` listeners from the flags (MQTT.js, mosquitto_pub, client
 * certificates with `--tls-ca`), listeners of a config file with their own TLS, username from
 * the certificate and anonymous access, and the one line a TLS mistake stops start-up with.
 */

const dir = fileDir('cli-acl-tls');
const { mqttClient } = perTest();

describe('--acl-file', { timeout: 60_000 }, () => {
  test('MQTT.js 5.0: SUBACK and PUBACK codes follow the file; SIGHUP reloads it for reconnecting clients', async () => {
    const passwords = join(dir(), 'acl-passwords');
    await passwd(passwords, 'alice', 'alice-pw', ['-c']);
    await passwd(passwords, 'bob', 'bob-pw');
    const acl = join(dir(), 'acl');
    await writeFile(
      acl,
      '# alice owns alice/, everyone reads their own public/ topic\n' +
        'user alice\ntopic readwrite alice/#\ntopic write public/#\n\npattern read public/%u\n',
    );
    const cicada = await startReady(
      ['--listen', LOCAL, '--password-file', passwords, '--acl-file', acl],
      dir(),
    );
    const url = `mqtt://127.0.0.1:${await cicada.port(LOCAL)}`;
    const alice = mqttClient(url, login('alice-1', 'alice', 'alice-pw'));
    const bob = mqttClient(url, login('bob-1', 'bob', 'bob-pw'));
    await Promise.all([connackOf(alice), connackOf(bob)]);
    const toBob = collect(bob);

    assert.deepEqual(
      await subackCodes(alice, ['alice/#', 'public/alice', 'public/bob', 'bob/#']),
      [1, 1, 0x87, 0x87],
    );
    // public/+ is partly readable for bob (only public/bob): allowed, filtered per message.
    assert.deepEqual(await subackCodes(bob, ['public/+', 'alice/#', 'bob/#']), [1, 0x87, 0x87]);
    assert.equal(await publishCode(alice, 'alice/notes', 1), 0);
    assert.equal(await publishCode(alice, 'bob/notes', 1), 0x87);
    assert.equal(await publishCode(bob, 'bob/notes', 1), 0x87, 'bob has no section: nothing to write');
    assert.equal(await publishCode(bob, 'public/bob', 1), 0x87, 'read only');
    assert.equal(await publishCode(alice, 'public/alice', 1), 0);
    assert.equal(await publishCode(alice, 'public/bob', 1), 0);
    await untilPayload(toBob, 'to public/bob');
    assert.deepEqual(
      toBob.map((m) => m.topic),
      ['public/bob'],
    );

    // Bob gets a section, the pattern and alice's public writes go.
    await writeFile(acl, 'user alice\ntopic readwrite alice/#\n\nuser bob\ntopic readwrite bob/#\n');
    assert.deepEqual(reloadFailures(await sighup(cicada)), []);
    await Promise.all([alice.endAsync(), bob.endAsync()]);
    const alice2 = mqttClient(url, login('alice-2', 'alice', 'alice-pw'));
    const bob2 = mqttClient(url, login('bob-2', 'bob', 'bob-pw'));
    await Promise.all([connackOf(alice2), connackOf(bob2)]);
    assert.deepEqual(await subackCodes(bob2, ['bob/#', 'public/bob']), [1, 0x87]);
    assert.equal(await publishCode(bob2, 'bob/notes', 1), 0);
    assert.equal(await publishCode(alice2, 'public/bob', 1), 0x87);
    assert.equal(await publishCode(alice2, 'alice/notes', 1), 0, 'what stayed, stays');
    await stop(cicada);
  });
});

describe('TLS from the command line', { timeout: 60_000 }, () => {
  const MQTTS = 'mqtts://127.0.0.1:0';

  test('--tls-cert and --tls-key: MQTT.js and mosquitto_pub --cafile over mqtts://', async () => {
    const pub = requireBinary('mosquitto_pub', 'mosquitto-clients');
    const certs = await testCerts();
    const tls = ['--tls-cert', certs.server.cert, '--tls-key', certs.server.key];
    const cicada = await startReady(['--listen', MQTTS, ...tls, '--allow-anonymous'], dir());
    const port = await cicada.port(MQTTS);
    const reader = mqttClient(`mqtts://127.0.0.1:${port}`, {
      ...login('tls-reader', undefined, undefined),
      ...mqttTls(certs),
    });
    await connackOf(reader);
    const got = collect(reader);
    await reader.subscribeAsync('tls/cli', { qos: 1 });
    const args = mosquittoTls(port, certs.ca.cert, 'tls/cli');
    const sent = await runProgram(pub, [...args, '-m', 'over tls']);
    assert.equal(sent.code, 0, sent.stderr);
    await untilPayload(got, 'over tls');
    await stop(cicada);
  });

  test('--tls-ca: a client certificate is required (MQTT.js and mosquitto_pub)', async () => {
    const pub = requireBinary('mosquitto_pub', 'mosquitto-clients');
    const certs = await testCerts();
    const tls = ['--tls-cert', certs.server.cert, '--tls-key', certs.server.key, '--tls-ca', certs.ca.cert];
    const cicada = await startReady(['--listen', MQTTS, ...tls, '--allow-anonymous'], dir());
    const port = await cicada.port(MQTTS);
    const url = `mqtts://127.0.0.1:${port}`;

    const without = mqttClient(url, { ...login('no-cert', undefined, undefined), ...mqttTls(certs) });
    await assert.rejects(connackOf(without), { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
    const foreign = mqttClient(url, {
      ...login('foreign', undefined, undefined),
      ...mqttTls(certs, certs.otherCaClient),
    });
    await assert.rejects(connackOf(foreign));
    const reader = mqttClient(url, {
      ...login('with-cert', undefined, undefined),
      ...mqttTls(certs, certs.client),
    });
    await connackOf(reader);
    const got = collect(reader);
    await reader.subscribeAsync('mtls/cli', { qos: 1 });

    const args = mosquittoTls(port, certs.ca.cert, 'mtls/cli');
    const refused = await runProgram(pub, [...args, '-m', 'no certificate']);
    assert.notEqual(refused.code, 0, 'mosquitto_pub without a certificate is refused');
    const sent = await runProgram(pub, [
      ...args,
      '--cert',
      certs.client.cert,
      '--key',
      certs.client.key,
      '-m',
      'with certificate',
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    await untilPayload(got, 'with certificate');
    await stop(cicada);
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      ['with certificate'],
    );
    assert.ok(
      logged(cicada, 'client connected').every(
        (l) => l['clientId'] !== 'no-cert' && l['clientId'] !== 'foreign',
      ),
    );
  });

  test('SIGHUP re-reads the certificate files: new connections get the new certificate', async () => {
    const certs = await testCerts();
    const cert = join(dir(), 'reloaded.pem');
    const key = join(dir(), 'reloaded.key');
    await Promise.all([copyFile(certs.server.cert, cert), copyFile(certs.server.key, key)]);
    const cicada = await startReady(
      ['--listen', MQTTS, '--tls-cert', cert, '--tls-key', key, '--allow-anonymous'],
      dir(),
    );
    const port = await cicada.port(MQTTS);
    const served = async (): Promise<string> => {
      const socket = await tlsClient(port);
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      return fingerprint;
    };
    const [first, second] = [certs.server.certPem, certs.server2.certPem].map(
      (pem) => new X509Certificate(pem).fingerprint256,
    );
    assert.equal(await served(), first);

    await Promise.all([copyFile(certs.server2.cert, cert), copyFile(certs.server2.key, key)]);
    assert.deepEqual(reloadFailures(await sighup(cicada)), []);
    assert.equal(await served(), second);

    await writeFile(key, 'not a key');
    const failed = reloadFailures(await sighup(cicada));
    assert.equal(failed.length, 1, 'a broken key is reported');
    assert.equal(await served(), second, 'and the previous certificate stays in use');
    await stop(cicada);
  });

  test('config listeners: mqtts with usernameFrom cn under an ACL, ws with allowAnonymous, the default still off', async () => {
    const certs = await testCerts();
    const acl = join(dir(), 'cn-acl');
    await writeFile(
      acl,
      '# anonymous clients (here: only the ws listener lets them in) read the devices\n' +
        'topic read devices/#\n\nuser device-1\ntopic readwrite devices/device-1/#\n',
    );
    const WS = 'ws://127.0.0.1:0/mqtt';
    const { cert, key } = certs.server;
    const config = await writeConfig(join(dir(), 'listeners.json'), {
      listen: [LOCAL],
      listeners: [
        { url: MQTTS, tls: { cert, key, ca: certs.ca.cert, requestCert: true, usernameFrom: 'cn' } },
        { url: WS, allowAnonymous: true },
      ],
      acl: { file: acl },
    });
    const cicada = await startReady(['--config', config], dir());
    assert.equal(logged(cicada, NO_WAY_IN).length, 0, 'certificates are a way in');
    const [plain, secure, ws] = await Promise.all([cicada.port(LOCAL), cicada.port(MQTTS), cicada.port(WS)]);

    const anonymous = login('anon', undefined, undefined);
    assert.equal(await refusal(mqttClient(`mqtt://127.0.0.1:${plain}`, anonymous)), 0x87, 'default: off');
    const watcher = mqttClient(`ws://127.0.0.1:${ws}/mqtt`, login('watcher', undefined, undefined));
    await connackOf(watcher);
    const got = collect(watcher);
    assert.deepEqual(await subackCodes(watcher, ['devices/#']), [1]);
    assert.equal(await publishCode(watcher, 'devices/device-1/spoof', 1), 0x87, 'anonymous: read only');

    const device = mqttClient(`mqtts://127.0.0.1:${secure}`, {
      ...login('sensor', undefined, undefined),
      ...mqttTls(certs, certs.client),
    });
    await connackOf(device);
    const connected = await cicada.waitFor(
      (l) => l['msg'] === 'client connected' && l['clientId'] === 'sensor',
      'the device connected',
    );
    assert.equal(connected['username'], 'device-1', 'the username is the certificate CN');
    assert.equal(connected['listener'], MQTTS);
    assert.equal(await publishCode(device, 'devices/device-2/temp', 1), 0x87);
    assert.equal(await publishCode(device, 'devices/device-1/temp', 1), 0);
    await untilPayload(got, 'to devices/device-1/temp');
    await stop(cicada);
    assert.deepEqual(
      got.map((m) => m.topic),
      ['devices/device-1/temp'],
    );
  });

  test('a missing --tls-key for an mqtts URL (or key of a config listener): exit 1 and one line naming it', async () => {
    const certs = await testCerts();
    const flags = await runCicada(['--memory', '--listen', MQTTS, '--tls-cert', certs.server.cert], dir());
    assert.equal(flags.code, 1);
    assert.equal(flags.stdout, '', 'nothing started');
    assert.equal(flags.stderr, `cicada: ${MQTTS} needs a private key: set tls.key (or --tls-key)\n`);

    const config = await writeConfig(join(dir(), 'keyless.json'), {
      listeners: [{ url: MQTTS, tls: { cert: certs.server.cert } }],
    });
    const file = await runCicada(['--memory', '--config', config], dir());
    assert.equal(file.code, 1);
    assert.equal(file.stderr, `cicada: ${MQTTS} needs a private key: set listeners[0].tls.key\n`);
  });

  test('a certificate path that does not exist: exit 1 and one line naming it', async () => {
    const certs = await testCerts();
    const missing = join(dir(), 'nowhere', 'server.pem');
    const run = await runCicada(
      ['--memory', '--listen', MQTTS, '--tls-cert', missing, '--tls-key', certs.server.key],
      dir(),
    );
    assert.equal(run.code, 1);
    assert.equal(run.stderr.split('\n').length, 2, `one line: ${run.stderr}`);
    assert.ok(run.stderr.startsWith(`cicada: cannot listen on ${MQTTS}: `), run.stderr);
    assert.ok(run.stderr.includes(missing), run.stderr);
    assert.ok(!run.stdout.includes('"ready"'), 'never ready');
  });
});

/** `mosquitto_pub` arguments for a QoS 1 publish to `topic` over TLS, trusting `caFile`. */
function mosquittoTls(port: number, caFile: string, topic: string): string[] {
  return ['-h', '127.0.0.1', '-p', String(port), '--cafile', caFile, '-t', topic, '-q', '1'];
}
