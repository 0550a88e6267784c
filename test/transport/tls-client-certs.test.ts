import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { ClientInfo } from '../../src/broker/hooks.js';
import type { TlsListenOptions } from '../../src/transport/transport.js';
import { type CertPair, testCerts } from '../helpers/certs.js';
import { collect, connackOf, id, perTest, untilPayload, within } from '../helpers/mqtt-client.js';
import { mqttTls, serverTls, startTlsBroker, type TlsBroker } from './tls-fixture.js';

/**
 * Mutual TLS end to end with MQTT.js: which client certificates a listener admits, and what
 * the broker learns from an admitted one (ClientInfo.certificate, the username it yields).
 */

const { cleanups, mqttClient } = perTest();

/** A broker whose listener asks for client certificates from the test CA; records who connected. */
async function mtlsBroker(
  extra: Partial<TlsListenOptions> = {},
): Promise<TlsBroker & { connected: ClientInfo[] }> {
  const certs = await testCerts();
  const b = await startTlsBroker(await serverTls({ ca: certs.ca.cert, requestCert: true, ...extra }));
  cleanups.push(() => b.close());
  const connected: ClientInfo[] = [];
  b.broker.on('clientConnected', (client) => connected.push(client));
  return { ...b, connected };
}

/** MQTT.js at 5.0 presenting `cert` (or none), trusting the test CA. */
async function clientWith(b: TlsBroker, cert: CertPair | undefined, username?: string): Promise<MqttClient> {
  const certs = await testCerts();
  return mqttClient(b.url, {
    protocolVersion: 5,
    clientId: id('mtls'),
    ...(username === undefined ? {} : { username }),
    ...mqttTls(certs, cert),
  });
}

/** Resolves when `c` fails or is closed before any CONNACK; rejects if it connects. */
function refused(c: MqttClient): Promise<void> {
  return within(
    new Promise<void>((resolve, reject) => {
      c.once('connect', () => reject(new Error('the client was admitted')));
      c.once('error', () => resolve());
      c.once('close', () => resolve());
    }),
    'the connection to be refused',
  );
}

describe('a listener that requires client certificates', { timeout: 60_000 }, () => {
  test('admits a certificate from its CA and reports it in ClientInfo', async () => {
    const certs = await testCerts();
    const b = await mtlsBroker();
    const c = await clientWith(b, certs.client);
    await connackOf(c);
    const got = collect(c);
    await c.subscribeAsync('mtls/ok', { qos: 1 });
    await c.publishAsync('mtls/ok', 'with a certificate', { qos: 1 });
    await untilPayload(got, 'with a certificate');
    const [info] = b.connected;
    assert.equal(info?.secure, true);
    const cert = info?.certificate;
    assert.ok(cert !== undefined, 'ClientInfo.certificate is filled');
    assert.equal(cert.subject, 'CN=device-1,O=Cicada Tests');
    assert.equal(cert.commonName, 'device-1');
    assert.deepEqual(cert.subjectAltNames, ['email:device-1@example.com']);
    assert.equal(cert.issuer, 'CN=Cicada Test CA,O=Cicada Tests');
    const x509 = new X509Certificate(certs.client.certPem);
    assert.equal(cert.fingerprint256, x509.fingerprint256);
    assert.equal(cert.validTo, x509.validTo);
    assert.equal(cert.authorized, true);
    assert.equal(cert.username, undefined, 'no usernameFrom, no username from the certificate');
  });

  test('refuses a client without a certificate', async () => {
    const b = await mtlsBroker();
    await refused(await clientWith(b, undefined));
    assert.deepEqual(b.connected, []);
  });

  test('refuses an expired certificate from its own CA', async () => {
    const certs = await testCerts();
    const b = await mtlsBroker();
    await refused(await clientWith(b, certs.expiredClient));
    assert.deepEqual(b.connected, []);
  });

  test('refuses a certificate from another CA', async () => {
    const certs = await testCerts();
    const b = await mtlsBroker();
    await refused(await clientWith(b, certs.otherCaClient));
    assert.deepEqual(b.connected, []);
  });

  test('a refused client costs only itself: an admitted client carries on', async () => {
    const certs = await testCerts();
    const b = await mtlsBroker();
    const good = await clientWith(b, certs.client);
    await connackOf(good);
    const got = collect(good);
    await good.subscribeAsync('mtls/carry-on', { qos: 1 });
    await Promise.all(
      [certs.otherCaClient, certs.expiredClient, undefined].map(async (cert) =>
        refused(await clientWith(b, cert)),
      ),
    );
    await good.publishAsync('mtls/carry-on', 'still here', { qos: 1 });
    await untilPayload(got, 'still here');
  });
});

describe('a listener that asks for, but does not require, client certificates', { timeout: 60_000 }, () => {
  test('admits a client without a certificate: secure, no certificate', async () => {
    const b = await mtlsBroker({ requireCert: false });
    await connackOf(await clientWith(b, undefined));
    assert.equal(b.connected[0]?.secure, true);
    assert.equal(b.connected[0]?.certificate, undefined);
  });

  test('admits a certificate from another CA as unauthorized, and takes no username from it', async () => {
    const certs = await testCerts();
    const b = await mtlsBroker({ requireCert: false, usernameFrom: 'cn' });
    await connackOf(await clientWith(b, certs.otherCaClient, 'claimed'));
    const info = b.connected[0]!;
    assert.equal(info.certificate?.commonName, 'intruder');
    assert.equal(info.certificate?.authorized, false);
    assert.equal(info.certificate?.username, undefined);
    assert.equal(info.username, 'claimed', 'the CONNECT username stands');
  });
});

describe('usernameFrom takes the username from the client certificate', { timeout: 60_000 }, () => {
  test("'cn': the subject's common name, whatever CONNECT says; hooks see it too", async () => {
    const certs = await testCerts();
    const seenByHook: (string | undefined)[] = [];
    const b = await startTlsBroker(
      await serverTls({ ca: certs.ca.cert, requestCert: true, usernameFrom: 'cn' }),
      {},
      {
        hooks: {
          authenticate: ({ client }) => {
            seenByHook.push(client.username);
            return true;
          },
        },
      },
    );
    cleanups.push(() => b.close());
    const connected: ClientInfo[] = [];
    b.broker.on('clientConnected', (client) => connected.push(client));
    await connackOf(await clientWith(b, certs.client, 'someone-else'));
    assert.equal(connected[0]?.username, 'device-1');
    assert.equal(connected[0]?.certificate?.username, 'device-1');
    assert.equal(
      connected[0]?.certificate?.fingerprint256,
      new X509Certificate(certs.client.certPem).fingerprint256,
    );
    assert.deepEqual(seenByHook, ['device-1']);
  });

  test("'san-email': the first email subject alternative name", async () => {
    const certs = await testCerts();
    const b = await mtlsBroker({ usernameFrom: 'san-email' });
    await connackOf(await clientWith(b, certs.client));
    assert.equal(b.connected[0]?.username, 'device-1@example.com');
  });

  test("'san-dns': no DNS name in the certificate, so the CONNECT username stands", async () => {
    const certs = await testCerts();
    const b = await mtlsBroker({ usernameFrom: 'san-dns' });
    await connackOf(await clientWith(b, certs.client, 'from-connect'));
    assert.equal(b.connected[0]?.username, 'from-connect');
    assert.equal(b.connected[0]?.certificate?.username, undefined);
  });
});
