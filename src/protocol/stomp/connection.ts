import type { Duplex } from 'node:stream';
import type { Broker } from '../../broker/broker.js';
import type { ClientInfo, ClientLink, ServerDisconnectReason } from '../../broker/hooks.js';
import type { QueueDelivery } from '../../broker/queues.js';
import type { Session } from '../../broker/session.js';
import {
  encodeFrame,
  getHeader,
  StompCodecError,
  StompDecoder,
  type StompFrame,
  type StompVersion,
} from '../../codec/stomp/index.js';
import type { MemoryWatch } from '../../limits/memory-watch.js';
import { PublishThrottle } from '../../limits/publish-throttle.js';
import { type Traffic, trafficOf } from '../../observe/traffic.js';
import type { ConnectionInfo } from '../../transport/transport.js';
import { OutboundWriter } from '../outbound.js';
import { drainDeliveries } from './delivery.js';
import { dispatchFrame } from './dispatch.js';
import { StompViolation } from './errors.js';
import { receiptFrame } from './message-frame.js';
import type { StompOptions } from './options.js';
import { type QueueConsumerSubscription, SubscriptionTable } from './subscriptions.js';
import { Transactions } from './transactions.js';

/** Where a connection is in its life (STOMP 1.2 "Connecting": CONNECT first, once). */
type ConnectionState = 'awaiting-connect' | 'connecting' | 'connected' | 'disconnecting' | 'closed';

/** A queue delivery handed to the connection, waiting to be written. */
export interface OutgoingQueueDelivery {
  readonly subscription: QueueConsumerSubscription;
  readonly delivery: QueueDelivery;
}

/** A RECEIPT owed, waiting on the store (`durable`) or on the receipts owed before it. */
interface OwedReceipt {
  /** The frame's `receipt` header; undefined when it asked for none (a store failure still counts). */
  readonly id: string | undefined;
  settled: boolean;
  /** Set when the store write failed: the connection fails instead of answering. */
  failure: { error: unknown } | undefined;
  /** Resolved once this receipt (and so every earlier one) is dealt with. */
  waiters: (() => void)[] | undefined;
}

/** What the broker's ClientLink close reasons say in an ERROR frame. */
const CLOSE_MESSAGES: Record<ServerDisconnectReason, string> = {
  'session-taken-over': 'session taken over by another connection',
  'server-shutting-down': 'server shutting down',
  'administrative-action': 'disconnected by an administrator',
  'keep-alive-timeout': 'heart-beat timeout',
  'protocol-error': 'protocol error',
};

/** Line breaks and NULs cannot go into an unescaped header (1.0): an error message loses them. */
function oneLine(text: string): string {
  return text.replace(/[\r\n\0]+/g, ' ');
}

/**
 * One STOMP network connection: decodes frames, runs them through their handlers one at a
 * time and in order (a frame waiting on the broker holds the ones after it), writes what the
 * broker delivers, and keeps the heart-beats. It is its session's ClientLink once connected.
 * Every violation, codec error included, is answered with an ERROR frame and closes this
 * connection only (STOMP 1.2 "ERROR").
 */
export class StompConnection implements ClientLink {
  state: ConnectionState = 'awaiting-connect';
  /** The negotiated version; 1.0 (no header escaping) until CONNECTED. */
  version: StompVersion = '1.0';
  session: Session | undefined;
  client: ClientInfo | undefined;
  /** ClientLink: 'slow-consumer' while the outbound buffer is over its soft limit. */
  qos0DropReason: ClientLink['qos0DropReason'];
  readonly subscriptions = new SubscriptionTable();
  readonly transactions: Transactions;
  /** Queue deliveries not yet written (the socket was busy, or they came mid-tick). */
  readonly queueOutbox: OutgoingQueueDelivery[] = [];
  readonly traffic: Traffic;
  /** Undefined when nothing limits sending: the read path then costs one check. */
  readonly throttle: PublishThrottle | undefined;
  /** Times reads were paused to slow this client's sending down. */
  readPauses = 0;
  /** True while reads are paused by the throttle: silence is then ours, not the client's. */
  readsHeld = false;

  private readonly decoder: StompDecoder;
  private readonly inbox: StompFrame[] = [];
  private busy = false;
  /** A decoding error met while earlier frames were still being handled. */
  private deferredError: unknown;
  private lastReceivedAt = Date.now();
  private lastSentAt = this.lastReceivedAt;
  private connectTimer: NodeJS.Timeout | undefined;
  private sendBeatTimer: NodeJS.Timeout | undefined;
  private receiveBeatTimer: NodeJS.Timeout | undefined;
  /** RECEIPTs waiting on the store or on earlier ones, oldest first: receipts go out in frame order. */
  private owedReceipts: OwedReceipt[] = [];
  private owedHead = 0;
  /** Failed, with the ERROR waiting for the receipts owed before it. */
  private failing = false;
  /** Outbound bytes: batched per tick, parked past the stream's mark, bounded (see `write`). */
  private readonly out: OutboundWriter;
  private drainScheduled = false;
  private readonly drainNow = (): void => {
    this.drainScheduled = false;
    if (this.state !== 'connected') return;
    // A fault while writing deliveries (a bug, or a message this client cannot be sent) costs
    // this connection only: it runs on its own tick, where a throw would end the process.
    try {
      drainDeliveries(this);
    } catch (error) {
      this.fail(error);
    }
  };

  constructor(
    readonly stream: Duplex,
    readonly info: ConnectionInfo,
    readonly broker: Broker,
    readonly options: StompOptions,
    memory?: MemoryWatch,
  ) {
    this.decoder = new StompDecoder({
      maxFrameSize: options.maxFrameSize,
      maxHeaders: options.maxHeaders,
      maxHeaderLength: options.maxHeaderLength,
    });
    this.transactions = new Transactions(options.maxTransactionFrames);
    this.traffic = trafficOf(broker);
    this.out = new OutboundWriter(
      stream,
      {
        softLimit: options.outboundSoftLimit,
        hardLimit: options.outboundHardLimit,
        // A MESSAGE's headers come on top of its body: up to a header block's worth.
        largestFrame:
          Math.max(options.maxFrameSize, options.largestMessage) +
          options.maxHeaders * options.maxHeaderLength,
      },
      this.traffic,
      {
        overSoftLimit: () => {
          this.qos0DropReason = 'slow-consumer';
        },
        overHardLimit: () => this.fail(new StompViolation('slow consumer: outbound buffer over its limit')),
        drained: () => {
          // The client read everything we wrote: no longer a slow consumer.
          this.qos0DropReason = undefined;
          this.wake();
        },
        flushed: () => {
          this.lastSentAt = Date.now();
        },
      },
    );
    this.throttle = PublishThrottle.create(
      { messagesPerSecond: options.maxSendRate, bytesPerSecond: options.maxSendBytesRate },
      memory,
    );
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    // Before the socket ends its own side (allowHalfOpen false): a truncated frame still gets its ERROR.
    stream.prependListener('end', () => this.ended());
    stream.on('close', () => this.teardown('socket-closed'));
    stream.on('error', () => this.teardown('socket-error'));
    this.connectTimer = setTimeout(
      () => this.fail(new StompViolation(`no CONNECT within ${options.connectTimeout} ms`)),
      options.connectTimeout,
    );
    this.connectTimer.unref();
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  get outboundSoftLimit(): number {
    return this.out.softLimit;
  }

  get outboundHardLimit(): number {
    return this.out.hardLimit;
  }

  /** Unsent bytes: in the stream's buffer and parked behind it. */
  get unsentBytes(): number {
    return this.out.unsentBytes;
  }

  /**
   * The negotiated version decodes every frame after CONNECT (STOMP 1.2 "Value Encoding"). What
   * we send follows it only from CONNECTED on (`version`): until then the client knows no
   * version, so an ERROR answering CONNECT is escaped as 1.0 (not at all).
   */
  decodeAs(version: StompVersion): void {
    this.decoder.version = version;
  }

  // ---- inbound ------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastReceivedAt = Date.now();
    this.traffic.bytesReceived += chunk.length;
    try {
      this.decoder.push(chunk, (frame) => this.receive(frame));
    } catch (error) {
      // Frames before the bad bytes are answered first: fail once they are done.
      if (this.busy || this.inbox.length > 0) {
        this.deferredError = error;
        this.stream.pause();
      } else {
        this.fail(error);
      }
    }
  }

  private ended(): void {
    if (this.state === 'closed') return;
    if (this.decoder.midFrame && this.deferredError === undefined && !this.busy && this.inbox.length === 0) {
      this.fail(new StompViolation('truncated frame: the connection ended inside a frame'));
      return;
    }
    this.teardown('client-closed');
  }

  /** Frames are handled strictly in order; while one waits (authentication, say) the rest queue. */
  private receive(frame: StompFrame): void {
    if (this.state === 'disconnecting' || this.state === 'closed' || this.failing) return;
    if (this.busy || this.inbox.length > 0) {
      this.inbox.push(frame);
      this.stream.pause();
      return;
    }
    this.run(frame);
  }

  private run(frame: StompFrame): void {
    let pending: void | Promise<void>;
    try {
      pending = dispatchFrame(this, frame);
    } catch (error) {
      this.fail(error, frame);
      return;
    }
    if (pending === undefined) return;
    this.busy = true;
    pending.then(
      () => this.resume(),
      (error: unknown) => this.fail(error, frame),
    );
  }

  private resume(): void {
    this.busy = false;
    while (!this.busy && this.inbox.length > 0 && this.state !== 'closed' && this.state !== 'disconnecting')
      this.run(this.inbox.shift()!);
    if (this.busy || this.state === 'closed' || this.state === 'disconnecting') return;
    if (this.deferredError !== undefined) this.fail(this.deferredError);
    else this.stream.resume();
  }

  /** Reads pause until `until` resolves (the send throttle); the pause pushes back through TCP. */
  holdReads(until: Promise<void>): Promise<void> {
    this.readPauses++;
    this.readsHeld = true;
    this.stream.pause();
    return until.then(() => {
      this.readsHeld = false;
      this.lastReceivedAt = Date.now();
    });
  }

  // ---- heart-beats (STOMP 1.2 "Heart-beating") ------------------------------------------

  /** CONNECTED went out: no connect timeout any more; heart-beats as negotiated (0: none). */
  startHeartbeats(sendEvery: number, expectEvery: number): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (sendEvery > 0) this.armSendBeat(sendEvery);
    // More than twice the agreed interval without a byte: the client is gone.
    if (expectEvery > 0) this.armReceiveBeat(expectEvery * 2);
  }

  private armSendBeat(interval: number): void {
    const due = this.lastSentAt + interval - Date.now();
    this.sendBeatTimer = setTimeout(
      () => {
        if (this.state === 'closed') return;
        if (Date.now() - this.lastSentAt >= interval - 1) this.write(Buffer.from('\n'));
        this.lastSentAt = Date.now();
        this.armSendBeat(interval);
      },
      Math.max(0, due),
    );
    this.sendBeatTimer.unref();
  }

  private armReceiveBeat(silence: number): void {
    const due = this.lastReceivedAt + silence - Date.now();
    this.receiveBeatTimer = setTimeout(() => {
      if (this.state === 'closed') return;
      if (this.readsHeld) this.lastReceivedAt = Date.now();
      if (Date.now() - this.lastReceivedAt > silence) {
        this.fail(new StompViolation(`no heart-beat from the client for ${silence} ms`));
        return;
      }
      this.armReceiveBeat(silence);
    }, Math.max(0, due) + 1);
    this.receiveBeatTimer.unref();
  }

  // ---- outbound ----------------------------------------------------------------------

  /**
   * Writes bytes after everything before (see OutboundWriter: batched per tick, parked past
   * the stream's mark). Returns false once the client is a slow consumer: as for MQTT
   * (src/protocol/mqtt/delivery.ts), its QoS 0 deliveries are then dropped and the rest wait in
   * the session queue until 'drain'; past the hard limit (only a client that stopped reading
   * gets there) it is closed.
   */
  write(bytes: Buffer): boolean {
    if (this.state === 'closed' || this.stream.destroyed) return false;
    return this.out.write(bytes);
  }

  /** Encodes and writes one frame, with `content-length` when it has a body. */
  sendFrame(command: string, headers: [string, string][], body?: Buffer): boolean {
    if (body !== undefined) headers.push(['content-length', String(body.length)]);
    return this.write(encodeFrame(command, headers, body, this.version));
  }

  /** ClientLink: deliveries are waiting; sent on the next tick, batched. */
  wake(): void {
    if (this.drainScheduled || this.state !== 'connected') return;
    this.drainScheduled = true;
    process.nextTick(this.drainNow);
  }

  /**
   * Answers `frame` with a RECEIPT if it asked for one (STOMP 1.2 "RECEIPT"), once `durable`
   * resolved and after every earlier receipt. A failed store write fails the connection: the
   * client must not take the frame for done.
   */
  receipt(frame: StompFrame, durable?: Promise<void>): void {
    this.sendReceipt(getHeader(frame, 'receipt'), durable);
  }

  /** `receipt` with the frame's receipt id already read. */
  sendReceipt(id: string | undefined, durable?: Promise<void>): void {
    if (this.owedHead === this.owedReceipts.length) {
      if (durable === undefined) {
        if (id !== undefined && this.state !== 'closed') this.write(receiptFrame(id, this.version));
        return;
      }
    }
    // One callback per store write; no promise chain per frame.
    const owed: OwedReceipt = { id, settled: durable === undefined, failure: undefined, waiters: undefined };
    this.owedReceipts.push(owed);
    durable?.then(
      () => {
        owed.settled = true;
        this.sendOwedReceipts();
      },
      (error: unknown) => {
        owed.settled = true;
        owed.failure = { error };
        this.sendOwedReceipts();
      },
    );
  }

  /** Sends the owed receipts that are settled, in order, up to the first that is not. */
  private sendOwedReceipts(): void {
    for (;;) {
      const owed = this.owedReceipts;
      const next = owed[this.owedHead];
      if (next === undefined || !next.settled) return;
      this.owedHead++;
      if (this.owedHead === owed.length) {
        this.owedReceipts = [];
        this.owedHead = 0;
      } else if (this.owedHead > 1024 && this.owedHead * 2 > owed.length) {
        // A client that always has receipts owed: drop the answered front now and then.
        this.owedReceipts = owed.slice(this.owedHead);
        this.owedHead = 0;
      }
      if (next.failure !== undefined) this.fail(next.failure.error);
      else if (next.id !== undefined && this.state !== 'closed')
        this.write(receiptFrame(next.id, this.version));
      if (next.waiters !== undefined) for (const resolve of next.waiters) resolve();
    }
  }

  /** Resolves once every receipt owed so far went out. */
  receiptsSent(): Promise<void> {
    const owed = this.owedReceipts;
    if (this.owedHead === owed.length) return Promise.resolve();
    const last = owed[owed.length - 1]!;
    return new Promise((resolve) => {
      if (last.waiters === undefined) last.waiters = [resolve];
      else last.waiters.push(resolve);
    });
  }

  /** A queue consumer's delivery: written on the next tick with the rest. */
  enqueueQueueDelivery(subscription: QueueConsumerSubscription, delivery: QueueDelivery): void {
    this.queueOutbox.push({ subscription, delivery });
    this.wake();
  }

  // ---- closing -----------------------------------------------------------------------

  /** DISCONNECT (STOMP 1.2 "DISCONNECT"): the receipt after everything before it, then a graceful close. */
  disconnect(frame: StompFrame): Promise<void> {
    this.state = 'disconnecting';
    this.receipt(frame);
    return this.receiptsSent().then(() => {
      if (this.state === 'closed') return;
      this.teardown('client-disconnect');
      this.out.end();
    });
  }

  /** ClientLink: the broker closes us (shutdown, administrative action, takeover). */
  close(reason: ServerDisconnectReason): void {
    if (this.state === 'closed') return;
    this.sendError(CLOSE_MESSAGES[reason], undefined, undefined, []);
    this.teardown(reason);
    this.out.end();
  }

  /**
   * Answers a violation or codec error with ERROR (`message`, the offending frame's receipt as
   * `receipt-id`, a short body) and closes (STOMP 1.2 "ERROR"). Other errors are ours: logged,
   * and the client is told only that something failed.
   */
  fail(error: unknown, frame?: StompFrame): void {
    if (this.state === 'closed' || this.failing) return;
    if (this.owedHead < this.owedReceipts.length) {
      // Receipts owed for earlier frames go first: the client learns what did succeed.
      this.failing = true;
      this.inbox.length = 0;
      this.stream.pause();
      const after = (): void => {
        this.failing = false;
        this.fail(error, frame);
      };
      void this.receiptsSent().then(after);
      return;
    }
    let message = 'internal error';
    let detail: string | undefined;
    let headers: readonly [string, string][] = [];
    if (error instanceof StompViolation) {
      message = error.message;
      detail = error.detail;
      headers = error.headers;
    } else if (error instanceof StompCodecError) {
      message = `malformed frame: ${error.message}`;
    } else {
      this.broker.options.onError(error);
    }
    const receiptId = frame === undefined ? undefined : getHeader(frame, 'receipt');
    this.sendError(message, detail, receiptId, headers);
    this.teardown(`protocol-error: ${message}`);
    this.out.end();
  }

  private sendError(
    message: string,
    detail: string | undefined,
    receiptId: string | undefined,
    extra: readonly [string, string][],
  ): void {
    const headers: [string, string][] = [['message', oneLine(message)], ...extra];
    if (receiptId !== undefined) headers.push(['receipt-id', receiptId]);
    headers.push(['content-type', 'text/plain']);
    try {
      this.sendFrame('ERROR', headers, Buffer.from(`${detail ?? message}\n`));
    } catch {
      // A receipt id 1.0 cannot carry: the ERROR goes without it.
      this.sendFrame('ERROR', [['message', oneLine(message)]]);
    }
  }

  /** Ends this connection's part: timers stop, transactions are aborted, the session is ended. */
  teardown(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    clearTimeout(this.sendBeatTimer);
    clearTimeout(this.receiveBeatTimer);
    this.inbox.length = 0;
    this.queueOutbox.length = 0;
    // STOMP 1.2 "BEGIN": transactions still open when the connection ends are aborted.
    this.transactions.clear();
    // Unacknowledged queue deliveries go back to their queues.
    for (const subscription of this.subscriptions.byId.values()) {
      if (subscription.kind === 'queue') {
        subscription.closed = true;
        subscription.handle?.close();
      }
    }
    const session = this.session;
    if (session !== undefined) this.broker.disconnect(session, this, { reason, sendWill: false });
    if (!this.stream.destroyed) {
      // Let a final ERROR or RECEIPT flush, but never keep a dead peer's socket open.
      setTimeout(() => this.stream.destroy(), 1000).unref();
    }
  }
}
