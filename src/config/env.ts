import { walkFields } from './fields.js';
import { ConfigError, editDistance, validateLeaf } from './load.js';
import { type CicadaConfig, CONFIG_SCHEMA, type LeafField } from './schema.js';

/**
 * Settings from environment variables: every setting of the config file (but lists of
 * sections such as `listeners`) has one, named after its dotted key: `CICADA_` and the key's
 * parts in upper snake case (`mqtt.receiveMaximum` → `CICADA_MQTT_RECEIVE_MAXIMUM`).
 * They override the config file; command-line flags override them.
 */

/** What every Cicada variable starts with. */
export const ENV_PREFIX = 'CICADA_';

/**
 * `CICADA_` variables that are not settings, so not refused as unknown: the config file to
 * read when `--config` is not given, and extra Node flags the benchmark runner passes on.
 */
export const NON_SETTING_VARIABLES: readonly string[] = ['CICADA_CONFIG', 'CICADA_NODE_ARGS'];

/** Where errors about variables say they come from. */
const SOURCE = 'environment';

/** One setting an environment variable can give. */
export interface EnvSetting {
  readonly variable: string;
  /** Dotted key path in the config, e.g. `mqtt.receiveMaximum`. */
  readonly key: string;
  readonly field: LeafField;
}

/** The variable naming a dotted key: `auth.jwt.secretFile` → `CICADA_AUTH_JWT_SECRET_FILE`. */
export function envVariableName(key: string): string {
  // `QoS` is one word: `broker.maximumQoS` → `CICADA_BROKER_MAXIMUM_QOS`.
  const parts = key.split('.').map((part) =>
    part
      .replace(/QoS/g, 'Qos')
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .toUpperCase(),
  );
  return ENV_PREFIX + parts.join('_');
}

/** Every settable variable, in schema order. Lists of sections are left out (their items have no names). */
export const ENV_SETTINGS: readonly EnvSetting[] = (() => {
  const settings: EnvSetting[] = [];
  walkFields(CONFIG_SCHEMA, (key, field) => {
    if (key.includes('[]') || field.kind === 'section' || field.kind === 'list') return;
    settings.push({ variable: envVariableName(key), key, field });
  });
  // Two keys folding to one name would make a variable ambiguous: a schema bug, caught at load.
  const seen = new Set<string>();
  for (const { variable } of settings) {
    if (seen.has(variable)) throw new Error(`two settings map to the environment variable ${variable}`);
    seen.add(variable);
  }
  return settings;
})();

const BY_VARIABLE = new Map(ENV_SETTINGS.map((setting) => [setting.variable, setting]));

/** Prefixes of variables that would name something inside a list of sections. */
const LIST_PREFIXES: readonly [string, string][] = Object.entries(CONFIG_SCHEMA)
  .filter(([, field]) => field.kind === 'list')
  .map(([name]) => [envVariableName(name), name]);

/**
 * `config` with every `CICADA_*` variable of `env` applied (in name order, so the first error
 * is always the same one). Throws a one-line `ConfigError` naming the variable, its value and
 * what was expected, or an unknown variable with the closest known name.
 */
export function applyEnvironment(config: Readonly<CicadaConfig>, env: NodeJS.ProcessEnv): CicadaConfig {
  const out = structuredClone(config) as CicadaConfig;
  const names = Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && !NON_SETTING_VARIABLES.includes(name))
    .sort();
  for (const variable of names) {
    const text = env[variable] ?? '';
    const setting = BY_VARIABLE.get(variable);
    if (setting === undefined) throw unknownVariable(variable);
    const given = fromText(setting.field, text);
    const value = given === undefined ? undefined : validateLeaf(setting.field, given, variable, SOURCE);
    setKey(out as unknown as Record<string, unknown>, setting.key, value);
  }
  return out;
}

/**
 * A variable's text as the value a config file would give: integers and booleans parsed,
 * lists split on commas. What does not parse stays text, so the error shows it as given.
 * An empty value unsets a setting that has no default.
 */
function fromText(field: LeafField, text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === '' && field.kind !== 'string' && field.default === undefined) return undefined;
  switch (field.kind) {
    case 'integer':
      return /^[+-]?\d+$/.test(trimmed) ? Number(trimmed) : text;
    case 'boolean':
      return trimmed === 'true' ? true : trimmed === 'false' ? false : text;
    case 'enum':
      return field.values.some((v) => typeof v === 'number') && /^\d+$/.test(trimmed)
        ? Number(trimmed)
        : trimmed;
    case 'urls':
    case 'names':
      return trimmed
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
    case 'string':
      return text;
  }
}

/** Sets the setting at dotted `key` of a config (`undefined` unsets it); its sections must exist. */
export function setKey(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>;
  const last = parts[parts.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
}

function unknownVariable(variable: string): ConfigError {
  for (const [prefix, name] of LIST_PREFIXES) {
    if (variable === prefix || variable.startsWith(`${prefix}_`)) {
      return new ConfigError(
        'CONFIG_INVALID',
        SOURCE,
        `${variable}: ${name} cannot be set from the environment (it is a list of sections): use the config file`,
        { key: variable },
      );
    }
  }
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor((variable.length - ENV_PREFIX.length) / 5));
  for (const known of [...BY_VARIABLE.keys(), ...NON_SETTING_VARIABLES]) {
    const distance = editDistance(variable, known);
    if (distance <= bestDistance) {
      best = known;
      bestDistance = distance;
    }
  }
  // A setting put in the wrong section: the same name under another one.
  const rest = variable.slice(ENV_PREFIX.length).split('_').slice(1).join('_');
  if (best === undefined && rest !== '')
    best = [...BY_VARIABLE.keys()].find((known) => known.endsWith(`_${rest}`));
  const hint = best === undefined ? 'not a Cicada setting' : `did you mean ${best}?`;
  return new ConfigError('CONFIG_INVALID', SOURCE, `unknown variable ${variable} (${hint})`, {
    key: variable,
  });
}
