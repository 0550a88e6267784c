import type { AccessControl } from '../auth/access-control.js';
import type { Broker } from '../broker/broker.js';
import type { BrokerMetrics } from '../observe/broker-metrics.js';
import type { HttpApp } from './app.js';

/**
 * What HTTP modules are given: the settings of the HTTP API and the broker. Each concern
 * (health, admin, push, SSE, metrics, dashboard) is an `HttpModule` listed in `modules.ts`.
 */

/** Whether the broker serves: `ready` once the store is open and every listener asked for is up. */
export type Readiness = 'starting' | 'ready' | 'stopping';

/** HTTP API settings (`CicadaOptions.http`); every field is optional. */
export interface HttpOptions {
  /** The administrator's token (Bearer or login cookie); unset: no administrator, admin routes answer 403. */
  readonly adminToken?: string;
  /** Authenticates non-admin callers and applies ACLs, as for MQTT; absent: they are anonymous clients. */
  readonly accessControl?: AccessControl;
  /** Whether `GET /metrics` requires the administrator. Default false. */
  readonly metricsAuth?: boolean;
  /** Seconds between SSE keep-alive comments. Default 15. */
  readonly sseKeepAlive?: number;
  /** Seconds of messages kept for SSE `Last-Event-ID` resumption. Default 60. */
  readonly sseReplayWindow?: number;
  /** Largest JSON request body, in bytes. Default 1 MiB. */
  readonly maxBodyBytes?: number;
}

/** `HttpOptions` with defaults applied. */
export interface ResolvedHttpOptions extends HttpOptions {
  readonly metricsAuth: boolean;
  readonly sseKeepAlive: number;
  readonly sseReplayWindow: number;
}

/** Defaults of the HTTP API settings. */
export const DEFAULT_HTTP_OPTIONS = { metricsAuth: false, sseKeepAlive: 15, sseReplayWindow: 60 } as const;

/** What a module may use besides the app. */
export interface HttpContext {
  readonly broker: Broker;
  readonly options: ResolvedHttpOptions;
  /** The broker's current readiness. */
  readiness(): Readiness;
  /** When the broker object was made, in ms since the epoch (for uptime). */
  readonly startedAt: number;
  /** What the broker measures (`GET /metrics`, the stats); absent when metrics are off. */
  readonly metrics?: BrokerMetrics;
}

/** Registers one concern's routes. */
export type HttpModule = (app: HttpApp, context: HttpContext) => void;
