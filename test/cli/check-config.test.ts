import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { type TestCerts, testCerts } from '../helpers/certs.js';
import { type CicadaRun, runCicada, SAFETY_MS } from '../helpers/cicada-process.js';
import { fileDir, passwd } from './security-fixture.js';

const dirOf = fileDir('cicada-check-');
let certs: TestCerts;
before(async () => {
  certs = await testCerts();
});

let count = 0;
/** Writes a config file (YAML text) and returns its path. */
async function configFile(text: string): Promise<string> {
  const path = join(dirOf(), `check-${++count}.yaml`);
  await writeFile(path, text);
  return path;
}

/** `cicada check-config FILE` with extra environment variables. */
async function check(file: string, env: Record<string, string> = {}): Promise<CicadaRun> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await runCicada(['check-config', file], dirOf());
  } finally {
    for (const name of Object.keys(env)) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
}

/** Asserts a failed check: exit 1, nothing on stdout, exactly one stderr line matching `reason`. */
function assertFails(run: CicadaRun, reason: RegExp): void {
  assert.equal(run.code, 1, `stdout: ${run.stdout}\nstderr: ${run.stderr}`);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^cicada: [^\n]+\n$/);
  assert.match(run.stderr, reason);
}

/** A TLS listener using `cert` and `key`. */
function tlsConfig(cert: string, key: string): string {
  return `listen: ["mqtts://127.0.0.1:0"]\ntls:\n  cert: ${cert}\n  key: ${key}\n`;
}

describe('cicada check-config FILE', { timeout: 4 * SAFETY_MS }, () => {
  test('a good config: exit 0 and a one-line summary, nothing started', async () => {
    const users = join(dirOf(), 'users');
    await passwd(users, 'alice', 'wonderland', ['-c']);
    const acl = join(dirOf(), 'acl');
    await writeFile(acl, 'user alice\ntopic readwrite sensors/#\n');
    const file = await configFile(
      `${tlsConfig(certs.server.cert, certs.server.key)}store:\n  type: memory\nauth:\n  passwordFile: ${users}\nacl:\n  file: ${acl}\n`,
    );
    const run = await check(file);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.equal(
      run.stdout,
      `ok: ${file}: 1 listener(s) (mqtts://127.0.0.1:0), memory store, 1 credential check(s), anonymous refused, ACL ${acl}`,
    );
  });

  test('a missing TLS key file is caught, naming the listener and the file', async () => {
    const missing = join(dirOf(), 'no-such-key.pem');
    const run = await check(await configFile(tlsConfig(certs.server.cert, missing)));
    assertFails(run, /mqtts:\/\/127\.0\.0\.1:0: cannot read TLS key file '.*no-such-key\.pem'/);
  });

  test('a key that does not belong to the certificate, or is not PEM, is caught', async () => {
    const mismatch = await check(await configFile(tlsConfig(certs.server.cert, certs.server2.key)));
    assertFails(mismatch, /mqtts:\/\/127\.0\.0\.1:0: .*key values mismatch/);
    const notPem = join(dirOf(), 'not-a-key.pem');
    await writeFile(notPem, 'hello\n');
    const garbage = await check(await configFile(tlsConfig(certs.server.cert, notPem)));
    assertFails(garbage, /mqtts:\/\/127\.0\.0\.1:0: /);
  });

  test('a TLS listener without a certificate is caught', async () => {
    const run = await check(await configFile('listen: ["mqtts://127.0.0.1:0"]\n'));
    assertFails(run, /mqtts:\/\/127\.0\.0\.1:0 needs a certificate/);
  });

  test('a missing or broken password file, ACL file or JWT key is caught', async () => {
    const missingUsers = await check(await configFile(`auth:\n  passwordFile: ${join(dirOf(), 'nobody')}\n`));
    assertFails(missingUsers, /nobody/);
    const brokenUsers = join(dirOf(), 'broken-users');
    await writeFile(brokenUsers, 'alice:not-a-hash\n');
    assertFails(await check(await configFile(`auth:\n  passwordFile: ${brokenUsers}\n`)), /broken-users:1/);
    const brokenAcl = join(dirOf(), 'broken-acl');
    await writeFile(brokenAcl, 'frobnicate sensors/#\n');
    assertFails(
      await check(await configFile(`acl:\n  file: ${brokenAcl}\n`)),
      /broken-acl:1: expected 'user', 'topic', 'pattern'/,
    );
    const jwt = `auth:\n  jwt:\n    algorithm: RS256\n    publicKeyFile: ${join(dirOf(), 'no-jwt-key.pem')}\n`;
    assertFails(await check(await configFile(jwt)), /no-jwt-key\.pem/);
  });

  test('schema errors are the same one line as at start-up', async () => {
    const run = await check(await configFile('mqtt:\n  recieveMaximum: 5\n'));
    assertFails(run, /unknown key 'mqtt\.recieveMaximum' \(did you mean 'mqtt\.receiveMaximum'\?\)/);
    assertFails(await check(join(dirOf(), 'absent.yaml')), /absent\.yaml: cannot read the file/);
  });

  test('the environment is applied: a variable naming a missing file fails the check', async () => {
    const file = await configFile('listen: ["mqtt://127.0.0.1:0"]\n');
    assert.equal((await check(file)).code, 0);
    const run = await check(file, { CICADA_ACL_FILE: join(dirOf(), 'typo-acl') });
    assertFails(run, /typo-acl/);
    assertFails(
      await check(file, { CICADA_MQTT_MAX_TOPIC_LENGHT: '5' }),
      /did you mean CICADA_MQTT_MAX_TOPIC_LENGTH\?/,
    );
  });

  test('without exactly one FILE: usage and exit 2', async () => {
    const run = await runCicada(['check-config'], dirOf());
    assert.equal(run.code, 2);
    assert.equal(run.stderr, 'cicada: usage: cicada check-config FILE\n');
  });
});
