import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { TlsListenOptions } from '../../src/transport/transport.js';
import { type CertPair, testCerts } from '../helpers/certs.js';
import { collect, connackOf, id, perTest, untilPayload } from '../helpers/mqtt-client.js';
import { mqttTls, startTlsBroker, type TlsBroker, tlsClient } from './tls-fixture.js';

/**
 * `Listener.reload()` on a TLS listener: certificate files swapped on disk take effect for
 * new connections, open ones carry on, and a reload that cannot load the files changes nothing.
 */

const { cleanups, mqttClient } = perTest();

/** A broker serving the certificate files in a directory of its own, which the test may rewrite. */
async function brokerWithOwnFiles(): Promise<{ b: TlsBroker; tls: TlsListenOptions }> {
  const certs = await testCerts();
  const dir = await mkdtemp(join(tmpdir(), 'cicada-reload-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
  await install(certs.server, tls);
  const b = await startTlsBroker(tls);
  cleanups.push(() => b.close());
  return { b, tls };
}

/** Copies `pair` over the listener's certificate and key files. */
async function install(pair: CertPair, tls: TlsListenOptions): Promise<void> {
  await copyFile(pair.cert, tls.cert);
  await copyFile(pair.key, tls.key);
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is shown. */
async function servedFingerprint(port: number): Promise<string> {
  const socket = await tlsClient(port);
  try {
    return socket.getPeerX509Certificate()!.fingerprint256;
  } finally {
    socket.destroy();
  }
}

const fingerprint = (pair: CertPair): string => new X509Certificate(pair.certPem).fingerprint256;

describe('reloading a TLS listener', { timeout: 60_000 }, () => {
  test('new connections get the new certificate; an open connection keeps working', async () => {
    const certs = await testCerts();
    assert.notEqual(fingerprint(certs.server), fingerprint(certs.server2));
    const { b, tls } = await brokerWithOwnFiles();
    assert.equal(await servedFingerprint(b.port), fingerprint(certs.server));
    const old = mqttClient(b.url, { protocolVersion: 5, clientId: id('old'), ...mqttTls(certs) });
    await connackOf(old);
    const got = collect(old);
    await old.subscribeAsync('reload/news', { qos: 1 });

    await install(certs.server2, tls);
    await b.listener.reload!();

    assert.equal(await servedFingerprint(b.port), fingerprint(certs.server2));
    const fresh = mqttClient(b.url, { protocolVersion: 4, clientId: id('new'), ...mqttTls(certs) });
    await connackOf(fresh);
    await fresh.publishAsync('reload/news', 'after reload', { qos: 1 });
    await untilPayload(got, 'after reload');
    await old.publishAsync('reload/news', 'old still talks', { qos: 1 });
    await untilPayload(got, 'old still talks');
  });

  test('a reload with an unreadable key rejects, naming the file, and keeps the old certificate', async () => {
    const certs = await testCerts();
    const { b, tls } = await brokerWithOwnFiles();
    await rm(tls.key);
    await assert.rejects(b.listener.reload!(), (error: Error) => {
      assert.match(
        error.message,
        /TLS reload of mqtts:\/\/127\.0\.0\.1:0 failed, still serving the previous/,
      );
      assert.ok(error.message.includes(tls.key), error.message);
      return true;
    });
    assert.equal(await servedFingerprint(b.port), fingerprint(certs.server));
  });

  test('a reload with garbage in the certificate file rejects and keeps serving', async () => {
    const certs = await testCerts();
    const { b, tls } = await brokerWithOwnFiles();
    await writeFile(tls.cert, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    await assert.rejects(b.listener.reload!(), /TLS reload of .* failed/);
    assert.equal(await servedFingerprint(b.port), fingerprint(certs.server));
    const c = mqttClient(b.url, { protocolVersion: 5, clientId: id('after-failed'), ...mqttTls(certs) });
    await connackOf(c);
  });

  test('a reload with a key that does not match the certificate rejects and keeps serving', async () => {
    const certs = await testCerts();
    const { b, tls } = await brokerWithOwnFiles();
    await copyFile(certs.server2.cert, tls.cert); // server2's certificate with the first server's key
    await assert.rejects(b.listener.reload!(), /TLS reload of .* failed.*(key values mismatch|mismatch)/i);
    assert.equal(await servedFingerprint(b.port), fingerprint(certs.server));
  });
});
