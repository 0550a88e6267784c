import { createLogger, type Logger, type LoggerOptions, type LogLevel } from '../observe/log.js';

/** A logger whose level can change while it is in use (a reloaded config's `logLevel`). */
export interface SwitchableLogger extends Logger {
  setLevel(level: LogLevel): void;
}

/** A logger at `level` that every holder sees switch when `setLevel` is called. */
export function switchableLogger(level: LogLevel, options: LoggerOptions = {}): SwitchableLogger {
  let inner = createLogger(level, options);
  return {
    get level() {
      return inner.level;
    },
    enabled: (at) => inner.enabled(at),
    error: (msg, fields) => inner.error(msg, fields),
    warn: (msg, fields) => inner.warn(msg, fields),
    info: (msg, fields) => inner.info(msg, fields),
    debug: (msg, fields) => inner.debug(msg, fields),
    setLevel(next) {
      if (next !== inner.level) inner = createLogger(next, options);
    },
  };
}
