import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import type { Broker } from '../broker/broker.js';
import type { ClientInfo, DropReason } from '../broker/hooks.js';
import type { Message } from '../broker/message.js';
import type { QueueSummary } from '../broker/queues.js';
import { type Counter, type Histogram, Registry } from './metrics.js';
import { trafficOf } from './traffic.js';

/** The broker's state counted over its sessions: what gauges and `$SYS` report. */
export interface BrokerSnapshot {
  /** Connected clients. */
  readonly connected: number;
  /** Connected clients by `protocol` and `listener` (key: `protocol\u0000listener`). */
  readonly connections: ReadonlyMap<string, number>;
  /** Sessions, connected or not. */
  readonly sessions: number;
  readonly subscriptions: number;
  /** Deliveries waiting in session queues (not yet sent). */
  readonly queued: number;
  /** QoS 1 and 2 deliveries sent and not yet acknowledged. */
  readonly inflight: number;
  readonly retained: number;
  /** Point-to-point queues. */
  readonly queues: number;
  /** Messages waiting in queues for a consumer (unacknowledged ones not counted). */
  readonly queueMessages: number;
}

/** Cumulative counters for `GET /api/v1/stats` (the dashboard derives rates from them). */
export interface BrokerStats {
  uptimeSeconds: number;
  connections: number;
  sessions: number;
  subscriptions: number;
  retained: number;
  /** Point-to-point queues. */
  queues: number;
  /** Messages waiting in queues for a consumer. */
  queueMessages: number;
  /** PUBLISH messages accepted into the broker (from clients, wills, the HTTP API). */
  messagesIn: number;
  /** PUBLISH packets sent to clients. */
  messagesOut: number;
  /** Bytes read from client connections. */
  bytesIn: number;
  /** Bytes written to client connections. */
  bytesOut: number;
  droppedMessages: number;
}

/** A login refusal, as far as metrics care: which check refused it. */
export interface RefusedLogin {
  /** `anonymous`, a provider name, `no-provider`, an enhanced authentication method. */
  readonly by: string;
}

const QOS_LEVELS = [0, 1, 2] as const;
const UNKNOWN_LISTENER = 'embedded';

/**
 * Most queues given their own `{queue}` series: a broker may hold any number of queues and
 * each series costs Prometheus memory, so beyond this only the deepest are exported.
 */
export const MAX_QUEUE_SERIES = 1000;

/** Queues and the messages waiting in them, summed. */
export function queueTotals(broker: Broker): { queues: number; queueMessages: number } {
  const queues = broker.queues.list();
  let queueMessages = 0;
  for (const queue of queues) queueMessages += queue.depth;
  return { queues: queues.length, queueMessages };
}

/** The `limit` queues with the most waiting messages (ties by name), or all of them when not more. */
export function deepestQueues(queues: QueueSummary[], limit = MAX_QUEUE_SERIES): QueueSummary[] {
  if (queues.length <= limit) return queues;
  return queues
    .sort((a, b) => b.depth - a.depth || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .slice(0, limit);
}

/** Counts the broker state once, walking the sessions (at scrape time, not on every change). */
export function snapshotOf(broker: Broker): BrokerSnapshot {
  const connections = new Map<string, number>();
  let connected = 0;
  let subscriptions = 0;
  let queued = 0;
  let inflight = 0;
  for (const session of broker.sessions.values()) {
    subscriptions += session.subscriptions.size;
    queued += session.queuedCount;
    inflight += session.inflight.size;
    const client = session.connected ? session.client : undefined;
    if (client === undefined) continue;
    connected++;
    const key = `${client.protocol}\u0000${client.listener ?? UNKNOWN_LISTENER}`;
    connections.set(key, (connections.get(key) ?? 0) + 1);
  }
  return {
    connected,
    connections,
    sessions: broker.sessions.size,
    subscriptions,
    queued,
    inflight,
    retained: broker.retainedCount,
    ...queueTotals(broker),
  };
}

/** Disconnect reasons carry detail after a colon (`protocol-error: ...`): keep the label set small. */
function reasonLabel(reason: string): string {
  const colon = reason.indexOf(':');
  return colon < 0 ? reason : reason.slice(0, colon);
}

/**
 * What Cicada measures, as Prometheus metrics. Counters follow broker events (connects,
 * disconnects, publishes, drops) and the protocols' traffic counters; gauges are read from
 * the broker's sessions when scraped. `recordAuthFailure` and `recordCommit` are for the
 * access control's `onFailure` and the durable store's `onCommit`. `close` detaches.
 */
export class BrokerMetrics {
  readonly registry = new Registry();
  private readonly startedAt: number;
  private readonly loopDelay: IntervalHistogram;
  private readonly detach: () => void;
  /** Messages and payload bytes received, by QoS: plain numbers on the publish path, read when scraped. */
  private readonly messagesIn: [number, number, number] = [0, 0, 0];
  private readonly payloadBytesIn: [number, number, number] = [0, 0, 0];
  private dropped = 0;
  private readonly authFailures: Counter;
  private readonly commitDuration: Histogram;

  constructor(
    private readonly broker: Broker,
    version = 'unknown',
  ) {
    this.startedAt = Date.now();
    const r = this.registry;
    const traffic = trafficOf(broker);

    r.gauge({ name: 'cicada_info', help: 'Cicada build information', labelNames: ['version'] }).set(
      { version },
      1,
    );
    const uptime = r.gauge({ name: 'cicada_uptime_seconds', help: 'Seconds since the broker started' });
    uptime.collect = () => uptime.set(undefined, this.uptimeSeconds());

    // ---- connections
    const connections = r.gauge({
      name: 'cicada_connections',
      help: 'Connected clients, by protocol and listener',
      labelNames: ['protocol', 'listener'],
    });
    const connects = r.counter({
      name: 'cicada_connects_total',
      help: 'Clients connected (CONNACK accepted), by protocol and listener',
      labelNames: ['protocol', 'listener'],
    });
    const disconnects = r.counter({
      name: 'cicada_disconnects_total',
      help: 'Client connections ended, by reason',
      labelNames: ['reason'],
    });
    this.authFailures = r.counter({
      name: 'cicada_auth_failures_total',
      help: 'Logins refused, by the check that refused them',
      labelNames: ['by'],
    });

    // ---- messages
    const received = r.counter({
      name: 'cicada_messages_received_total',
      help: 'PUBLISH messages accepted into the broker (clients, wills, HTTP), by QoS',
      labelNames: ['qos'],
    });
    const receivedBytes = r.counter({
      name: 'cicada_message_bytes_received_total',
      help: 'Payload bytes of the messages received, by QoS',
      labelNames: ['qos'],
    });
    const sent = r.counter({
      name: 'cicada_messages_sent_total',
      help: 'PUBLISH packets sent to clients, by QoS',
      labelNames: ['qos'],
    });
    const sentBytes = r.counter({
      name: 'cicada_message_bytes_sent_total',
      help: 'Payload bytes of the PUBLISH packets sent, by QoS',
      labelNames: ['qos'],
    });
    const droppedByReason = r.counter({
      name: 'cicada_messages_dropped_total',
      help: 'Messages not delivered to a session (or not retained), by reason',
      labelNames: ['reason'],
    });
    const networkIn = r.counter({
      name: 'cicada_network_bytes_received_total',
      help: 'Bytes read from client connections',
    });
    const networkOut = r.counter({
      name: 'cicada_network_bytes_sent_total',
      help: 'Bytes written to client connections',
    });
    // Every QoS is written, at 0 too, so that rates can be taken from the first scrape.
    sent.collect = () => {
      for (const qos of QOS_LEVELS) {
        received.set({ qos }, this.messagesIn[qos]);
        receivedBytes.set({ qos }, this.payloadBytesIn[qos]);
        sent.set({ qos }, traffic.messagesSent[qos]);
        sentBytes.set({ qos }, traffic.payloadBytesSent[qos]);
      }
      networkIn.set(undefined, traffic.bytesReceived);
      networkOut.set(undefined, traffic.bytesSent);
    };

    // ---- state
    const sessions = r.gauge({ name: 'cicada_sessions', help: 'Sessions, connected or not' });
    const subscriptions = r.gauge({ name: 'cicada_subscriptions', help: 'Subscriptions of all sessions' });
    const queued = r.gauge({ name: 'cicada_queued_messages', help: 'Deliveries waiting in session queues' });
    const inflight = r.gauge({
      name: 'cicada_inflight_messages',
      help: 'QoS 1 and 2 deliveries sent and not yet acknowledged',
    });
    const retained = r.gauge({ name: 'cicada_retained_messages', help: 'Retained messages' });
    connections.collect = () => {
      const snapshot = snapshotOf(broker);
      connections.reset();
      for (const [key, count] of snapshot.connections) {
        const [protocol = '', listener = ''] = key.split('\u0000');
        connections.set({ protocol, listener }, count);
      }
      sessions.set(undefined, snapshot.sessions);
      subscriptions.set(undefined, snapshot.subscriptions);
      queued.set(undefined, snapshot.queued);
      inflight.set(undefined, snapshot.inflight);
      retained.set(undefined, snapshot.retained);
    };

    // ---- point-to-point queues
    const queueCount = r.gauge({ name: 'cicada_queues', help: 'Point-to-point queues' });
    const queueMessages = r.gauge({
      name: 'cicada_queue_messages',
      help: `Messages waiting in a queue for a consumer (the ${MAX_QUEUE_SERIES} deepest queues)`,
      labelNames: ['queue'],
    });
    const queueUnacknowledged = r.gauge({
      name: 'cicada_queue_unacknowledged',
      help: `Messages delivered from a queue and not yet acknowledged (the ${MAX_QUEUE_SERIES} deepest queues)`,
      labelNames: ['queue'],
    });
    const queueConsumers = r.gauge({
      name: 'cicada_queue_consumers',
      help: `Consumers of a queue (the ${MAX_QUEUE_SERIES} deepest queues)`,
      labelNames: ['queue'],
    });
    queueCount.collect = () => {
      const all = broker.queues.list();
      queueCount.set(undefined, all.length);
      queueMessages.reset();
      queueUnacknowledged.reset();
      queueConsumers.reset();
      for (const queue of deepestQueues(all)) {
        const labels = { queue: queue.name };
        queueMessages.set(labels, queue.depth);
        queueUnacknowledged.set(labels, queue.unacknowledged);
        queueConsumers.set(labels, queue.consumers);
      }
    };

    // ---- store and process
    this.commitDuration = r.histogram({
      name: 'cicada_store_commit_duration_seconds',
      help: 'Durable store commits (one fdatasync each), in seconds',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.loopDelay = monitorEventLoopDelay({ resolution: 20 });
    this.loopDelay.enable();
    const lag = r.gauge({
      name: 'cicada_event_loop_lag_seconds',
      help: 'Event loop delay since the previous scrape: mean, 0.99 quantile and max',
      labelNames: ['stat'],
    });
    lag.collect = () => {
      const d = this.loopDelay;
      // Before any sample the histogram reads NaN and huge values: report zeros.
      const sampled = d.count > 0;
      lag.set({ stat: 'mean' }, sampled ? d.mean / 1e9 : 0);
      lag.set({ stat: 'p99' }, sampled ? d.percentile(99) / 1e9 : 0);
      lag.set({ stat: 'max' }, sampled ? d.max / 1e9 : 0);
      d.reset();
    };
    this.processMetrics();

    // ---- events
    const onConnected = (client: ClientInfo): void =>
      connects.inc({ protocol: client.protocol, listener: client.listener ?? UNKNOWN_LISTENER });
    const onDisconnected = (_client: ClientInfo, reason: string): void =>
      disconnects.inc({ reason: reasonLabel(reason) });
    const onPublished = (message: Message, client: ClientInfo | undefined): void => {
      // The broker's own $SYS messages are not traffic it received.
      if (client === undefined && message.topic.startsWith('$SYS/')) return;
      this.messagesIn[message.qos]++;
      this.payloadBytesIn[message.qos] += message.payload.length;
    };
    const onDropped = (_message: Message, _clientId: string, reason: DropReason): void => {
      this.dropped++;
      droppedByReason.inc({ reason });
    };
    broker.on('clientConnected', onConnected);
    broker.on('clientDisconnected', onDisconnected);
    broker.on('published', onPublished);
    broker.on('dropped', onDropped);
    this.detach = () => {
      broker.off('clientConnected', onConnected);
      broker.off('clientDisconnected', onDisconnected);
      broker.off('published', onPublished);
      broker.off('dropped', onDropped);
    };
  }

  /** Counts a refused login (give it the access control's `onFailure`). */
  recordAuthFailure(failure: RefusedLogin): void {
    this.authFailures.inc({ by: failure.by });
  }

  /** Records one store commit's duration in seconds (give it the durable store's `onCommit`). */
  readonly recordCommit = (seconds: number): void => {
    this.commitDuration.observe(seconds);
  };

  /** PUBLISH messages received so far, all QoS levels (not counting the broker's own `$SYS`). */
  get messagesReceived(): number {
    return this.messagesIn[0] + this.messagesIn[1] + this.messagesIn[2];
  }

  uptimeSeconds(): number {
    return Math.floor((Date.now() - this.startedAt) / 1000);
  }

  /** The Prometheus text exposition of every metric. */
  exposition(): string {
    return this.registry.exposition();
  }

  /** Cumulative figures for the admin API. */
  stats(): BrokerStats {
    const snapshot = snapshotOf(this.broker);
    const traffic = trafficOf(this.broker);
    return {
      uptimeSeconds: this.uptimeSeconds(),
      connections: snapshot.connected,
      sessions: snapshot.sessions,
      subscriptions: snapshot.subscriptions,
      retained: snapshot.retained,
      queues: snapshot.queues,
      queueMessages: snapshot.queueMessages,
      messagesIn: this.messagesReceived,
      messagesOut: traffic.messagesSentTotal,
      bytesIn: traffic.bytesReceived,
      bytesOut: traffic.bytesSent,
      droppedMessages: this.dropped,
    };
  }

  /** Stops listening to the broker and sampling the event loop. */
  close(): void {
    this.detach();
    this.loopDelay.disable();
  }

  /** Memory and CPU of the process, under the names Prometheus's own clients use. */
  private processMetrics(): void {
    const r = this.registry;
    const cpuUser = r.counter({ name: 'process_cpu_user_seconds_total', help: 'User CPU time, in seconds' });
    const cpuSystem = r.counter({
      name: 'process_cpu_system_seconds_total',
      help: 'System CPU time, in seconds',
    });
    const cpuTotal = r.counter({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time, in seconds',
    });
    const rss = r.gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory, in bytes' });
    const heapUsed = r.gauge({ name: 'nodejs_heap_size_used_bytes', help: 'V8 heap in use, in bytes' });
    const heapTotal = r.gauge({ name: 'nodejs_heap_size_total_bytes', help: 'V8 heap reserved, in bytes' });
    const external = r.gauge({
      name: 'nodejs_external_memory_bytes',
      help: 'Memory of buffers and other objects outside the V8 heap, in bytes',
    });
    const start = r.gauge({
      name: 'process_start_time_seconds',
      help: 'When the process started, in seconds since the Unix epoch',
    });
    start.set(undefined, Math.round(Date.now() / 1000 - process.uptime()));
    cpuUser.collect = () => {
      const cpu = process.cpuUsage();
      cpuUser.set(undefined, cpu.user / 1e6);
      cpuSystem.set(undefined, cpu.system / 1e6);
      cpuTotal.set(undefined, (cpu.user + cpu.system) / 1e6);
      const memory = process.memoryUsage();
      rss.set(undefined, memory.rss);
      heapUsed.set(undefined, memory.heapUsed);
      heapTotal.set(undefined, memory.heapTotal);
      external.set(undefined, memory.external);
    };
  }
}
