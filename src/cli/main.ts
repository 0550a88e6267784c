#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AccessControl } from '../auth/access-control.js';
import { accessControlFromConfig, persistentSecret } from '../auth/from-config.js';
import { readAdminToken } from '../config/http.js';
import { ConfigError } from '../config/load.js';
import type { CicadaConfig } from '../config/schema.js';
import type { BrokerMetrics } from '../observe/broker-metrics.js';
import { errorReason } from '../observe/log.js';
import { createBroker } from '../server.js';
import { DurableStore, StoreError } from '../store/durable/index.js';
import { MemoryStore } from '../store/memory/memory-store.js';
import { type CliArgs, parseCliArgs, USAGE, UsageError } from './args.js';
import { logBrokerEvents } from './broker-log.js';
import { fileErrorReason, runCheckConfig } from './check-config.js';
import { configFileOf, resolveConfig } from './config-sources.js';
import { ListenerConfigError, type ListenerSpec, listenerSpecs } from './listeners.js';
import { runPasswd } from './passwd.js';
import { handleSignals } from './signals.js';
import { type SwitchableLogger, switchableLogger } from './switchable-log.js';

/** The one-line reason on stderr, and a failing exit code once the event loop drains. */
function fail(reason: string, exitCode = 1): void {
  process.stderr.write(`cicada: ${reason}\n`);
  process.exitCode = exitCode;
}

function readVersion(): string {
  // dist/src/cli/main.js -> package.json at the package root.
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  const version =
    typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
  return typeof version === 'string' ? version : 'unknown';
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === 'passwd') {
    process.exitCode = await runPasswd(argv.slice(1));
    return;
  }
  if (argv[0] === 'check-config') {
    process.exitCode = await runCheckConfig(argv.slice(1), process.env);
    return;
  }
  let args: ReturnType<typeof parseCliArgs>;
  try {
    args = parseCliArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) return fail(error.message, 2);
    throw error;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.version) {
    process.stdout.write(`${readVersion()}\n`);
    return;
  }
  // Defaults < config file < environment < flags.
  let config: CicadaConfig;
  try {
    config = await resolveConfig(args, process.env);
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.message);
    throw error;
  }
  await run(config, switchableLogger(config.logLevel), args);
}

async function run(config: CicadaConfig, log: SwitchableLogger, args: CliArgs): Promise<void> {
  const configFile = configFileOf(args, process.env);
  let listeners: ListenerSpec[];
  let access: AccessControl;
  let adminToken: string | undefined;
  // Refusals are counted once the broker, and so its metrics, exists.
  let metrics: BrokerMetrics | undefined;
  try {
    listeners = listenerSpecs(config);
    adminToken = await readAdminToken(config.http);
    // The durable store's directory keeps the SCRAM secret, so unknown users stay unrecognisable across restarts.
    const secret =
      config.store.type === 'durable' && config.auth.passwordFile !== '' && config.auth.scram
        ? await persistentSecret(join(config.store.directory, 'scram-secret'))
        : undefined;
    access = await accessControlFromConfig(
      config,
      {
        // One line per refusal, never the password or token.
        onFailure: (failure) => {
          log.warn('authentication failed', { ...failure });
          metrics?.recordAuthFailure(failure);
        },
        onError: (error) => log.error('access control', { error }),
        onReload: (file, users) => log.info('password file reloaded', { file, users }),
      },
      secret === undefined ? {} : { secret },
    );
  } catch (error) {
    if (error instanceof ListenerConfigError) return fail(error.message);
    return fail(fileErrorReason(error));
  }
  const store =
    config.store.type === 'memory'
      ? new MemoryStore()
      : new DurableStore({ directory: config.store.directory });
  const broker = createBroker({
    ...config.broker,
    store,
    mqtt: config.mqtt,
    stomp: config.stomp,
    limits: config.limits,
    hooks: access.hooks(),
    http: {
      adminToken: adminToken ?? '',
      accessControl: access,
      metricsAuth: config.http.metricsAuth,
      sseKeepAlive: config.http.sseKeepAlive,
      sseReplayWindow: config.http.sseReplayWindow,
    },
    sys: { interval: config.sys.interval },
    queues: config.queues,
    onError: (error) => log.error('internal error', { error }),
  });
  metrics = broker.metrics;
  logBrokerEvents(broker, log);
  const signals = handleSignals({ broker, access, log, args, config });
  // A start that fails leaves nothing behind to keep the process alive.
  const abandon = (): void => {
    signals.detach();
    access.close();
  };

  log.info('starting', {
    version: readVersion(),
    pid: process.pid,
    config: configFile,
    store: config.store.type,
    ...(config.store.type === 'durable' ? { data: config.store.directory } : {}),
  });
  try {
    // Open the store first, so a bad data directory is reported as such.
    await broker.start();
  } catch (error) {
    abandon();
    if (error instanceof StoreError) return fail(error.message);
    throw error;
  }
  for (const { url, options } of listeners) {
    let listener: Awaited<ReturnType<typeof broker.listen>>;
    try {
      listener = await broker.listen(url, options);
    } catch (error) {
      if (signals.stopping) return;
      fail(`cannot listen on ${url}: ${errorReason(error)}`);
      abandon();
      await broker.close().catch(() => {});
      return;
    }
    if (signals.stopping) return;
    log.info('listening', { url, host: listener.host, port: listener.port });
  }
  if (
    !config.auth.allowAnonymous &&
    // A listener letting anonymous clients in is a way in too.
    !config.listeners.some((l) => l.allowAnonymous === true) &&
    access.providerCount === 0 &&
    !listeners.some((l) => l.options.tls?.usernameFrom)
  ) {
    log.warn('no way to log in: anonymous access is off and no credentials are configured', {
      hint: 'use --allow-anonymous, or --password-file FILE (made with `cicada passwd`)',
    });
  }
  log.info('ready', { listeners: listeners.length });
}

main(process.argv.slice(2)).catch((error: unknown) => {
  // A bug, not a user mistake: keep the stack.
  process.stderr.write(`cicada: unexpected error: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
