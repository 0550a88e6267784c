import { createSecureContext } from 'node:tls';
import { accessControlFromConfig } from '../auth/from-config.js';
import { applyEnvironment } from '../config/env.js';
import { readAdminToken } from '../config/http.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { CicadaConfig } from '../config/schema.js';
import { errorReason } from '../observe/log.js';
import { readTlsFiles } from '../transport/tls-context.js';
import { ListenerConfigError, type ListenerSpec, listenerSpecs } from './listeners.js';

/**
 * `cicada check-config FILE`: validates FILE with the environment applied, as a start would,
 * and reads every file it names (TLS certificates and keys, password, ACL, token-key and
 * admin-token files) with the loaders the broker uses, so that a typo shows before a restart. Nothing is
 * started. Exit 0 with a one-line summary on stdout, 1 with the one-line error on stderr,
 * 2 for a wrong command line.
 */
export async function runCheckConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.length !== 1 || argv[0].startsWith('-')) {
    process.stderr.write('cicada: usage: cicada check-config FILE\n');
    return 2;
  }
  const file = argv[0];
  try {
    const config = applyEnvironment(await loadConfigFile(file), env);
    const listeners = listenerSpecs(config);
    for (const listener of listeners) await checkTls(listener);
    // A start reads it too, and fails without it.
    await readAdminToken(config.http);
    const access = await accessControlFromConfig(config);
    const providers = access.providerCount;
    access.close();
    process.stdout.write(`ok: ${file}: ${summary(config, listeners, providers)}\n`);
    return 0;
  } catch (error) {
    const reason =
      error instanceof ConfigError || error instanceof ListenerConfigError
        ? error.message
        : fileErrorReason(error);
    process.stderr.write(`cicada: ${reason}\n`);
    return 1;
  }
}

/** A failure's one-line reason, naming the file when the OS error has one ("no such file" alone helps nobody). */
export function fileErrorReason(error: unknown): string {
  const path = (error as { path?: unknown } | null)?.path;
  const reason = errorReason(error);
  return typeof path === 'string' && !reason.includes(path) ? `cannot read '${path}': ${reason}` : reason;
}

/** Reads a TLS listener's files and builds its context: a missing file, a bad PEM or a key not matching fails. */
async function checkTls({ url, options }: ListenerSpec): Promise<void> {
  if (options.tls === undefined) return;
  try {
    createSecureContext(await readTlsFiles(options.tls));
  } catch (error) {
    throw new Error(`${url}: ${errorReason(error)}`);
  }
}

function summary(config: CicadaConfig, listeners: readonly ListenerSpec[], providers: number): string {
  const urls = listeners.map((l) => l.url).join(', ');
  const store =
    config.store.type === 'durable' ? `durable store in ${config.store.directory}` : 'memory store';
  const anonymous = config.auth.allowAnonymous ? 'anonymous allowed' : 'anonymous refused';
  const acl = config.acl.file === '' ? 'no ACL file' : `ACL ${config.acl.file}`;
  return `${listeners.length} listener(s) (${urls}), ${store}, ${providers} credential check(s), ${anonymous}, ${acl}`;
}
