import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PasswordFileProvider } from '../../src/auth/password-file.js';
import { hmac, parseScramCredential, saltedPassword, sha256 } from '../../src/auth/scram-credential.js';
import { credentials, type RunResult, requireBinary, runProgram, tempDir } from '../auth/support.js';
import { until } from '../helpers/broker.js';

/**
 * `cicada passwd` run as a user runs it: the built CLI, the password on stdin (or typed on a
 * terminal through `script`), and the file it writes checked by the password file provider.
 */

/** dist/test/cli/ -> dist/src/cli/main.js */
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

let dir: string;
let removeDir: () => Promise<void>;
let count = 0;
before(async () => {
  ({ dir, remove: removeDir } = await tempDir('passwd'));
});
after(() => removeDir());

function freshPath(): string {
  return join(dir, `passwords-${++count}`);
}

function passwd(args: string[], stdin = ''): Promise<RunResult> {
  return runProgram(process.execPath, [MAIN, 'passwd', ...args], { input: stdin });
}

function ok(result: RunResult): void {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
}

async function decision(file: string, user: string, password: string): Promise<string> {
  const provider = await PasswordFileProvider.open({ file, watch: false });
  return (await provider.check(credentials(user, password))).decision;
}

async function mode(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

describe('cicada passwd with the password on stdin', { timeout: 60_000 }, () => {
  test('creates a missing file, mode 0600, with an scrypt hash and a SCRAM verifier of the password', async () => {
    const file = freshPath();
    ok(await passwd([file, 'alice'], 'wonderland\n'));
    assert.equal(await mode(file), 0o600);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^alice:\$scrypt\$ln=15,r=8,p=1\$[^:$]+\$[^:$]+:\$scram-sha-256\$50000\$[^:]+\n$/);
    assert.equal(await decision(file, 'alice', 'wonderland'), 'allow');
    assert.equal(await decision(file, 'alice', 'wonderlanD'), 'deny');
    // The verifier is derived from the same password (RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key"))).
    const scram = parseScramCredential(text.trim().split(':')[2]!)!;
    const salted = await saltedPassword('wonderland', scram.salt, scram.iterations);
    assert.deepEqual(sha256(hmac(salted, 'Client Key')), scram.storedKey);
    assert.deepEqual(hmac(salted, 'Server Key'), scram.serverKey);
  });

  test('only the first line of stdin is the password (a CRLF ending is not part of it)', async () => {
    const file = freshPath();
    ok(await passwd([file, 'bob'], 'first line\r\nsecond line\n'));
    assert.equal(await decision(file, 'bob', 'first line'), 'allow');
    assert.equal(await decision(file, 'bob', 'first line\r'), 'deny');
    assert.equal(await decision(file, 'bob', 'second line'), 'deny');
    const noNewline = freshPath();
    ok(await passwd([noNewline, 'bob'], 'no newline at all'));
    assert.equal(await decision(noNewline, 'bob', 'no newline at all'), 'allow');
  });

  test('updating a user replaces only their line: comments and other users stay byte for byte, mode becomes 0600', async () => {
    const file = freshPath();
    ok(await passwd([file, 'carol'], 'old\n'));
    const carolOld = (await readFile(file, 'utf8')).trim();
    ok(await passwd([file, 'dave'], 'dave-pw\n'));
    const daveLine = (await readFile(file, 'utf8')).split('\n')[1]!;
    await writeFile(file, `# managed by hand\n\n${carolOld}\n   # indented note\n${daveLine}\n`);
    await chmod(file, 0o644);
    ok(await passwd([file, 'carol'], 'new\n'));
    const lines = (await readFile(file, 'utf8')).split('\n');
    assert.equal(lines.length, 6);
    assert.equal(lines[0], '# managed by hand');
    assert.equal(lines[1], '');
    assert.match(lines[2]!, /^carol:\$scrypt\$/);
    assert.notEqual(lines[2], carolOld);
    assert.equal(lines[3], '   # indented note');
    assert.equal(lines[4], daveLine);
    assert.equal(lines[5], '');
    assert.equal(await mode(file), 0o600);
    assert.equal(await decision(file, 'carol', 'new'), 'allow');
    assert.equal(await decision(file, 'carol', 'old'), 'deny');
    assert.equal(await decision(file, 'dave', 'dave-pw'), 'allow');
  });

  test('-D deletes the user and keeps the rest; an unknown user or a missing file fails with exit 1', async () => {
    const file = freshPath();
    ok(await passwd([file, 'erin'], 'e\n'));
    ok(await passwd([file, 'frank'], 'f\n'));
    await writeFile(file, `# keep me\n${await readFile(file, 'utf8')}`);
    ok(await passwd(['-D', file, 'erin']));
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# keep me\nfrank:\$scrypt\$[^\n]+\n$/);
    assert.equal(await decision(file, 'erin', 'e'), 'abstain');
    assert.equal(await decision(file, 'frank', 'f'), 'allow');
    const unknown = await passwd(['-D', file, 'erin']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, `cicada passwd: no user 'erin' in ${file}\n`);
    assert.equal(await readFile(file, 'utf8'), text, 'unchanged');
    const missing = await passwd(['-D', freshPath(), 'erin']);
    assert.equal(missing.code, 1);
  });

  test('-c replaces an existing file; --scram-iterations sets the verifier iterations', async () => {
    const file = freshPath();
    ok(await passwd([file, 'gina'], 'g\n'));
    ok(await passwd(['-c', '--scram-iterations', '4096', file, 'hank'], 'h\n'));
    const text = await readFile(file, 'utf8');
    assert.match(text, /^hank:\$scrypt\$[^:]+:\$scram-sha-256\$4096\$[^\n]+\n$/);
    assert.equal(await decision(file, 'gina', 'g'), 'abstain');
    assert.equal(await decision(file, 'hank', 'h'), 'allow');
  });

  test('an empty password is refused with exit 1 and writes nothing', async () => {
    const file = freshPath();
    for (const input of ['', '\n']) {
      const result = await passwd([file, 'ivan'], input);
      assert.equal(result.code, 1);
      assert.equal(result.stderr, 'cicada passwd: the password is empty\n');
      await assert.rejects(stat(file), { code: 'ENOENT' });
    }
  });

  test('usage errors exit 2 with one line on stderr and write nothing', async () => {
    const file = freshPath();
    for (const args of [
      [],
      [file],
      [file, 'u', 'extra'],
      ['-x', file, 'u'],
      ['-c', '-D', file, 'u'],
      ['--scram-iterations', '100', file, 'u'],
      ['--scram-iterations', 'many', file, 'u'],
      [file, 'a:b'],
      [file, '#commented'],
      [file, ' padded'],
      [file, ''],
    ]) {
      const result = await passwd(args, 'pw\n');
      assert.equal(result.code, 2, `${JSON.stringify(args)}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /^cicada passwd: [^\n]+\(usage: cicada passwd [^\n]+\)\n$/,
        JSON.stringify(args),
      );
      await assert.rejects(stat(file), { code: 'ENOENT' });
    }
    const help = await passwd(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: cicada passwd /);
  });
});

/** Runs `cicada passwd` on a pseudo-terminal (util-linux `script`), typing each line once its prompt shows. */
async function onTerminal(
  args: string[],
  typed: string[],
): Promise<{ code: number | null; transcript: string }> {
  const script = requireBinary('script', 'bsdutils');
  const command = [process.execPath, MAIN, 'passwd', ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn(script, ['-q', '-e', '-c', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let transcript = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    transcript += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const prompts = ['Password: ', 'Reenter password: '];
  try {
    for (const [index, line] of typed.entries()) {
      const prompt = prompts[index]!;
      // Typing before the prompt would reach a terminal still in echo mode.
      await until(() => transcript.includes(prompt), `the prompt '${prompt}'`);
      child.stdin.write(`${line}\r`);
    }
    return { code: await exited, transcript };
  } finally {
    child.stdin.destroy();
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

describe('cicada passwd on a terminal', { timeout: 60_000 }, () => {
  test('asks twice without echoing and stores the password', async () => {
    const file = freshPath();
    const { code, transcript } = await onTerminal([file, 'tty-user'], ['typed-secret', 'typed-secret']);
    assert.equal(code, 0, transcript);
    assert.match(transcript, /Password: [\s\S]*Reenter password: /);
    assert.ok(!transcript.includes('typed-secret'), `the password was echoed: ${JSON.stringify(transcript)}`);
    assert.equal(await decision(file, 'tty-user', 'typed-secret'), 'allow');
  });

  test('two different passwords fail with exit 1 and write nothing', async () => {
    const file = freshPath();
    const { code, transcript } = await onTerminal([file, 'tty-user'], ['one-secret', 'another-secret']);
    assert.equal(code, 1);
    assert.match(transcript, /the passwords do not match/);
    await assert.rejects(stat(file), { code: 'ENOENT' });
  });
});
