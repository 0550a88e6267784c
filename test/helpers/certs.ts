import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Certificates for the TLS tests, made with the `openssl` command line tool in a temporary
 * directory, once per process: a CA, server certificates for 127.0.0.1/localhost, and client
 * certificates that should be accepted, expired, or from a CA the broker does not trust.
 */

const run = promisify(execFile);

/** A certificate and its private key: file paths and PEM text. */
export interface CertPair {
  /** Path of the PEM certificate. */
  readonly cert: string;
  /** Path of the PEM private key (unencrypted). */
  readonly key: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** Everything the TLS tests need. */
export interface TestCerts {
  /** The temporary directory holding the files. */
  readonly dir: string;
  /** The CA that signed every certificate below but `otherCaClient`. */
  readonly ca: CertPair;
  /** A server certificate for `localhost` and `127.0.0.1`. */
  readonly server: CertPair;
  /** Another server certificate for the same names, with its own key (for reload tests). */
  readonly server2: CertPair;
  /** A client certificate: CN=device-1, O=Cicada Tests, SAN email:device-1@example.com. */
  readonly client: CertPair;
  /** A client certificate from the same CA whose validity ended in 2020. */
  readonly expiredClient: CertPair;
  /** Another CA, trusted by no listener. */
  readonly otherCa: CertPair;
  /** A client certificate (CN=intruder) signed by `otherCa`. */
  readonly otherCaClient: CertPair;
}

let made: Promise<TestCerts> | undefined;

/** The test certificates, generated on first use and shared by every later caller in the process. */
export function testCerts(): Promise<TestCerts> {
  made ??= generate();
  return made;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error('the openssl command is missing: install the Debian package `openssl`');
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${stderr || String(error)}`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function pair(dir: string, name: string): Promise<CertPair> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const [certPem, keyPem] = await Promise.all([readFile(cert, 'utf8'), readFile(key, 'utf8')]);
  return { cert, key, certPem, keyPem };
}

/** A self-signed CA certificate `name`.pem with key `name`.key. */
async function makeCa(dir: string, name: string, commonName: string): Promise<CertPair> {
  await openssl(dir, [
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '3650',
    '-subj',
    `/O=Cicada Tests/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return pair(dir, name);
}

/** Extensions of a leaf certificate: its names and what it may be used for. */
async function extensions(dir: string, name: string, lines: string[]): Promise<string> {
  const file = join(dir, `${name}.ext`);
  await writeFile(
    file,
    ['basicConstraints=CA:FALSE', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid', ...lines]
      .map((l) => `${l}\n`)
      .join(''),
  );
  return file;
}

/** A key and a certificate signing request for `name` with subject `subject`. */
async function request(dir: string, name: string, subject: string): Promise<void> {
  await openssl(dir, [
    'req',
    '-new',
    ...EC_KEY,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ]);
}

/** A leaf certificate signed by `ca`, valid for ten years from now. */
async function makeLeaf(
  dir: string,
  ca: string,
  name: string,
  subject: string,
  extensionLines: string[],
): Promise<CertPair> {
  await request(dir, name, subject);
  const ext = await extensions(dir, name, extensionLines);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '3650',
    '-extfile',
    ext,
    '-out',
    `${name}.pem`,
  ]);
  return pair(dir, name);
}

/**
 * A client certificate signed by `ca` whose validity lies in the past. `openssl x509` in
 * OpenSSL 3.0 cannot set dates, `openssl ca` can: it needs a small database and config.
 */
async function makeExpired(dir: string, ca: string, name: string, subject: string): Promise<CertPair> {
  await request(dir, name, subject);
  const ext = await extensions(dir, name, ['extendedKeyUsage=clientAuth']);
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'ca.serial'), '1000\n');
  await writeFile(
    join(dir, 'ca.cnf'),
    [
      '[ca]',
      'default_ca = test_ca',
      '[test_ca]',
      `dir = ${dir}`,
      'database = $dir/index.txt',
      'serial = $dir/ca.serial',
      'new_certs_dir = $dir',
      `certificate = $dir/${ca}.pem`,
      `private_key = $dir/${ca}.key`,
      'default_md = sha256',
      'policy = anything',
      'unique_subject = no',
      '[anything]',
      'commonName = supplied',
      'organizationName = optional',
      '',
    ].join('\n'),
  );
  await openssl(dir, [
    'ca',
    '-batch',
    '-preserveDN',
    '-config',
    'ca.cnf',
    '-notext',
    '-in',
    `${name}.csr`,
    '-out',
    `${name}.pem`,
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200102000000Z',
    '-extfile',
    ext,
  ]);
  return pair(dir, name);
}

async function generate(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'cicada-certs-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const serverNames = ['subjectAltName=DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage=serverAuth'];
  const [ca, otherCa] = await Promise.all([
    makeCa(dir, 'ca', 'Cicada Test CA'),
    makeCa(dir, 'other-ca', 'Some Other CA'),
  ]);
  // One at a time per CA: `-CAcreateserial` writes the CA's serial file.
  const server = await makeLeaf(dir, 'ca', 'server', '/O=Cicada Tests/CN=localhost', serverNames);
  const server2 = await makeLeaf(dir, 'ca', 'server2', '/O=Cicada Tests/CN=localhost', serverNames);
  const client = await makeLeaf(dir, 'ca', 'client', '/O=Cicada Tests/CN=device-1', [
    'subjectAltName=email:device-1@example.com',
    'extendedKeyUsage=clientAuth',
  ]);
  const otherCaClient = await makeLeaf(dir, 'other-ca', 'other-ca-client', '/O=Elsewhere/CN=intruder', [
    'extendedKeyUsage=clientAuth',
  ]);
  const expiredClient = await makeExpired(dir, 'ca', 'expired-client', '/O=Cicada Tests/CN=device-old');
  return { dir, ca, server, server2, client, expiredClient, otherCa, otherCaClient };
}
