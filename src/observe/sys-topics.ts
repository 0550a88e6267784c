import type { Broker } from '../broker/broker.js';
import { type BrokerMetrics, snapshotOf } from './broker-metrics.js';
import { trafficOf } from './traffic.js';

/**
 * `$SYS/broker/...`: the broker's figures as retained messages, under the names Mosquitto
 * uses where they overlap, so existing dashboards and `mosquitto_sub -t '$SYS/#'` work.
 * They go through the broker's own publish path with no client: nobody is asked whether the
 * broker may publish them, and the subscribe ACL decides who may read them. Filters starting
 * with a wildcard do not match them (MQTT-4.7.2-1): a `#` subscriber does not get them.
 */

/** Settings of the `$SYS` publisher. */
export interface SysTopicsOptions {
  /** Seconds between updates; 0 switches `$SYS` off. */
  readonly interval: number;
  /** Written to `$SYS/broker/version` as `cicada version <version>`. */
  readonly version: string;
  /** Where messages received are counted. */
  readonly metrics: BrokerMetrics;
  /** Failures with no client to tell (a store write of a retained `$SYS` message). */
  readonly onError?: (error: unknown) => void;
}

/** Load averages over 1, 5 and 15 minutes, as Mosquitto names them. */
const WINDOWS = [
  { name: '1min', seconds: 60 },
  { name: '5min', seconds: 300 },
  { name: '15min', seconds: 900 },
] as const;

/**
 * An exponentially decaying average of a rate per minute, updated at each interval the way
 * Unix load averages (and Mosquitto's `load/...` topics) are.
 */
class LoadAverage {
  private readonly averages = WINDOWS.map(() => 0);
  private last: number | undefined;

  /** Takes the running total at `elapsed` seconds since the previous update. */
  update(total: number, elapsed: number): void {
    if (this.last !== undefined && elapsed > 0) {
      const perMinute = ((total - this.last) * 60) / elapsed;
      WINDOWS.forEach((window, i) => {
        const decay = Math.exp(-elapsed / window.seconds);
        this.averages[i] = this.averages[i]! * decay + perMinute * (1 - decay);
      });
    }
    this.last = total;
  }

  values(): readonly number[] {
    return this.averages;
  }
}

/** Publishes the `$SYS/broker/...` topics every `interval` seconds while started. */
export class SysTopics {
  private timer: NodeJS.Timeout | undefined;
  private lastUpdate = 0;
  /** What each topic last carried: an unchanged value is not published (nor stored) again. */
  private readonly published = new Map<string, string>();
  private readonly loads = {
    'messages/received': new LoadAverage(),
    'messages/sent': new LoadAverage(),
    'bytes/received': new LoadAverage(),
    'bytes/sent': new LoadAverage(),
  };

  constructor(
    private readonly broker: Broker,
    private readonly options: SysTopicsOptions,
  ) {}

  /** Publishes now, then every interval (nothing when the interval is 0). */
  start(): void {
    if (this.options.interval <= 0 || this.timer !== undefined) return;
    this.lastUpdate = performance.now();
    this.update();
    this.timer = setInterval(() => this.update(), this.options.interval * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The topics and their current values (without publishing them). */
  values(): Map<string, string> {
    const { broker, options } = this;
    const snapshot = snapshotOf(broker);
    const traffic = trafficOf(broker);
    const memory = process.memoryUsage();
    const topics = new Map<string, string>([
      ['version', `cicada version ${options.version}`],
      ['uptime', `${options.metrics.uptimeSeconds()} seconds`],
      ['clients/connected', String(snapshot.connected)],
      ['clients/total', String(snapshot.sessions)],
      ['clients/disconnected', String(snapshot.sessions - snapshot.connected)],
      ['messages/received', String(options.metrics.messagesReceived)],
      ['messages/sent', String(traffic.messagesSentTotal)],
      ['messages/stored', String(snapshot.retained + snapshot.queued + snapshot.inflight)],
      ['retained messages/count', String(snapshot.retained)],
      ['subscriptions/count', String(snapshot.subscriptions)],
      // Not Mosquitto's (it has no queues): point-to-point queues and what waits in them.
      ['queues/count', String(snapshot.queues)],
      ['queues/messages', String(snapshot.queueMessages)],
      ['bytes/received', String(traffic.bytesReceived)],
      ['bytes/sent', String(traffic.bytesSent)],
      ['heap/current', String(memory.heapUsed)],
    ]);
    for (const [name, load] of Object.entries(this.loads)) {
      load.values().forEach((value, i) => {
        topics.set(`load/${name}/${WINDOWS[i]!.name}`, value.toFixed(2));
      });
    }
    return topics;
  }

  /** Updates the load averages and publishes every topic whose value changed. */
  update(): void {
    if (!this.broker.running) return;
    const now = performance.now();
    const elapsed = (now - this.lastUpdate) / 1000;
    this.lastUpdate = now;
    const traffic = trafficOf(this.broker);
    this.loads['messages/received'].update(this.options.metrics.messagesReceived, elapsed);
    this.loads['messages/sent'].update(traffic.messagesSentTotal, elapsed);
    this.loads['bytes/received'].update(traffic.bytesReceived, elapsed);
    this.loads['bytes/sent'].update(traffic.bytesSent, elapsed);
    for (const [name, value] of this.values()) {
      const topic = `$SYS/broker/${name}`;
      if (this.published.get(topic) === value) continue;
      this.published.set(topic, value);
      this.publish(topic, value);
    }
  }

  private publish(topic: string, value: string): void {
    const message = this.broker.createMessage({
      topic,
      payload: Buffer.from(value),
      qos: 0,
      retain: true,
    });
    const onError = this.options.onError ?? this.broker.options.onError;
    try {
      this.broker.publish(message).persisted?.catch(onError);
    } catch (error) {
      onError(error);
    }
  }
}
