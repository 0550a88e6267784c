import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { ReadStream } from 'node:tty';
import { hashPassword } from '../auth/password-hash.js';
import {
  DEFAULT_SCRAM_ITERATIONS,
  deriveScramCredential,
  formatScramCredential,
} from '../auth/scram-credential.js';

/**
 * `cicada passwd`: adds, updates and deletes users of a password file, writing an scrypt hash
 * and a SCRAM-SHA-256 verifier per user. Other lines, comments included, are kept as they are.
 */

/** The usage line, printed with usage errors and by `--help`. */
export const PASSWD_USAGE = 'usage: cicada passwd [-c] [-D] [--scram-iterations N] FILE USER';

const HELP = `${PASSWD_USAGE}

Adds USER to the password FILE or changes their password (FILE is created if missing).
The password is asked twice on a terminal, otherwise read from the first line of stdin.

  -c                      create FILE anew, replacing an existing one
  -D                      delete USER from FILE
  --scram-iterations N    PBKDF2 iterations of the SCRAM-SHA-256 verifier (default ${DEFAULT_SCRAM_ITERATIONS}, at least 4096)
  -h, --help              show this help
`;

/** Where the command reads and writes; the process's own streams unless a caller says otherwise. */
export interface PasswdIo {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
}

interface PasswdArgs {
  readonly create: boolean;
  readonly remove: boolean;
  readonly scramIterations: number;
  readonly file: string;
  readonly user: string;
}

class PasswdUsageError extends Error {}
/** A failure worth one line on stderr and exit code 1. */
class PasswdFailure extends Error {}

function parsePasswdArgs(argv: readonly string[]): PasswdArgs | 'help' {
  let create = false;
  let remove = false;
  let scramIterations = DEFAULT_SCRAM_ITERATIONS;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') return 'help';
    if (arg === '-c') create = true;
    else if (arg === '-D') remove = true;
    else if (arg === '--scram-iterations' || arg.startsWith('--scram-iterations=')) {
      const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      scramIterations = /^\d+$/.test(value ?? '') ? Number(value) : Number.NaN;
      if (!Number.isSafeInteger(scramIterations) || scramIterations < 4096) {
        // RFC 7677 section 4: at least 4096 iterations.
        throw new PasswdUsageError('--scram-iterations takes a whole number of at least 4096');
      }
    } else if (arg.startsWith('-') && arg !== '-') throw new PasswdUsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (create && remove) throw new PasswdUsageError('-c and -D cannot be combined');
  if (positional.length !== 2) throw new PasswdUsageError('expected FILE and USER');
  const [file, user] = positional as [string, string];
  checkUsername(user);
  return { create, remove, scramIterations, file, user };
}

/** A username the file format can hold: the file splits on `:` and trims each line. */
function checkUsername(user: string): void {
  if (user === '') throw new PasswdUsageError('USER is empty');
  if (user.includes(':')) throw new PasswdUsageError('USER cannot contain ":"');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(user))
    throw new PasswdUsageError('USER cannot contain control characters');
  if (user.trim() !== user) throw new PasswdUsageError('USER cannot start or end with white space');
  if (user.startsWith('#')) throw new PasswdUsageError('USER cannot start with "#" (it would be a comment)');
}

/** The username a line defines, or undefined for comments, blank and malformed lines. */
function userOfLine(line: string): string | undefined {
  const content = line.trim();
  if (content === '' || content.startsWith('#') || !content.includes(':')) return undefined;
  return content.slice(0, content.indexOf(':'));
}

/** `text` with `user`'s line replaced by `entry` (or removed when `entry` is undefined, or appended when new). */
export function editPasswordText(text: string, user: string, entry: string | undefined): string {
  const lines = text === '' ? [] : text.split('\n');
  const trailingNewline = lines.length > 0 && lines[lines.length - 1] === '';
  if (trailingNewline) lines.pop();
  let placed = entry === undefined;
  const kept: string[] = [];
  for (const line of lines) {
    if (userOfLine(line) !== user) kept.push(line);
    else if (!placed) {
      kept.push(line.endsWith('\r') ? `${entry}\r` : entry!);
      placed = true;
    }
    // Later duplicates of the user are dropped: the file would not load with them.
  }
  if (!placed) kept.push(entry!);
  return kept.length === 0 ? '' : `${kept.join('\n')}\n`;
}

async function readExisting(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PasswdFailure(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/**
 * Replaces `file` atomically: a temporary file beside it, flushed, then renamed over it. It is
 * made owner-only (0600; the umask can only narrow it), which the file then keeps.
 */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw new PasswdFailure(
      `cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/** The first line of a non-terminal stdin (`echo secret | cicada passwd FILE USER`). */
async function readFirstLine(stdin: Readable): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.includes('\n')) break;
  }
  const line = text.split('\n')[0]!;
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Reads one line from a terminal in raw mode, echoing nothing. */
function promptHidden(prompt: string, tty: ReadStream, out: Writable): Promise<string> {
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (error?: Error): void => {
      tty.off('data', onData);
      tty.setRawMode(false);
      tty.pause();
      out.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (data: Buffer): void => {
      for (const char of data.toString('utf8')) {
        if (char === '\r' || char === '\n') {
          finish();
          return;
        }
        if (char === '\u0003' || char === '\u0004') {
          finish(new PasswdFailure('interrupted'));
          return;
        }
        if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
        else typed += char;
      }
    };
    // Echo off before the prompt shows: what is typed in answer must never reach the screen.
    tty.setRawMode(true);
    out.write(prompt);
    tty.resume();
    tty.on('data', onData);
  });
}

async function readPassword(io: PasswdIo): Promise<string> {
  const tty = io.stdin as Partial<ReadStream>;
  let password: string;
  if (tty.isTTY === true && typeof tty.setRawMode === 'function') {
    const terminal = io.stdin as ReadStream;
    password = await promptHidden('Password: ', terminal, io.stderr);
    const again = await promptHidden('Reenter password: ', terminal, io.stderr);
    if (again !== password) throw new PasswdFailure('the passwords do not match');
  } else {
    password = await readFirstLine(io.stdin);
  }
  if (password === '') throw new PasswdFailure('the password is empty');
  return password;
}

async function apply(args: PasswdArgs, io: PasswdIo): Promise<void> {
  const existing = args.create ? undefined : await readExisting(args.file);
  if (args.remove) {
    if (existing === undefined) throw new PasswdFailure(`${args.file} does not exist`);
    if (!existing.split('\n').some((line) => userOfLine(line) === args.user)) {
      throw new PasswdFailure(`no user '${args.user}' in ${args.file}`);
    }
    await writeAtomically(args.file, editPasswordText(existing, args.user, undefined));
    return;
  }
  const password = await readPassword(io);
  const hash = await hashPassword(password);
  const scram = formatScramCredential(await deriveScramCredential(password, args.scramIterations));
  await writeAtomically(
    args.file,
    editPasswordText(existing ?? '', args.user, `${args.user}:${hash}:${scram}`),
  );
}

/** Runs `cicada passwd ARGS`; resolves with the exit code (0 done, 1 failed, 2 usage error). */
export async function runPasswd(argv: readonly string[], io?: PasswdIo): Promise<number> {
  const streams = io ?? { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  try {
    const args = parsePasswdArgs(argv);
    if (args === 'help') {
      streams.stdout.write(HELP);
      return 0;
    }
    await apply(args, streams);
    return 0;
  } catch (error) {
    if (error instanceof PasswdUsageError) {
      streams.stderr.write(`cicada passwd: ${error.message} (${PASSWD_USAGE})\n`);
      return 2;
    }
    if (error instanceof PasswdFailure) {
      streams.stderr.write(`cicada passwd: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
