import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { errorReason } from '../observe/log.js';
import { isSecretKey } from './diff.js';
import { walkFields } from './fields.js';
import {
  type CicadaConfig,
  checkListenUrl,
  defaultsOf,
  expectation,
  type Fields,
  type LeafField,
  ROOT,
  type Section,
} from './schema.js';

export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_SYNTAX' | 'CONFIG_UNREADABLE';

/**
 * A config file that cannot be used. The message is one line, naming the file, and for
 * invalid settings the key, its value and what was expected.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  /** The file (or other source) as it was named. */
  readonly source: string;
  /** Dotted path of the offending key (`mqtt.receiveMaximum`, `listen[1]`), if one is at fault. */
  readonly key: string | undefined;
  /** 1-based position of a syntax error. */
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(
    code: ConfigErrorCode,
    source: string,
    detail: string,
    where: { key?: string; line?: number; column?: number } = {},
  ) {
    super(`config ${source}: ${detail}`);
    this.code = code;
    this.source = source;
    this.key = where.key;
    this.line = where.line;
    this.column = where.column;
  }
}

/** Reads, parses (YAML, or JSON which YAML reads too) and validates a config file. */
export async function loadConfigFile(path: string): Promise<CicadaConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError('CONFIG_UNREADABLE', path, `cannot read the file: ${errorReason(error)}`);
  }
  return parseConfig(text, path);
}

/** Parses config text (YAML or JSON) and validates it; `source` names it in errors. */
export function parseConfig(text: string, source: string): CicadaConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const error = doc.errors[0];
  if (error !== undefined) {
    const position = error.linePos?.[0];
    const reason =
      error.code === 'MULTIPLE_DOCS'
        ? 'more than one document (a config file holds one)'
        : error.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').split('\n')[0];
    const at = position === undefined ? '' : ` at line ${position.line}, column ${position.col}`;
    throw new ConfigError('CONFIG_SYNTAX', source, `YAML syntax error${at}: ${reason}`, {
      line: position?.line,
      column: position?.col,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (cause) {
    // Excessive aliases (a "billion laughs" document), say.
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new ConfigError('CONFIG_SYNTAX', source, `YAML error: ${reason}`);
  }
  return validateConfig(value, source);
}

/**
 * Checks a parsed config against the schema and fills in defaults. An empty document (null)
 * is all defaults. Throws a `ConfigError` for the first unknown key, wrong type or
 * impossible value, in document order.
 */
export function validateConfig(value: unknown, source: string): CicadaConfig {
  // Sound: the result was built from the schema, whose type is derived from CicadaConfig.
  const config = validateSection(ROOT, value ?? {}, '', source) as unknown as CicadaConfig;
  // Listeners given one by one replace the default `listen` list unless it is given too.
  if (isPlainObject(value) && value.listeners !== undefined && value.listen === undefined) config.listen = [];
  if (config.listen.length + config.listeners.length === 0)
    throw new ConfigError('CONFIG_INVALID', source, 'no listener: give listen or listeners', {
      key: 'listen',
    });
  return config;
}

function validateSection(
  section: Section,
  value: unknown,
  path: string,
  source: string,
): Record<string, unknown> {
  if (!isPlainObject(value)) {
    const expected = `${expectation(section)} of settings`;
    if (path !== '') throw invalid(source, path, value, expected);
    throw new ConfigError('CONFIG_INVALID', source, `the top level is ${show(value)}, expected ${expected}`);
  }
  const given = new Map<string, unknown>();
  for (const [name, raw] of Object.entries(value)) {
    const key = path === '' ? name : `${path}.${name}`;
    const field = Object.hasOwn(section.fields, name) ? section.fields[name] : undefined;
    if (field === undefined) throw unknownKey(source, section.fields, name, path);
    if (field.kind === 'section') {
      // An empty section (`mqtt:` with every line commented out) is null in YAML.
      given.set(name, validateSection(field, raw ?? {}, key, source));
    } else if (field.kind === 'list') {
      if (!Array.isArray(raw)) throw invalid(source, key, raw, expectation(field));
      given.set(
        name,
        raw.map((item: unknown, index) => validateSection(field.item, item, `${key}[${index}]`, source)),
      );
    } else {
      given.set(name, validateLeaf(field, raw, key, source));
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(section.fields)) {
    if (field.kind === 'string' && field.required === true && !given.has(name)) {
      const key = path === '' ? name : `${path}.${name}`;
      throw new ConfigError('CONFIG_INVALID', source, `${key} is missing, expected ${field.description}`, {
        key,
      });
    }
    if (given.has(name)) out[name] = given.get(name);
    else if (field.kind === 'section') out[name] = defaultsOf(field.fields);
    else if (field.default !== undefined)
      out[name] = Array.isArray(field.default) ? [...field.default] : field.default;
  }
  return out;
}

/**
 * Checks one setting's value against its field (as a file gives it: numbers, booleans,
 * strings, lists) and returns it; throws a `ConfigError` naming `key`, the value and what was expected.
 */
export function validateLeaf(field: LeafField, value: unknown, key: string, source: string): unknown {
  switch (field.kind) {
    case 'integer':
      if (typeof value === 'number' && Number.isInteger(value) && value >= field.min && value <= field.max)
        return value;
      break;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      break;
    case 'string': {
      if (typeof value !== 'string') break;
      const problem = field.check?.(value);
      if (problem !== undefined) throw invalid(source, key, value, problem);
      return value;
    }
    case 'names': {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list)) break;
      for (const [index, item] of list.entries()) {
        if (typeof item !== 'string' || !field.values.includes(item))
          throw invalid(source, `${key}[${index}]`, item, `one of ${field.values.join(', ')}`);
      }
      return [...list];
    }
    case 'enum':
      if ((typeof value === 'string' || typeof value === 'number') && field.values.includes(value))
        return value;
      break;
    case 'urls': {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list)) break;
      if (list.length === 0) throw invalid(source, key, list, 'at least one listener URL');
      return list.map((item: unknown, index) => {
        const problem =
          typeof item === 'string' ? checkListenUrl(item) : 'a URL string such as mqtt://0.0.0.0:1883';
        if (problem !== undefined) throw invalid(source, `${key}[${index}]`, item, problem);
        return item;
      });
    }
  }
  throw invalid(source, key, value, expectation(field));
}

function invalid(source: string, key: string, value: unknown, expected: string): ConfigError {
  // A passphrase or token of the wrong type is still a secret: the message goes to stderr and the log.
  const shown = isSecretKey(key) ? '(hidden)' : show(value);
  return new ConfigError('CONFIG_INVALID', source, `${key} is ${shown}, expected ${expected}`, { key });
}

function unknownKey(source: string, siblings: Fields, name: string, parent: string): ConfigError {
  const key = parent === '' ? name : `${parent}.${name}`;
  const guess = suggest(name, parent);
  const hint =
    guess === undefined ? `known keys: ${Object.keys(siblings).join(', ')}` : `did you mean '${guess}'?`;
  return new ConfigError('CONFIG_INVALID', source, `unknown key '${key}' (${hint})`, { key });
}

/** A value as error messages show it: short, on one line. */
function show(value: unknown): string {
  if (value === undefined || value === null || typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// ---- "did you mean" -------------------------------------------------------------------------

/** Every key path in the schema, sections included. */
const KEY_PATHS: readonly string[] = (() => {
  const paths: string[] = [];
  walkFields(ROOT.fields, (key) => paths.push(key));
  return paths;
})();

/**
 * The known key most like an unknown one: a close spelling (or the same name in another
 * section, for a setting put at the wrong level), preferring the section it was found in.
 */
function suggest(name: string, parent: string): string | undefined {
  const wanted = name.toLowerCase();
  const limit = Math.max(1, Math.min(3, Math.floor(wanted.length / 4)));
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const path of KEY_PATHS) {
    const dot = path.lastIndexOf('.');
    const distance = editDistance(wanted, path.slice(dot + 1).toLowerCase());
    if (distance > limit) continue;
    const score =
      distance * 2 + (path.slice(0, Math.max(dot, 0)) === parent.replace(/\[\d+\]/g, '[]') ? 0 : 1);
    if (score < bestScore) {
      best = path;
      bestScore = score;
    }
  }
  return best;
}

/** Optimal string alignment distance: edits, counting a swap of neighbours as one. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, rows[i - 2][j - 2] + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length][b.length];
}
