import { applyEnvironment } from '../config/env.js';
import { loadConfigFile } from '../config/load.js';
import { type CicadaConfig, DEFAULT_CONFIG } from '../config/schema.js';
import { applyArgs, type CliArgs } from './args.js';

/**
 * Where the running configuration comes from, later ones overriding earlier ones:
 * defaults < config file < environment (`CICADA_*`) < command-line flags.
 */

/** The config file to read: `--config`, else `CICADA_CONFIG`, else none (defaults). */
export function configFileOf(args: Pick<CliArgs, 'config'>, env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env['CICADA_CONFIG'];
  return args.config ?? (fromEnv === undefined || fromEnv === '' ? undefined : fromEnv);
}

/** Reads the config file and applies the environment, then the flags; throws `ConfigError`. */
export async function resolveConfig(args: CliArgs, env: NodeJS.ProcessEnv): Promise<CicadaConfig> {
  const file = configFileOf(args, env);
  const fromFile = file === undefined ? DEFAULT_CONFIG : await loadConfigFile(file);
  return applyArgs(applyEnvironment(fromFile, env), args);
}
