import type { Duplex } from 'node:stream';
import type { Broker } from '../../broker/broker.js';
import type {
  ClientInfo,
  ClientLink,
  EnhancedAuthentication,
  ServerDisconnectReason,
} from '../../broker/hooks.js';
import type { Session } from '../../broker/session.js';
import {
  encode,
  MAX_PACKET_SIZE,
  MqttCodecError,
  MqttDecoder,
  type Packet,
  type Properties,
  type ProtocolVersion,
  ReasonCode,
  reasonCodeName,
} from '../../codec/mqtt/index.js';
import type { MemoryWatch } from '../../limits/memory-watch.js';
import { PublishThrottle } from '../../limits/publish-throttle.js';
import { type Traffic, trafficOf } from '../../observe/traffic.js';
import type { ConnectionInfo } from '../../transport/transport.js';
import { OutboundWriter } from '../outbound.js';
import { drainDeliveries } from './delivery.js';
import { dispatchPacket } from './dispatch.js';
import { ProtocolViolation, serverDisconnectCode } from './errors.js';
import type { AuthExchange } from './handle-auth.js';
import type { MqttOptions } from './options.js';
import { OutboundAliases } from './topic-aliases.js';

/** Where a connection is in its life (MQTT 3.1: CONNECT first, once). */
type ConnectionState = 'awaiting-connect' | 'connecting' | 'connected' | 'closed';

/**
 * One MQTT network connection: decodes packets from the stream, runs them through their
 * handlers one at a time and in order, and encodes what the broker owes the client. It is
 * the session's ClientLink while connected. Errors end here: a codec error or protocol
 * violation is answered with its reason code and closes this connection only.
 */
export class MqttConnection implements ClientLink {
  state: ConnectionState = 'awaiting-connect';
  version: ProtocolVersion = 4;
  session: Session | undefined;
  client: ClientInfo | undefined;

  // Negotiated in CONNECT (MQTT 3.1.2.11).
  keepAlive = 0;
  /** The client's Receive Maximum: its limit on our QoS 1/2 in flight. */
  clientReceiveMaximum = 65_535;
  /** The client's Maximum Packet Size: larger messages are not sent to it (MQTT-3.1.2-25). */
  clientMaxPacketSize = MAX_PACKET_SIZE;
  /** Whether reason strings and user properties may go on acks (MQTT-3.1.2-29). */
  problemInformation = true;
  /** Session Expiry Interval given in CONNECT: 0 forbids a non-zero one at DISCONNECT (MQTT-3.14.2-2). */
  connectExpiryInterval = 0;
  /** The enhanced authentication the client connected with: re-authentication uses its method (MQTT-4.12.1-1). */
  enhancedAuth: EnhancedAuthentication | undefined;
  /** An AUTH exchange in progress (MQTT 4.12): the CONNECT's, or a re-authentication. */
  authExchange: AuthExchange | undefined;
  readonly inboundAliases = new Map<number, string>();
  outboundAliases = new OutboundAliases(0);
  /** Inbound QoS 1 publishes whose PUBACK waits on the store; with the session's unreleased QoS 2 ids, bounded by our Receive Maximum (MQTT-3.3.4-9). */
  pendingQoS1Acks = 0;
  /** Acks waiting on earlier ones: PUBACKs go out in PUBLISH order (MQTT-4.6.0-2). */
  ackChain: Promise<void> | undefined;
  pendingAcks = 0;
  /** ClientLink: 'slow-consumer' while the outbound buffer is over its soft limit (see delivery.ts). */
  qos0DropReason: ClientLink['qos0DropReason'];
  /** Times reads were paused to slow this client's publishing down (rates, memory pressure). */
  readPauses = 0;
  /** True while reads are paused by the throttle: idleness is then ours, not the client's. */
  readsHeld = false;
  /** The broker's traffic counters (plain numbers: counting costs an add, see traffic.ts). */
  readonly traffic: Traffic;
  /** Undefined when nothing limits publishing: the read path then costs one check. */
  readonly throttle: PublishThrottle | undefined;

  private readonly decoder: MqttDecoder;
  private readonly inbox: Packet[] = [];
  private busy = false;
  /** A decoding error met while earlier packets were still being handled. */
  private deferredError: unknown;
  private lastActivity = Date.now();
  private readonly openedAt = this.lastActivity;
  /** Idle time allowed before the connection is closed: the connect timeout, then 1.5x Keep Alive. */
  private idleLimit: number;
  /** Outbound bytes: batched per tick, parked past the stream's mark, bounded (see delivery.ts). */
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
    readonly options: MqttOptions,
    memory?: MemoryWatch,
  ) {
    this.decoder = new MqttDecoder((packet) => this.receive(packet), {
      maxPacketSize: options.maxPacketSize,
    });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.teardown('client-closed', true));
    stream.on('close', () => this.teardown('socket-closed', true));
    stream.on('error', () => this.teardown('socket-error', true));
    this.idleLimit = options.connectTimeout;
    this.traffic = trafficOf(broker);
    this.out = new OutboundWriter(
      stream,
      {
        softLimit: options.outboundSoftLimit,
        hardLimit: options.outboundHardLimit,
        largestFrame: options.maxPacketSize,
      },
      this.traffic,
      {
        overSoftLimit: () => {
          this.qos0DropReason = 'slow-consumer';
        },
        overHardLimit: () => this.closeOverloaded(),
        drained: () => {
          // The client read everything we wrote: no longer a slow consumer.
          this.qos0DropReason = undefined;
          this.wake();
        },
      },
    );
    this.throttle = PublishThrottle.create(
      { messagesPerSecond: options.maxPublishRate, bytesPerSecond: options.maxPublishBytesRate },
      memory,
    );
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Outbound bytes unsent beyond which the client is a slow consumer: never below the stream's own mark, so 'drain' follows. */
  get outboundSoftLimit(): number {
    return this.out.softLimit;
  }

  /** Outbound bytes unsent beyond which the connection is closed: never below the soft limit plus one largest packet. */
  get outboundHardLimit(): number {
    return this.out.hardLimit;
  }

  // ---- inbound ------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastActivity = Date.now();
    this.traffic.bytesReceived += chunk.length;
    try {
      this.decoder.feed(chunk);
    } catch (error) {
      // Packets before the bad bytes are answered first: fail once they are done.
      if (this.busy || this.inbox.length > 0) {
        this.deferredError = error;
        this.stream.pause();
      } else {
        this.fail(error);
      }
    }
  }

  /** Packets are handled strictly in order; while one waits (authentication, say) the rest queue. */
  private receive(packet: Packet): void {
    if (this.busy || this.inbox.length > 0) {
      this.inbox.push(packet);
      this.stream.pause();
      return;
    }
    this.run(packet);
  }

  private run(packet: Packet): void {
    let pending: void | Promise<void>;
    try {
      pending = dispatchPacket(this, packet);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (pending === undefined) return;
    this.busy = true;
    pending.then(
      () => this.resume(),
      (error: unknown) => this.fail(error),
    );
  }

  private resume(): void {
    this.busy = false;
    while (!this.busy && this.inbox.length > 0 && this.state !== 'closed') this.run(this.inbox.shift()!);
    if (this.busy || this.state === 'closed') return;
    if (this.deferredError !== undefined) this.fail(this.deferredError);
    else this.stream.resume();
  }

  /** The Keep Alive was agreed: allow 1.5 times it without a packet (MQTT-3.1.2-22); 0 disables it. */
  startKeepAlive(seconds: number): void {
    this.keepAlive = seconds;
    this.idleLimit = seconds * 1500;
  }

  /**
   * Called by the handler's watchdog a few times a second: closes a connection that sent no
   * CONNECT in time, or nothing for 1.5 times its Keep Alive. One shared sweep costs less
   * memory per idle connection than a timer each.
   */
  checkIdle(now: number): void {
    // Reads paused by the throttle: the client may well be sending, we are not listening.
    if (this.readsHeld) {
      this.lastActivity = now;
      return;
    }
    // Until CONNACK the connect timeout counts from the start: it bounds any AUTH exchange too.
    const since = this.state === 'connected' ? this.lastActivity : this.openedAt;
    if (this.idleLimit === 0 || now - since < this.idleLimit) return;
    if (this.state === 'connected') this.close('keep-alive-timeout');
    else this.teardown('connect-timeout', false);
  }

  // ---- outbound ----------------------------------------------------------------------

  /** Encodes and writes one packet; returns false once the stream wants us to wait for 'drain'. */
  send(packet: Packet): boolean {
    if (this.state === 'closed' || this.stream.destroyed) return false;
    return this.write(encode(packet, this.version));
  }

  /**
   * Writes already-encoded bytes after everything before (see OutboundWriter: batched per
   * tick, parked past the stream's mark). False once the client is a slow consumer (delivery.ts).
   */
  write(bytes: Buffer): boolean {
    return this.out.write(bytes);
  }

  /** Unsent bytes: in the stream's buffer and parked behind it. */
  get unsentBytes(): number {
    return this.out.unsentBytes;
  }

  /** Ends the stream after everything written, parked bytes included. */
  end(): void {
    this.out.end();
  }

  /** Deliveries waiting in `writeAfter`. */
  private heldWrites = 0;
  private writeChain: Promise<void> | undefined;

  get holdingWrites(): boolean {
    return this.heldWrites > 0;
  }

  /**
   * Writes `bytes` once `durable` resolved and every delivery held before went out, so
   * deliveries (and the topic aliases they set) keep their order. A failed store write fails
   * the connection: the client reconnects and the session resends what is unacknowledged.
   */
  writeAfter(durable: Promise<void> | undefined, bytes: Buffer): void {
    this.heldWrites++;
    const release = (): void => {
      if (--this.heldWrites === 0) this.writeChain = undefined;
    };
    this.writeChain = (this.writeChain ?? Promise.resolve())
      .then(() => durable)
      .then(
        () => {
          release();
          if (this.state !== 'closed' && !this.stream.destroyed) this.write(bytes);
        },
        (error: unknown) => {
          release();
          this.fail(error);
        },
      );
  }

  /** ClientLink: the broker queued deliveries; send them on the next tick, batched. */
  wake(): void {
    if (this.drainScheduled || this.state !== 'connected') return;
    this.drainScheduled = true;
    process.nextTick(this.drainNow);
  }

  /** Closes a client that stopped reading while its outbound buffer grew past the hard limit. */
  closeOverloaded(): void {
    if (this.state === 'closed') return;
    this.disconnectWith(ReasonCode.QuotaExceeded, 'outbound buffer over its limit: not reading');
    this.teardown('slow-consumer', true);
    this.end();
  }

  /** Strips reason strings and user properties the client asked not to get (MQTT-3.1.2-29). */
  ackProperties(properties: Properties | undefined): Properties | undefined {
    return this.problemInformation ? properties : undefined;
  }

  // ---- closing -----------------------------------------------------------------------

  /** ClientLink: the broker closes us (takeover, shutdown, admin action, keep-alive). */
  close(reason: ServerDisconnectReason): void {
    if (this.state === 'closed') return;
    this.disconnectWith(serverDisconnectCode(reason));
    this.teardown(reason, true);
    this.end();
  }

  /**
   * Answers a codec error or protocol violation with its reason code (CONNACK before the
   * session exists, DISCONNECT after, 5.0 only) and closes the connection (MQTT 4.13).
   */
  fail(error: unknown): void {
    if (this.state === 'closed') return;
    let reasonCode: number = ReasonCode.UnspecifiedError;
    let message = 'internal error';
    if (error instanceof MqttCodecError || error instanceof ProtocolViolation) {
      reasonCode = error.reasonCode;
      message = error.message;
    } else {
      this.broker.options.onError(error);
    }
    if (this.state === 'connected') {
      this.disconnectWith(reasonCode, message);
    } else if (
      this.decoder.protocolVersion === 5 ||
      (error instanceof MqttCodecError && error.code === 'UNSUPPORTED_PROTOCOL_VERSION')
    ) {
      // MQTT-3.2.2-5 / 3.1.2-2: a refused CONNECT is answered before closing.
      const version: ProtocolVersion = this.decoder.protocolVersion === 5 ? 5 : 4;
      const code = version === 5 ? reasonCode : 1;
      this.stream.write(encode({ type: 'connack', sessionPresent: false, reasonCode: code }, version));
    }
    this.teardown(`protocol-error: ${reasonCodeName(reasonCode)}: ${message}`, true);
    this.end();
  }

  private disconnectWith(reasonCode: number, reasonString?: string): void {
    if (this.version !== 5 || this.state !== 'connected') return;
    this.send({
      type: 'disconnect',
      reasonCode,
      properties: reasonString === undefined ? undefined : { reasonString },
    });
  }

  /** Ends this connection's part: timers stop and the session is detached (its will as the spec says). */
  teardown(reason: string, sendWill: boolean, expiryInterval?: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.idleLimit = 0;
    this.inbox.length = 0;
    const session = this.session;
    if (session !== undefined) {
      this.broker.disconnect(session, this, {
        reason,
        sendWill,
        ...(expiryInterval === undefined ? {} : { expiryInterval }),
      });
    }
    if (!this.stream.destroyed) {
      // Give a final DISCONNECT a moment to flush, but never keep a dead peer's socket open.
      setTimeout(() => this.stream.destroy(), 1000).unref();
    }
  }
}
