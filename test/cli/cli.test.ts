import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, Socket } from 'node:net';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { applyArgs, parseCliArgs, UsageError } from '../../src/cli/args.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { createLogger, errorReason } from '../../src/observe/log.js';
import {
  type CicadaProcess,
  type CicadaRun,
  killCicadas,
  type LogLine,
  runCicada as runCicadaProcess,
  SAFETY_MS,
  startCicada as startCicadaProcess,
} from '../helpers/cicada-process.js';

/** dist/test/cli/ -> the package root. */
const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);

// MQTT 3.1.1 CONNECT: clean session, keep alive 60, empty client id.
const CONNECT = Buffer.from('100c00044d5154540402003c0000', 'hex');
const CONNACK_ACCEPTED = Buffer.from('20020000', 'hex');

// The broker's default data directory is ./data: run it where that litters nothing.
const workDir = mkdtempSync(join(tmpdir(), 'cicada-cli-'));
after(() => {
  killCicadas();
  rmSync(workDir, { recursive: true, force: true });
});

/** Runs the CLI; anonymous access is switched on unless `anonymous` is false. */
function startCicada(args: string[], anonymous = true): CicadaProcess {
  return startCicadaProcess(anonymous ? ['--allow-anonymous', ...args] : args, workDir);
}

/** Runs cicada to its end (it must end by itself). */
function runCicada(args: string[]): Promise<CicadaRun> {
  return runCicadaProcess(['--allow-anonymous', ...args], workDir);
}

/** Reads exactly `size` bytes from a socket. */
function readBytes(socket: Socket, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      if (received.length < size) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(received);
    };
    const onClose = (): void => reject(new Error(`socket closed after ${received.toString('hex')}`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cicada-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cicada (child process)', { timeout: 4 * SAFETY_MS }, () => {
  test('listens on a free port, answers CONNECT, logs, and stops with exit 0 on SIGTERM', async () => {
    const cicada = startCicada(['--listen', 'mqtt://127.0.0.1:0']);
    const listening = await cicada.waitFor((line) => line['msg'] === 'listening', 'a listening line');
    assert.equal(listening['level'], 'info');
    assert.equal(listening['url'], 'mqtt://127.0.0.1:0');
    const port = listening['port'];
    assert.ok(typeof port === 'number' && port > 0 && port < 65_536, `real port: ${String(port)}`);

    const socket = new Socket();
    socket.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const connack = readBytes(socket, CONNACK_ACCEPTED.length);
    socket.write(CONNECT);
    assert.deepEqual(await connack, CONNACK_ACCEPTED);
    const connected = await cicada.waitFor(
      (line) => line['msg'] === 'client connected',
      'a client connected line',
    );
    assert.equal(connected['protocolVersion'], 4);
    assert.equal(connected['sessionPresent'], false);
    assert.match(String(connected['clientId']), /.+/, 'the assigned client id');

    const socketClosed = once(socket, 'close');
    cicada.child.kill('SIGTERM');
    const { code, signal } = await cicada.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, `stderr: ${cicada.stderr()}`);
    await socketClosed;
    assert.equal(cicada.stderr(), '');

    const messages = cicada.lines.map((line) => line['msg']);
    assert.deepEqual(messages, [
      'starting',
      'listening',
      'ready',
      'client connected',
      'shutting down',
      'client disconnected',
      'stopped',
    ]);
    const disconnected = cicada.lines.find((line) => line['msg'] === 'client disconnected');
    assert.equal(disconnected?.['clientId'], connected['clientId']);
    assert.equal(disconnected?.['reason'], 'server-shutting-down');
    assert.equal(cicada.lines.find((line) => line['msg'] === 'shutting down')?.['signal'], 'SIGTERM');
    for (const line of cicada.lines) {
      assert.ok(!Number.isNaN(Date.parse(String(line['time']))), `time in ${JSON.stringify(line)}`);
      assert.equal(new Date(String(line['time'])).toISOString(), line['time']);
      assert.ok(['error', 'warn', 'info', 'debug'].includes(String(line['level'])));
    }
  });

  test('SIGINT stops it too, with exit 0', async () => {
    const cicada = startCicada(['--listen', 'mqtt://127.0.0.1:0']);
    await cicada.waitFor((line) => line['msg'] === 'ready', 'a ready line');
    cicada.child.kill('SIGINT');
    assert.deepEqual(await cicada.exited, { code: 0, signal: null });
    assert.equal(cicada.lines.at(-1)?.['msg'], 'stopped');
  });

  test('a port already taken: non-zero exit and one line on stderr', async () => {
    const blocker: Server = createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const address = blocker.address();
    assert.ok(address !== null && typeof address === 'object');
    try {
      const url = `mqtt://127.0.0.1:${address.port}`;
      const { code, stderr } = await runCicada(['--listen', url]);
      assert.notEqual(code, 0);
      assert.equal(stderr, `cicada: cannot listen on ${url}: address already in use\n`);
    } finally {
      blocker.close();
    }
  });

  test('a bad config file: non-zero exit and the ConfigError line', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, 'mqtt:\n  receiveMaximum: 0\n');
    const { code, stdout, stderr } = await runCicada(['--config', path]);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `cicada: config ${path}: mqtt.receiveMaximum is 0, expected an integer from 1 to 65535\n`,
    );
    assert.equal(stdout, '', 'nothing started');
  });

  test('a missing config file: non-zero exit and one line', async () => {
    const path = join(dir, 'nowhere.yaml');
    const { code, stderr } = await runCicada(['--config', path]);
    assert.equal(code, 1);
    assert.equal(stderr, `cicada: config ${path}: cannot read the file: no such file or directory\n`);
  });

  test('the config file sets listeners and log level; flags override them', async () => {
    const path = join(dir, 'two.yaml');
    await writeFile(path, 'listen:\n  - mqtt://127.0.0.1:0\n  - tcp://127.0.0.1:0\nlogLevel: warn\n');

    // The file's listeners, with --log-level overriding the file's warn (else no info lines).
    const both = startCicada(['--config', path, '--log-level', 'info']);
    const ready = await both.waitFor((line) => line['msg'] === 'ready', 'a ready line');
    assert.equal(ready['listeners'], 2);
    assert.deepEqual(
      both.lines.filter((line) => line['msg'] === 'listening').map((line) => line['url']),
      ['mqtt://127.0.0.1:0', 'tcp://127.0.0.1:0'],
    );
    both.child.kill('SIGTERM');
    assert.equal((await both.exited).code, 0);

    // --listen replaces the file's list.
    const one = startCicada(['--config', path, '--log-level', 'info', '--listen', 'mqtt://127.0.0.1:0']);
    const readyOne = await one.waitFor((line) => line['msg'] === 'ready', 'a ready line');
    assert.equal(readyOne['listeners'], 1);
    one.child.kill('SIGTERM');
    assert.equal((await one.exited).code, 0);

    // The file's level alone: warn, so a failed start says why on stderr and logs nothing at info.
    const taken = startCicada(['--listen', 'mqtt://127.0.0.1:0']);
    const port = (await taken.waitFor((line) => line['msg'] === 'listening', 'a listening line'))['port'];
    const quiet = await runCicada(['--config', path, '--listen', `mqtt://127.0.0.1:${String(port)}`]);
    assert.equal(quiet.code, 1);
    assert.equal(quiet.stdout, '');
    assert.equal(
      quiet.stderr,
      `cicada: cannot listen on mqtt://127.0.0.1:${String(port)}: address already in use\n`,
    );
    taken.child.kill('SIGTERM');
    assert.equal((await taken.exited).code, 0);
  });

  test('the durable store is the default, in ./data; --memory keeps state in memory instead', async () => {
    const durable = startCicada(['--listen', 'mqtt://127.0.0.1:0']);
    const starting = await durable.waitFor((line) => line['msg'] === 'starting', 'the starting line');
    assert.equal(starting['store'], 'durable');
    assert.equal(starting['data'], './data');
    await durable.waitFor((line) => line['msg'] === 'ready', 'ready');
    durable.child.kill('SIGTERM');
    assert.equal((await durable.exited).code, 0);
    assert.ok(existsSync(join(workDir, 'data')), 'the data directory was created');

    const memory = startCicada(['--listen', 'mqtt://127.0.0.1:0', '--memory']);
    const line = await memory.waitFor((l) => l['msg'] === 'starting', 'the starting line');
    assert.equal(line['store'], 'memory');
    memory.child.kill('SIGTERM');
    assert.equal((await memory.exited).code, 0);
  });

  test('an unusable data directory: non-zero exit and one line naming it', async () => {
    const path = join(dir, 'not-a-dir');
    await writeFile(path, 'a file where the data directory should be');
    const { code, stdout, stderr } = await runCicada(['--listen', 'mqtt://127.0.0.1:0', '--data', path]);
    assert.equal(code, 1);
    assert.equal(stderr.split('\n').length, 2, `one line: ${stderr}`);
    assert.match(stderr, new RegExp(`^cicada: .*${path.replace(/[/.]/g, '\\$&')}`));
    assert.doesNotMatch(stdout, /"ready"/);
  });

  test('--version prints the version from package.json', async () => {
    const pkg = JSON.parse(await readFile(PACKAGE_JSON, 'utf8')) as { version: string };
    const { code, stdout, stderr } = await runCicada(['--version']);
    assert.equal(code, 0);
    assert.equal(stdout, pkg.version);
    assert.equal(stderr, '');
  });

  test('--help prints usage, mentioning the in-memory store', async () => {
    const { code, stdout } = await runCicada(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: cicada/);
    assert.match(stdout, /--memory/);
    assert.match(stdout, /--listen URL/);
  });

  test('an unknown flag: non-zero exit and one line', async () => {
    const { code, stdout, stderr } = await runCicada(['--bogus']);
    assert.equal(code, 2);
    assert.equal(stderr, "cicada: unknown option '--bogus' (see --help)\n");
    assert.equal(stdout, '');
  });
});

describe('command-line arguments', () => {
  test('defaults: nothing set', () => {
    assert.deepEqual(parseCliArgs([]), {
      listen: undefined,
      config: undefined,
      logLevel: undefined,
      memory: false,
      data: undefined,
      allowAnonymous: false,
      passwordFile: undefined,
      aclFile: undefined,
      tlsCert: undefined,
      tlsKey: undefined,
      tlsCa: undefined,
      help: false,
      version: false,
    });
  });

  test('every option, --listen repeated, short forms and inline values', () => {
    assert.deepEqual(
      parseCliArgs([
        '-l',
        'mqtt://127.0.0.1:1',
        '--listen=tcp://[::1]:2',
        '-c',
        'c.yaml',
        '--log-level',
        'debug',
        '--memory',
        '-d',
        'state',
        '--allow-anonymous',
        '--password-file',
        'passwd',
        '--acl-file=acl',
        '--tls-cert',
        'cert.pem',
        '--tls-key',
        'key.pem',
        '--tls-ca',
        'ca.pem',
        '-h',
        '--version',
      ]),
      {
        listen: ['mqtt://127.0.0.1:1', 'tcp://[::1]:2'],
        config: 'c.yaml',
        logLevel: 'debug',
        memory: true,
        data: 'state',
        allowAnonymous: true,
        passwordFile: 'passwd',
        aclFile: 'acl',
        tlsCert: 'cert.pem',
        tlsKey: 'key.pem',
        tlsCa: 'ca.pem',
        help: true,
        version: true,
      },
    );
  });

  const mistakes: [argv: string[], message: string][] = [
    [['--bogus'], "unknown option '--bogus' (see --help)"],
    [['-x'], "unknown option '-x' (see --help)"],
    [['serve'], "unexpected argument 'serve' (see --help)"],
    [['--', '--memory'], "unexpected argument '--memory' (see --help)"],
    [['--listen'], "option '--listen' needs a value"],
    [['--config', '--memory'], "option '--config' needs a value"],
    [['--memory=yes'], "option '--memory' takes no value"],
    [['--log-level', 'loud'], `option '--log-level' is "loud", expected one of error, warn, info, debug`],
    [
      ['--listen', 'ftp://0.0.0.0:21'],
      `option '--listen' is "ftp://0.0.0.0:21", expected a URL with scheme mqtt, tcp, mqtts, ssl, tls, ws, wss, stomp, stomps, http or https, such as mqtt://0.0.0.0:1883`,
    ],
    [
      ['-l', '1883'],
      `option '-l' is "1883", expected a URL with scheme mqtt, tcp, mqtts, ssl, tls, ws, wss, stomp, stomps, http or https, such as mqtt://0.0.0.0:1883`,
    ],
  ];
  for (const [argv, message] of mistakes) {
    test(`rejects ${argv.join(' ')}`, () => {
      assert.throws(
        () => parseCliArgs(argv),
        (error: unknown) =>
          error instanceof UsageError && error.code === 'USAGE' && error.message === message,
      );
    });
  }

  test('flags override the config: --listen replaces the list, --log-level the level', () => {
    const file = {
      ...DEFAULT_CONFIG,
      listen: ['mqtt://127.0.0.1:1', 'mqtt://127.0.0.1:2'],
      logLevel: 'warn' as const,
    };
    const none = applyArgs(file, parseCliArgs([]));
    assert.deepEqual(none, file);
    const some = applyArgs(file, parseCliArgs(['--listen', 'mqtt://127.0.0.1:3', '--log-level', 'debug']));
    assert.deepEqual(some, { ...file, listen: ['mqtt://127.0.0.1:3'], logLevel: 'debug' });
    some.mqtt.receiveMaximum = 1;
    assert.equal(file.mqtt.receiveMaximum, 1024, 'the config given is left alone');
  });
});

describe('structured logger', () => {
  const at = new Date('2024-05-06T07:08:09.010Z');
  function capture(level: Parameters<typeof createLogger>[0]) {
    const out: string[] = [];
    const log = createLogger(level, { write: (line) => out.push(line), now: () => at });
    return { log, out };
  }

  test('one JSON object per line: time, level, msg, then fields', () => {
    const { log, out } = capture('info');
    log.info('listening', { url: 'mqtt://0.0.0.0:1883', port: 1883 });
    assert.deepEqual(out, [
      '{"time":"2024-05-06T07:08:09.010Z","level":"info","msg":"listening","url":"mqtt://0.0.0.0:1883","port":1883}',
    ]);
  });

  test('levels below the threshold are not written', () => {
    const { log, out } = capture('warn');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    assert.deepEqual(
      out.map((line) => (JSON.parse(line) as LogLine)['msg']),
      ['w', 'e'],
    );
    assert.equal(log.enabled('info'), false);
    assert.equal(log.enabled('error'), true);
    const debug = capture('debug');
    debug.log.debug('d');
    assert.equal(debug.out.length, 1);
  });

  test('secrets are redacted, fields cannot replace time, level or msg, errors keep message and code', () => {
    const { log, out } = capture('info');
    const error = Object.assign(new Error('boom'), { code: 'EBOOM' });
    log.info('x', {
      password: 'hunter2',
      auth: { token: 't0k' },
      msg: 'spoof',
      level: 'debug',
      error,
      n: 10n,
    });
    const line = out[0];
    assert.ok(!line.includes('hunter2') && !line.includes('t0k'), line);
    assert.deepEqual(JSON.parse(line), {
      time: '2024-05-06T07:08:09.010Z',
      level: 'info',
      msg: 'x',
      password: '[redacted]',
      auth: { token: '[redacted]' },
      error: { message: 'boom', code: 'EBOOM' },
      n: '10',
    });
  });

  test('an unserializable field does not lose the line', () => {
    const { log, out } = capture('info');
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    log.error('still here', { cycle });
    assert.deepEqual(JSON.parse(out[0]), {
      time: '2024-05-06T07:08:09.010Z',
      level: 'error',
      msg: 'still here',
      logError: 'fields not serializable',
    });
  });

  test('errorReason: the OS text of a system error, else the first line of the message', () => {
    const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:1883'), {
      errno: -constants.errno.EADDRINUSE,
      code: 'EADDRINUSE',
    });
    assert.equal(errorReason(inUse), 'address already in use');
    assert.equal(errorReason(new Error('first\nsecond')), 'first');
    assert.equal(errorReason('plain'), 'plain');
  });
});
