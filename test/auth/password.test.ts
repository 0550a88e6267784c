import assert from 'node:assert/strict';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  PasswordFileError,
  type PasswordFileOptions,
  PasswordFileProvider,
  parsePasswordFile,
} from '../../src/auth/password-file.js';
import {
  DEFAULT_SCRYPT_COST,
  hashPassword,
  PasswordHashError,
  parsePasswordHash,
  verifyPassword,
} from '../../src/auth/password-hash.js';
import { deriveScramCredential, formatScramCredential } from '../../src/auth/scram-credential.js';
import { until } from '../helpers/broker.js';
import { connackOf, perTest } from '../helpers/mqtt-client.js';
import { credentials, hooksFrom, requireBinary, runProgram, tempDir } from './support.js';

/**
 * Password hashes (scrypt, Mosquitto's $7$), the password file and its provider: parsing,
 * checking, reloading, and logins through a real broker with MQTT.js and mosquitto_pub.
 */

const CHEAP = { ln: 10, r: 8, p: 1 };
const { cleanups, broker, mqttClient } = perTest();

let dir: string;
let removeDir: () => Promise<void>;
let fileCount = 0;
before(async () => {
  ({ dir, remove: removeDir } = await tempDir('passwords'));
});
after(() => removeDir());

/** Writes `lines` to a new password file and returns its path. */
async function passwordFile(lines: string[]): Promise<string> {
  const file = join(dir, `passwd-${++fileCount}`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

async function openProvider(options: PasswordFileOptions): Promise<PasswordFileProvider> {
  const provider = await PasswordFileProvider.open(options);
  cleanups.push(() => provider.close());
  return provider;
}

/** The independent Mosquitto `$7$` encoding: PBKDF2-HMAC-SHA512, 64 bytes, base64 salt and hash. */
function mosquittoHash(password: string, salt: Buffer, iterations: number): string {
  const hash = pbkdf2Sync(password, salt, iterations, 64, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

describe('password hashes', () => {
  test('hashPassword writes $scrypt$ln=15,r=8,p=1$SALT$HASH by default and verifies only the right password', async () => {
    const encoded = await hashPassword('correct horse');
    assert.match(encoded, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(DEFAULT_SCRYPT_COST, { ln: 15, r: 8, p: 1 });
    assert.equal(await verifyPassword('correct horse', encoded), true);
    assert.equal(await verifyPassword('correct horsf', encoded), false);
    assert.equal(await verifyPassword('', encoded), false);
  });

  test('a chosen cost is recorded in the hash and used to verify; every hash has its own salt', async () => {
    const a = await hashPassword('pässwörd', CHEAP);
    const b = await hashPassword('pässwörd', CHEAP);
    assert.match(a, /^\$scrypt\$ln=10,r=8,p=1\$/);
    assert.notEqual(a, b, 'a fresh salt each time');
    assert.equal(await verifyPassword('pässwörd', a), true);
    assert.equal(await verifyPassword('pässwörd', b), true);
    assert.equal(await verifyPassword('passwort', a), false);
  });

  test('the CONNECT password is verified as bytes, including bytes that are not UTF-8', async () => {
    const binary = Buffer.from([0xff, 0x00, 0xfe, 0x41]);
    const encoded = await hashPassword(binary, CHEAP);
    assert.equal(await verifyPassword(Buffer.from(binary), encoded), true);
    assert.equal(await verifyPassword(Buffer.from([0xff, 0x00, 0xfe]), encoded), false);
    const text = await hashPassword('s3cret', CHEAP);
    assert.equal(await verifyPassword(Buffer.from('s3cret', 'utf8'), text), true);
  });

  test("Mosquitto's $7$ (PBKDF2-SHA512) verifies against a hash computed here independently", async () => {
    const encoded = mosquittoHash('mosquitto-pw', randomBytes(12), 101);
    assert.equal(await verifyPassword('mosquitto-pw', encoded), true);
    assert.equal(await verifyPassword('mosquitto-pX', encoded), false);
    const more = mosquittoHash('pw', Buffer.from('fixed-salt-1'), 1000);
    assert.equal(await verifyPassword('pw', more), true);
    assert.equal(
      await verifyPassword(
        'pw',
        `$7$999$${Buffer.from('fixed-salt-1').toString('base64')}$${more.split('$')[4]}`,
      ),
      false,
      'the iteration count is part of the hash',
    );
  });

  test('$6$ (fast salted SHA-512) and plain text are refused, saying to re-hash with cicada passwd, never echoing the hash', () => {
    const six =
      '$6$eO3nA+vkkOmI4sYa$ZzUpOb/4xZBEyVoVb1wsRYz9wplpaMMqUs5o7kXldvoV/FH9A1Kl7ewynZekX44VcbvUEku2/ulVCVum5441Sw==';
    for (const [stored, words] of [
      [six, /\$6\$.*too fast.*cicada passwd/],
      ['hunter2', /plain-text.*cicada passwd/],
      ['$2y$10$abcdefghijklmnopqrstuv', /unsupported hash scheme.*cicada passwd/],
    ] as const) {
      assert.throws(
        () => parsePasswordHash(stored),
        (error: Error) => {
          assert.ok(error instanceof PasswordHashError);
          assert.match(error.message, words);
          assert.ok(!error.message.includes(stored.slice(3)), 'the message does not repeat the stored text');
          return true;
        },
      );
    }
  });

  test('malformed or unreasonable hashes are refused', async () => {
    const good = await hashPassword('x', CHEAP);
    const [, , params, salt, hash] = good.split('$');
    assert.equal(params, 'ln=10,r=8,p=1');
    for (const bad of [
      `$scrypt$${params}$${salt}`,
      `$scrypt$ln=10$${salt}$${hash}`,
      `$scrypt$ln=10,r=8,p=1$${salt}$not base64!`,
      `$scrypt$ln=22,r=8,p=1$${salt}$${hash}`, // 4 GiB a login
      `$scrypt$ln=0,r=8,p=1$${salt}$${hash}`,
      `$7$0$${salt}$${hash}`,
      `$7$101$${salt}$${hash}`, // a 32-byte hash where $7$ has 64
      '$7$101$abc',
    ]) {
      assert.throws(() => parsePasswordHash(bad), PasswordHashError, bad);
    }
    await assert.rejects(verifyPassword('x', 'plain'), PasswordHashError);
  });
});

describe('the password file', () => {
  test('parses users, comments, blank lines, CRLF and the optional SCRAM verifier', async () => {
    const scram = await deriveScramCredential('pw', 4096);
    const text = [
      '# users',
      '',
      `alice:${await hashPassword('a', CHEAP)}\r`,
      `  bob:${mosquittoHash('b', randomBytes(12), 101)}  `,
      `carol:${await hashPassword('c', CHEAP)}:${formatScramCredential(scram)}`,
      '   # indented comment',
    ].join('\n');
    const users = parsePasswordFile(text, 'users.txt');
    assert.deepEqual([...users.keys()], ['alice', 'bob', 'carol']);
    assert.equal(users.get('alice')!.hash.kind, 'scrypt');
    assert.equal(users.get('bob')!.hash.kind, 'mosquitto-pbkdf2');
    assert.equal(users.get('alice')!.scram, undefined);
    assert.deepEqual(users.get('carol')!.scram, scram);
    assert.equal(await verifyPassword('a', users.get('alice')!.hash), true);
  });

  test('errors name file:line and what is wrong, and never contain a hash', async () => {
    const hash = await hashPassword('x', CHEAP);
    const six =
      '$6$eO3nA+vkkOmI4sYa$ZzUpOb/4xZBEyVoVb1wsRYz9wplpaMMqUs5o7kXldvoV/FH9A1Kl7ewynZekX44VcbvUEku2/ulVCVum5441Sw==';
    const cases: [string[], RegExp][] = [
      [['# ok', `alice:${hash}`, 'bob'], /^users:3: expected username:hash/],
      [[`alice:${hash}`, '', `alice:${hash}`], /^users:3: user 'alice' is already defined on line 1$/],
      [[`:${hash}`], /^users:1: the username is empty$/],
      [['', '', 'dave:hunter2'], /^users:3: user 'dave': not a password hash .*cicada passwd/],
      [[`eve:${six}`], /^users:1: user 'eve': Mosquitto \$6\$ .*cicada passwd/],
      [
        [`frank:${hash}:not-a-verifier`],
        /^users:1: user 'frank': the third field is not a SCRAM-SHA-256 verifier/,
      ],
      [[`gina:${hash}:x:y`], /^users:1: expected username:hash/],
    ];
    for (const [lines, message] of cases) {
      assert.throws(
        () => parsePasswordFile(lines.join('\n'), 'users'),
        (error: Error) => {
          assert.ok(error instanceof PasswordFileError, String(error));
          assert.match(error.message, message);
          for (const secret of [hash, six, 'hunter2', hash.split('$')[4]!]) {
            assert.ok(!error.message.includes(secret), `${error.message} repeats a secret`);
          }
          return true;
        },
      );
    }
  });

  test('a missing file at start is an error naming it', async () => {
    const missing = join(dir, 'no-such-file');
    await assert.rejects(PasswordFileProvider.open({ file: missing, watch: false }), (error: Error) => {
      assert.ok(error instanceof PasswordFileError);
      assert.match(error.message, /no-such-file: cannot read the password file \(ENOENT\)/);
      return true;
    });
  });

  test('check: unknown user or no username → abstain; wrong or no password → deny; right → allow with identity', async () => {
    const file = await passwordFile([`alice:${await hashPassword('wonderland', CHEAP)}`]);
    const provider = await openProvider({ file, watch: false });
    assert.equal(provider.name, 'password-file');
    assert.deepEqual(await provider.check(credentials('mallory', 'wonderland')), { decision: 'abstain' });
    assert.deepEqual(await provider.check(credentials(undefined, 'wonderland')), { decision: 'abstain' });
    const wrong = await provider.check(credentials('alice', 'looking-glass'));
    assert.deepEqual(wrong, { decision: 'deny', refusal: 'bad-credentials', reason: 'wrong password' });
    const none = await provider.check(credentials('alice', undefined));
    assert.equal(none.decision, 'deny');
    assert.deepEqual(await provider.check(credentials('alice', 'wonderland')), {
      decision: 'allow',
      identity: { provider: 'password-file', username: 'alice' },
    });
  });

  test('scramCredential gives the stored SCRAM-SHA-256 verifier, undefined without one', async () => {
    const scram = await deriveScramCredential('pw', 4096);
    const file = await passwordFile([
      `alice:${await hashPassword('pw', CHEAP)}:${formatScramCredential(scram)}`,
      `bob:${await hashPassword('pw', CHEAP)}`,
    ]);
    const provider = await openProvider({ file, watch: false });
    assert.deepEqual(provider.scramCredential('alice'), scram);
    assert.equal(provider.scramCredential('bob'), undefined);
    assert.equal(provider.scramCredential('nobody'), undefined);
  });

  test('the file is reloaded when replaced atomically and when rewritten in place', async () => {
    const file = await passwordFile([`alice:${await hashPassword('one', CHEAP)}`]);
    let reloads = 0;
    const errors: Error[] = [];
    const provider = await openProvider({
      file,
      debounceMs: 20,
      onReload: () => reloads++,
      onError: (e) => errors.push(e),
    });
    // Verified twice (the second from the remembered login): a changed password must still win.
    assert.equal((await provider.check(credentials('alice', 'one'))).decision, 'allow');
    assert.equal((await provider.check(credentials('alice', 'one'))).decision, 'allow');
    const temp = `${file}.new`;
    await writeFile(
      temp,
      `alice:${await hashPassword('two', CHEAP)}\nbob:${await hashPassword('b', CHEAP)}\n`,
    );
    await rename(temp, file);
    await until(() => provider.size === 2, 'the renamed file to be loaded');
    assert.equal((await provider.check(credentials('alice', 'two'))).decision, 'allow');
    assert.equal((await provider.check(credentials('alice', 'one'))).decision, 'deny');

    await writeFile(file, `carol:${await hashPassword('c', CHEAP)}\n`);
    await until(() => provider.size === 1, 'the rewritten file to be loaded');
    assert.equal((await provider.check(credentials('carol', 'c'))).decision, 'allow');
    assert.equal((await provider.check(credentials('alice', 'two'))).decision, 'abstain');
    assert.ok(reloads >= 2);
    assert.deepEqual(errors, []);
  });

  test('a broken new file keeps the old contents and is reported through onError; reload() rejects', async () => {
    const file = await passwordFile([`alice:${await hashPassword('one', CHEAP)}`]);
    const errors: Error[] = [];
    const provider = await openProvider({ file, debounceMs: 20, onError: (e) => errors.push(e) });
    await writeFile(file, `alice:${await hashPassword('two', CHEAP)}\nbob:letmein42\n`);
    await until(() => errors.length > 0, 'the broken file to be reported');
    assert.match(errors[0]!.message, new RegExp(`${file}:2: user 'bob': not a password hash`));
    assert.ok(!errors[0]!.message.includes('letmein42'));
    assert.equal(
      (await provider.check(credentials('alice', 'one'))).decision,
      'allow',
      'old contents in force',
    );
    await assert.rejects(provider.reload(), /:2: user 'bob'/);
    assert.equal((await provider.check(credentials('alice', 'one'))).decision, 'allow');
  });
});

describe('logins through the broker', { timeout: 60_000 }, () => {
  let file: string;
  let provider: PasswordFileProvider;
  before(async () => {
    file = await passwordFile([
      `alice:${await hashPassword('wonderland', CHEAP)}`,
      `# a user from a mosquitto_passwd file`,
      `mosq:${mosquittoHash('from-mosquitto', randomBytes(12), 101)}`,
    ]);
    provider = await PasswordFileProvider.open({ file, watch: false });
  });

  test('MQTT.js 5.0: right password → CONNACK 0x00, wrong → 0x86, unknown user → 0x86; 3.1.1 wrong → 4', async () => {
    const b = await broker({ hooks: hooksFrom(provider) });
    const ok = await connackOf(
      mqttClient(b.url, { protocolVersion: 5, clientId: 'pw5', username: 'alice', password: 'wonderland' }),
    );
    assert.equal(ok.reasonCode, 0);
    const mosq = await connackOf(
      mqttClient(b.url, {
        protocolVersion: 5,
        clientId: 'pw5m',
        username: 'mosq',
        password: 'from-mosquitto',
      }),
    );
    assert.equal(mosq.reasonCode, 0, 'a $7$ hash from Mosquitto authenticates');
    await assert.rejects(
      connackOf(
        mqttClient(b.url, { protocolVersion: 5, clientId: 'pw5x', username: 'alice', password: 'nope' }),
      ),
      { code: 0x86 },
    );
    await assert.rejects(
      connackOf(
        mqttClient(b.url, { protocolVersion: 5, clientId: 'pw5u', username: 'zed', password: 'nope' }),
      ),
      { code: 0x86 },
    );
    await assert.rejects(
      connackOf(
        mqttClient(b.url, { protocolVersion: 4, clientId: 'pw4x', username: 'alice', password: 'nope' }),
      ),
      { code: 4 },
    );
    const ok4 = await connackOf(
      mqttClient(b.url, { protocolVersion: 4, clientId: 'pw4', username: 'alice', password: 'wonderland' }),
    );
    assert.equal(ok4.returnCode, 0);
  });

  test('mosquitto_pub -u -P: the right password publishes, a wrong one is refused', async () => {
    const pub = requireBinary('mosquitto_pub', 'mosquitto-clients');
    const b = await broker({ hooks: hooksFrom(provider) });
    const published: string[] = [];
    b.broker.on('published', (message, client) => {
      if (client?.clientId === 'mosq-right') published.push(`${message.topic}=${message.payload.toString()}`);
    });
    const common = ['-h', '127.0.0.1', '-p', String(b.port), '-t', 'auth/pw', '-q', '1'];
    for (const version of ['mqttv311', 'mqttv5']) {
      const right = await runProgram(pub, [
        ...common,
        '-V',
        version,
        '-i',
        'mosq-right',
        '-u',
        'alice',
        '-P',
        'wonderland',
        '-m',
        version,
      ]);
      assert.equal(right.code, 0, right.stderr);
      const wrong = await runProgram(pub, [
        ...common,
        '-V',
        version,
        '-i',
        'mosq-wrong',
        '-u',
        'alice',
        '-P',
        'guess',
        '-m',
        'x',
      ]);
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /bad user name or password/i);
    }
    assert.deepEqual(published, ['auth/pw=mqttv311', 'auth/pw=mqttv5']);
  });

  test('a password file written by mosquitto_passwd (Debian package mosquitto) authenticates its users', async () => {
    const mosquittoPasswd = requireBinary('mosquitto_passwd', 'mosquitto');
    const target = join(dir, 'mosquitto-made');
    const made = await runProgram(mosquittoPasswd, ['-c', '-b', target, 'mqttuser', 'mqtt-secret']);
    assert.equal(made.code, 0, made.stderr);
    const fromMosquitto = await PasswordFileProvider.open({ file: target, watch: false });
    assert.equal((await fromMosquitto.check(credentials('mqttuser', 'mqtt-secret'))).decision, 'allow');
    assert.equal((await fromMosquitto.check(credentials('mqttuser', 'mqtt-secreT'))).decision, 'deny');
  });
});
