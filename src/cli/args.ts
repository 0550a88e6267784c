import { parseArgs } from 'node:util';
import { type CicadaConfig, checkListenUrl } from '../config/schema.js';
import { isLogLevel, LOG_LEVELS, type LogLevel } from '../observe/log.js';

/** What the command line asks for; undefined settings come from the config file. */
export interface CliArgs {
  /** Listener URLs; when given they replace the config file's list. */
  listen: string[] | undefined;
  config: string | undefined;
  logLevel: LogLevel | undefined;
  /** Keep state in memory instead of the durable store. */
  memory: boolean;
  /** The durable store's data directory. */
  data: string | undefined;
  allowAnonymous: boolean;
  passwordFile: string | undefined;
  aclFile: string | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsCa: string | undefined;
  help: boolean;
  version: boolean;
}

/** A command line that cannot be used; the message is one line, without the `cicada:` prefix. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'USAGE';
}

const OPTIONS = {
  listen: { type: 'string', short: 'l', multiple: true },
  config: { type: 'string', short: 'c' },
  'log-level': { type: 'string' },
  memory: { type: 'boolean' },
  data: { type: 'string', short: 'd' },
  'allow-anonymous': { type: 'boolean' },
  'password-file': { type: 'string' },
  'acl-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

type OptionName = keyof typeof OPTIONS;

export const USAGE = `Usage: cicada [options]
       cicada passwd [-c] [-D] FILE USER
       cicada check-config FILE

Runs the Cicada MQTT broker.

Options:
  -l, --listen URL         Listen on URL: mqtt://, mqtts://, ws://HOST:PORT/mqtt or wss://;
                           STOMP on stomp://, stomps:// or ws://HOST:PORT/stomp (port 0
                           picks a free port). Repeatable; replaces the config file's list.
                           Default: mqtt://0.0.0.0:1883
  -c, --config FILE        Read settings from FILE (YAML, or JSON).
      --log-level LEVEL    One of ${LOG_LEVELS.join(', ')}. Default: info
  -d, --data DIR           Keep state in the durable store in DIR. Default: ./data
      --memory             Keep state in memory instead: it is lost when the broker stops.
      --allow-anonymous    Let clients in without credentials (off by default).
      --password-file FILE Users and password hashes, made with \`cicada passwd\`.
      --acl-file FILE      Topic access rules (Mosquitto syntax); deny by default once set.
      --tls-cert FILE      Certificate chain (PEM) of mqtts://, stomps:// and wss:// listeners.
      --tls-key FILE       Its private key (PEM).
      --tls-ca FILE        CA bundle for client certificates: clients must present one.
  -h, --help               Print this help.
      --version            Print the version.

\`cicada passwd FILE USER\` adds or changes USER in the password file (prompting for the
password, or reading it from stdin); -c creates FILE, -D deletes USER.
\`cicada check-config FILE\` validates FILE (with the environment) and the files it names,
without starting.

Every setting can also come from an environment variable named after its key:
mqtt.receiveMaximum is CICADA_MQTT_RECEIVE_MAXIMUM (lists comma-separated; not listeners).
CICADA_CONFIG names the config file when --config is not given.
Precedence: defaults < config file < environment < command-line options.
SIGHUP reloads the config (live settings apply at once; the log says which need a restart)
and the credential, ACL and certificate files. Logs are JSON lines on stdout.
`;

/** Parses the arguments after `node main.js`; throws `UsageError` with a one-line reason. */
export function parseCliArgs(argv: readonly string[]): CliArgs {
  // Not strict, so that every mistake gets a message of ours, checked token by token.
  const { tokens } = parseArgs({
    args: [...argv],
    options: OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const args: CliArgs = {
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
  };
  for (const token of tokens) {
    if (token.kind === 'positional')
      throw new UsageError(`unexpected argument '${token.value}' (see --help)`);
    if (token.kind !== 'option') continue;
    if (!Object.hasOwn(OPTIONS, token.name))
      throw new UsageError(`unknown option '${token.rawName}' (see --help)`);
    const name = token.name as OptionName;
    const { value } = token;
    if (OPTIONS[name].type === 'boolean') {
      if (value !== undefined) throw new UsageError(`option '${token.rawName}' takes no value`);
    } else if (value === undefined || (!token.inlineValue && value.startsWith('-') && value !== '-')) {
      // `--config --memory` is a forgotten value, not a file named "--memory".
      throw new UsageError(`option '${token.rawName}' needs a value`);
    }
    switch (name) {
      case 'listen': {
        const url = value ?? '';
        const problem = checkListenUrl(url);
        if (problem !== undefined)
          throw new UsageError(`option '${token.rawName}' is ${JSON.stringify(url)}, expected ${problem}`);
        args.listen = [...(args.listen ?? []), url];
        break;
      }
      case 'config':
        args.config = value;
        break;
      case 'data':
        args.data = value;
        break;
      case 'allow-anonymous':
        args.allowAnonymous = true;
        break;
      case 'password-file':
        args.passwordFile = value;
        break;
      case 'acl-file':
        args.aclFile = value;
        break;
      case 'tls-cert':
        args.tlsCert = value;
        break;
      case 'tls-key':
        args.tlsKey = value;
        break;
      case 'tls-ca':
        args.tlsCa = value;
        break;
      case 'log-level':
        if (!isLogLevel(value)) {
          throw new UsageError(
            `option '${token.rawName}' is ${JSON.stringify(value)}, expected one of ${LOG_LEVELS.join(', ')}`,
          );
        }
        args.logLevel = value;
        break;
      case 'memory':
      case 'help':
      case 'version':
        args[name] = true;
        break;
    }
  }
  return args;
}

/** The configuration to run: the file's (or the defaults), overridden by the command line. */
export function applyArgs(config: Readonly<CicadaConfig>, args: CliArgs): CicadaConfig {
  // A copy the caller may change, whatever sections the config grows.
  const out = structuredClone(config) as CicadaConfig;
  return {
    ...out,
    listen: args.listen === undefined ? out.listen : [...args.listen],
    logLevel: args.logLevel ?? out.logLevel,
    store: {
      type: args.memory ? 'memory' : args.data !== undefined ? 'durable' : out.store.type,
      directory: args.data ?? out.store.directory,
    },
    tls: {
      ...out.tls,
      cert: args.tlsCert ?? out.tls.cert,
      key: args.tlsKey ?? out.tls.key,
      ca: args.tlsCa ?? out.tls.ca,
      // A CA on the command line means mutual TLS.
      requestCert: args.tlsCa !== undefined || out.tls.requestCert,
    },
    auth: {
      ...out.auth,
      allowAnonymous: args.allowAnonymous || out.auth.allowAnonymous,
      passwordFile: args.passwordFile ?? out.auth.passwordFile,
    },
    acl: { file: args.aclFile ?? out.acl.file },
  };
}
