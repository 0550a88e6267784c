import { type ConfigChange, describeChange, diffConfig, isLiveSetting } from '../config/diff.js';
import { setKey } from '../config/env.js';
import { ConfigError } from '../config/load.js';
import type { CicadaConfig } from '../config/schema.js';
import type { Cicada } from '../server.js';
import type { CliArgs } from './args.js';
import { resolveConfig } from './config-sources.js';
import type { SwitchableLogger } from './switchable-log.js';

/** What a SIGHUP reload of the configuration works on. */
export interface ReloadContext {
  readonly args: CliArgs;
  readonly env: NodeJS.ProcessEnv;
  readonly broker: Cicada;
  readonly log: SwitchableLogger;
}

/**
 * Re-reads the config file and the environment (the flags still override them), applies the
 * settings that can change live (see `isLiveSetting`) and logs one line: what was applied and
 * what needs a restart, secrets shown only as changed. Returns the configuration now in
 * force: `running` with the live settings replaced, so a change that needs a restart is
 * reported again by every reload until the restart. A file that cannot be used changes
 * nothing: the error is logged and `running` stays.
 */
export async function reloadConfig(running: CicadaConfig, context: ReloadContext): Promise<CicadaConfig> {
  const { log } = context;
  let next: CicadaConfig;
  try {
    next = await resolveConfig(context.args, context.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log.error('config reload failed: keeping the running configuration', { reason: error.message });
    return running;
  }
  const changes = diffConfig(running, next);
  const applied = changes.filter((change) => isLiveSetting(change.key));
  const pending = changes.filter((change) => !isLiveSetting(change.key));
  const now = withChanges(running, applied);
  context.log.setLevel(now.logLevel);
  // The packet size stays (it needs a restart); an unset Server Keep Alive must unset it.
  const { maxPacketSize: _fixed, ...mqtt } = now.mqtt;
  context.broker.reconfigure({
    mqtt: { ...mqtt, serverKeepAlive: now.mqtt.serverKeepAlive },
    limits: {
      maxConnections: now.limits.maxConnections,
      maxConnectionsPerAddress: now.limits.maxConnectionsPerAddress,
    },
  });
  const fields = { applied: applied.map(describeChange), needsRestart: pending.map(describeChange) };
  if (pending.length > 0) log.warn('config reloaded: some changes need a restart', fields);
  else log.info(changes.length === 0 ? 'config reloaded: no changes' : 'config reloaded', fields);
  return now;
}

/** `running` with the applied changes made (live settings are plain dotted keys, no lists). */
function withChanges(running: CicadaConfig, changes: readonly ConfigChange[]): CicadaConfig {
  const out = structuredClone(running);
  for (const { key, after } of changes) setKey(out as unknown as Record<string, unknown>, key, after);
  return out;
}
