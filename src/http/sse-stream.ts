import type { ServerResponse } from 'node:http';
import { type Levels, matches } from '../auth/topic-filter.js';
import type { Broker } from '../broker/broker.js';
import type { ClientLink, DeliveryGuard, DropReason, ServerDisconnectReason } from '../broker/hooks.js';
import { isExpired, type Message } from '../broker/message.js';
import type { Session } from '../broker/session.js';
import { messageEvent, type SseJournal } from './sse-journal.js';

/**
 * One Server-Sent Events stream: a protocol-neutral client of the broker core. It holds a
 * clean, non-persistent session subscribed at QoS 0 and drains the session's deliveries
 * onto the HTTP response, as an MQTT connection drains them into PUBLISH packets.
 *
 * Slow consumers: deliveries are written while the response's unsent bytes stay under
 * `softLimit` (never less than the response's own high-water mark). Past it the stream
 * stops writing and sets `qos0DropReason`, so the broker drops what it would route to this
 * session ('slow-consumer' in the `dropped` event) instead of queueing it; on 'drain' the
 * stream catches up with what was queued before. Unsent bytes are thus bounded by the soft
 * limit plus one event. A stream still stalled at its second keep-alive tick is closed
 * (its client stopped reading); a browser's EventSource then reconnects with Last-Event-ID
 * and the replay buffer gives back what it missed, if still within the window.
 */
export class SseStream implements ClientLink {
  qos0DropReason: DropReason | undefined = undefined;
  /** Set by `attach` once the broker made the session. */
  private session: Session | undefined;
  /** The id of the last message event written (or of the position marker). */
  private lastId = 0;
  private started = false;
  private scheduled = false;
  private stalledTicks = 0;
  private ended = false;
  private readonly softLimit: number;

  constructor(
    private readonly broker: Broker,
    private readonly journal: SseJournal,
    private readonly response: ServerResponse,
    /** The stream's filters as levels, each with the ACL's per-topic guard if it has one. */
    private readonly filters: readonly { readonly levels: Levels; readonly guard?: DeliveryGuard }[],
    softLimit: number,
    /** Called once when the stream ends, whatever ended it. */
    private readonly onEnd: (stream: SseStream) => void,
  ) {
    this.softLimit = Math.max(softLimit, response.writableHighWaterMark);
    response.on('close', () => this.finish('client-disconnect'));
    response.on('drain', () => {
      if (this.qos0DropReason === undefined) return;
      this.qos0DropReason = undefined;
      this.stalledTicks = 0;
      this.wake();
    });
  }

  /**
   * Takes the session the broker made for the stream. False when the client left while it was
   * being made: the session is ended at once (`finish` ran without one to end).
   */
  attach(session: Session): boolean {
    this.session = session;
    if (!this.ended) return true;
    this.broker.disconnect(session, this, { reason: 'client-disconnect', sendWill: false });
    return false;
  }

  /** Whether the stream has ended (client gone, closed by the broker, or refused). */
  get closed(): boolean {
    return this.ended;
  }

  /**
   * Starts writing: replays the messages after `resumeAfter` that match the stream (when
   * given), marks the position with an id-only event (it sets the client's last event id
   * without dispatching anything), then drains the session.
   */
  start(position: number, resumeAfter: number | undefined): void {
    const now = Date.now();
    this.lastId = position;
    this.response.cork();
    if (resumeAfter !== undefined) {
      for (const { id, message } of this.journal.after(resumeAfter)) {
        if (id <= position && this.wants(message)) this.response.write(messageEvent(message, id, false, now));
      }
    }
    this.response.write(`id: ${position}\n\n`);
    this.response.uncork();
    this.started = true;
    this.wake();
  }

  /** ClientLink: deliveries are waiting; drained on the next tick, after the publish has its id. */
  wake(): void {
    if (this.scheduled || this.ended || !this.started) return;
    this.scheduled = true;
    process.nextTick(() => this.drain());
  }

  /** ClientLink: the broker closes the stream (shutdown, administrative action). */
  close(reason: ServerDisconnectReason): void {
    if (this.ended) return;
    if (this.started && this.qos0DropReason === undefined)
      this.response.write(`event: close\ndata: ${JSON.stringify({ reason })}\n\n`);
    this.response.end();
    this.finish(reason);
  }

  /** The shared keep-alive timer's tick: a comment, or the end of a stream that stopped reading. */
  tick(): void {
    if (this.ended || !this.started) return;
    if (this.qos0DropReason !== undefined) {
      // Still stalled a whole interval later: the client is not reading. Its buffer goes with it.
      if (++this.stalledTicks >= 2) {
        this.response.destroy();
        this.finish('slow-consumer');
      }
      return;
    }
    this.response.write(': keep-alive\n\n');
  }

  /** Ends the stream's session; idempotent. */
  finish(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this);
    if (this.session !== undefined) this.broker.disconnect(this.session, this, { reason, sendWill: false });
  }

  /** Whether a replayed message is one this stream would have been sent. */
  private wants(message: Message): boolean {
    const topic = message.topic.split('/');
    return this.filters.some(
      (f) => matches(f.levels, topic) && (f.guard === undefined || f.guard(message.topic)),
    );
  }

  private drain(): void {
    this.scheduled = false;
    const session = this.session;
    if (this.ended || session === undefined || this.qos0DropReason !== undefined) return;
    const { response } = this;
    const now = Date.now();
    response.cork();
    for (;;) {
      if (response.writableLength > this.softLimit) {
        // A write over the high-water mark returned false: 'drain' will follow.
        this.qos0DropReason = 'slow-consumer';
        break;
      }
      const delivery = session.nextDelivery();
      if (delivery === undefined) break;
      const { message } = delivery;
      if (isExpired(message, now)) {
        this.broker.discard(session, delivery, 'expired');
        continue;
      }
      // A retained message sent on subscribe has no place in the numbering: no id.
      const id = delivery.retain ? undefined : this.journal.idOf(message);
      if (id !== undefined) {
        // Already replayed (it was routed here while the stream was starting).
        if (id <= this.lastId) continue;
        this.lastId = id;
      }
      response.write(messageEvent(message, id, delivery.retain, now));
    }
    response.uncork();
  }
}
