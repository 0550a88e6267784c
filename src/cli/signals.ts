import type { AccessControl } from '../auth/access-control.js';
import { readAdminToken } from '../config/http.js';
import type { CicadaConfig } from '../config/schema.js';
import type { Cicada } from '../server.js';
import type { CliArgs } from './args.js';
import { reloadConfig } from './reload.js';
import type { SwitchableLogger } from './switchable-log.js';

/** What the signal handlers act on. */
export interface SignalContext {
  readonly broker: Cicada;
  readonly access: AccessControl;
  readonly log: SwitchableLogger;
  readonly args: CliArgs;
  /** The configuration the broker started with. */
  readonly config: CicadaConfig;
}

/** The installed handlers. */
export interface SignalHandlers {
  /** Whether SIGINT or SIGTERM has started a shutdown. */
  readonly stopping: boolean;
  /** Removes the handlers (a start that failed). */
  detach(): void;
}

/**
 * SIGINT/SIGTERM: close gracefully, within `shutdownTimeout`; a second one exits at once.
 * SIGHUP: re-read the config file and environment, the credential, ACL and token files, the
 * TLS certificates and the admin token.
 */
export function handleSignals(context: SignalContext): SignalHandlers {
  const { broker, access, log, args, config } = context;
  // The configuration in force: the start's, with the live settings of later reloads.
  let running = config;
  let stopping = false;

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    // Closing stops accepting, sends MQTT 5 clients DISCONNECT 0x8B (server shutting down, so
    // wills are published as the spec says), waits for the store writes under way and closes
    // the store; the timeout bounds it all.
    const timeout = running.shutdownTimeout;
    log.info('shutting down', { signal, shutdownTimeout: timeout });
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeout * 1000);
    });
    Promise.race([broker.close().then(() => 'closed' as const), expired]).then(
      (outcome) => {
        clearTimeout(timer);
        if (outcome === 'timeout') {
          log.error('shutdown did not drain within shutdownTimeout: exiting anyway', {
            shutdownTimeout: timeout,
          });
          process.exit(1);
        }
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('shutdown failed', { error });
        process.exit(1);
      },
    );
  };

  // Config reloads run one at a time (see reload.ts for what applies live).
  let reloading: Promise<void> = Promise.resolve();
  const reload = (): void => {
    log.info('reloading', { signal: 'SIGHUP' });
    const configStep = reloading.then(async () => {
      running = await reloadConfig(running, { args, env: process.env, broker, log });
    });
    reloading = configStep.catch(() => {});
    const steps = [
      configStep,
      access.reload(),
      ...broker.listeners.map((l) => l.reload?.()),
      readAdminToken(config.http).then((token) => broker.http.auth.setAdminToken(token)),
    ];
    for (const step of steps) step?.catch((error: unknown) => log.error('reload failed', { error }));
    Promise.allSettled(steps).then((results) => {
      const failed = results.filter((r) => r.status === 'rejected').length;
      if (failed === 0) log.info('reloaded');
      else log.warn('reloaded', { failed });
    });
  };

  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', reload);
  return {
    get stopping() {
      return stopping;
    },
    detach() {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', reload);
    },
  };
}
