import { getSystemErrorMap } from 'node:util';

/** Log levels, most severe first: a logger at one level writes that level and those before it. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

/** Extra fields of a log line; values are written as JSON (errors as their message and code). */
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  readonly level: LogLevel;
  /** Whether a line at `level` would be written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  /** Where each line goes (without its newline added). Default: stdout. */
  write?: (line: string) => void;
  /** Clock, for tests. */
  now?: () => Date;
}

/** Keys every line has; fields cannot replace them. */
const RESERVED = new Set(['time', 'level', 'msg']);
/** Field names whose values are never written, whatever the caller passes. */
const SECRET = /pass(word|phrase)?|secret|token|credential/i;

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * A structured logger: one JSON object per line, `{"time":ISO,"level":…,"msg":…, ...fields}`.
 * Fields named like a secret (password, token, …) are redacted.
 */
export function createLogger(level: LogLevel, options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const threshold = LOG_LEVELS.indexOf(level);
  const enabled = (at: LogLevel): boolean => LOG_LEVELS.indexOf(at) <= threshold;
  const log =
    (at: LogLevel) =>
    (msg: string, fields?: LogFields): void => {
      if (enabled(at)) write(formatLine(now(), at, msg, fields));
    };
  return {
    level,
    enabled,
    error: log('error'),
    warn: log('warn'),
    info: log('info'),
    debug: log('debug'),
  };
}

function formatLine(time: Date, level: LogLevel, msg: string, fields: LogFields | undefined): string {
  const line: Record<string, unknown> = { time: time.toISOString(), level, msg };
  if (fields !== undefined) {
    for (const [key, value] of Object.entries(fields)) {
      if (RESERVED.has(key) || value === undefined) continue;
      line[key] = SECRET.test(key) ? '[redacted]' : value;
    }
  }
  try {
    return JSON.stringify(line, replacer);
  } catch {
    // A cycle, say: keep the line, lose the fields.
    return JSON.stringify({ time: line['time'], level, msg, logError: 'fields not serializable' });
  }
}

function replacer(key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? { message: value.message } : { message: value.message, code };
  }
  if (key !== '' && SECRET.test(key)) return '[redacted]';
  return value;
}

/**
 * A failure's reason for a human, on one line: a system error's text as the OS gives it
 * ("address already in use", "no such file or directory"), otherwise the error's message.
 */
export function errorReason(error: unknown): string {
  const errno = (error as { errno?: unknown } | null)?.errno;
  const known = typeof errno === 'number' ? getSystemErrorMap().get(errno)?.[1] : undefined;
  const text = known ?? (error instanceof Error ? error.message : String(error));
  return text.split('\n')[0];
}
