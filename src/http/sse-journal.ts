import type { Broker } from '../broker/broker.js';
import { isExpired, type Message } from '../broker/message.js';
import { type MessagePropertiesJson, propertiesJson, utf8Text } from './message-json.js';

/**
 * The numbering and recent history of messages for Server-Sent Events.
 *
 * Every message the broker publishes gets the next event id, and the journal keeps the
 * messages of the last `windowSeconds` (at most `maxEntries` messages and `maxBytes` of
 * topic and payload, oldest dropped first) in ONE buffer shared by all streams: a resuming
 * stream picks from it the messages matching its own filters and ACL. One global buffer,
 * rather than one per filter set, costs memory once whatever the number of streams and
 * filter sets, and serves a stream whose filters were never seen before.
 *
 * Ids start at the start time in microseconds (ms × 1000) and count up by one per message,
 * so the ids of a later run are higher than any of an earlier one (unless the broker
 * published over 1000 messages per millisecond on average): a Last-Event-ID from before a
 * restart is recognised as a gap rather than taken for a future position.
 */
export class SseJournal {
  private entries: (JournalEntry | undefined)[] = [];
  private head = 0;
  private bytes = 0;
  private readonly ids = new WeakMap<Message, number>();
  private last: number;
  private recording = false;

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {
    this.last = this.now() * 1000;
  }

  /** Starts numbering and keeping the broker's messages (once; later calls do nothing). */
  attach(broker: Broker): void {
    if (this.recording) return;
    this.recording = true;
    broker.on('published', (message) => this.record(message));
  }

  /** Numbers a message and keeps it for replay. */
  record(message: Message): void {
    const id = ++this.last;
    this.ids.set(message, id);
    const size = message.topic.length + message.payload.length;
    this.entries.push({ id, message, at: this.now(), size });
    this.bytes += size;
    this.prune();
  }

  /** The id of the newest message numbered so far. */
  get newest(): number {
    return this.last;
  }

  /** The event id of a message, if the journal numbered it. */
  idOf(message: Message): number | undefined {
    return this.ids.get(message);
  }

  /**
   * Whether every message after `lastId` is still here, so a stream resuming from it misses
   * nothing. False for an id older than the buffer or not issued by this run.
   */
  covers(lastId: number): boolean {
    this.prune();
    const oldest = this.entries[this.head]?.id ?? this.last + 1;
    return lastId <= this.last && lastId >= oldest - 1;
  }

  /** The kept messages with an id above `lastId`, oldest first, expired ones left out. */
  *after(lastId: number): Generator<JournalEntry> {
    const now = this.now();
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i]!;
      if (entry.id > lastId && !isExpired(entry.message, now)) yield entry;
    }
  }

  /** How many messages are kept now. */
  get size(): number {
    return this.entries.length - this.head;
  }

  private prune(): void {
    const cutoff = this.now() - this.windowMs;
    for (;;) {
      const oldest = this.entries[this.head];
      if (oldest === undefined) break;
      if (oldest.at > cutoff && this.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries[this.head++] = undefined;
      this.bytes -= oldest.size;
    }
    // Compact once the dropped prefix is the larger part, so the array does not grow forever.
    if (this.head >= 1024 && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

/** One kept message and its event id. */
export interface JournalEntry {
  readonly id: number;
  readonly message: Message;
  /** When it was recorded, in ms since the epoch. */
  readonly at: number;
  /** Topic and payload size, for the byte bound. */
  readonly size: number;
}

/** The JSON `data` of a message event. */
export interface MessageEventData {
  readonly topic: string;
  /** The payload as text when it is UTF-8, else base64. */
  readonly payload: string;
  readonly encoding: 'utf8' | 'base64';
  /** The QoS it was published with. */
  readonly qos: number;
  /** True for a retained message sent because the stream subscribed (as MQTT's RETAIN flag). */
  readonly retain: boolean;
  readonly properties: MessagePropertiesJson;
}

/** The event data of a message, with its remaining expiry counted at `now`. */
function messageEventData(message: Message, retain: boolean, now: number): MessageEventData {
  const text = utf8Text(message.payload);
  return {
    topic: message.topic,
    payload: text ?? message.payload.toString('base64'),
    encoding: text === undefined ? 'base64' : 'utf8',
    qos: message.qos,
    retain,
    properties: propertiesJson(message, now),
  };
}

/**
 * One `message` event as written on the stream. JSON has no raw line breaks, so `data` is one
 * line (SSE splits fields at CR and LF only). Without an id the client's last event id stays.
 */
export function messageEvent(message: Message, id: number | undefined, retain: boolean, now: number): string {
  const data = JSON.stringify(messageEventData(message, retain, now));
  return `${id === undefined ? '' : `id: ${id}\n`}event: message\ndata: ${data}\n\n`;
}
