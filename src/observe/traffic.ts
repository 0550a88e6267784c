/**
 * Outbound and network traffic counters, one set per broker. They are plain numbers that
 * protocols increment where they write (one add per PUBLISH sent), because an event per
 * delivery would cost the fan-out path more than the count is worth; metrics and `$SYS`
 * read them when asked. A leaf module: protocols may import it without pulling in anything.
 */

/** Running totals since the broker was created. Indexes of the arrays are QoS levels. */
export class Traffic {
  /** PUBLISH packets sent to clients, by QoS (resends included). */
  readonly messagesSent: [number, number, number] = [0, 0, 0];
  /** Payload bytes of those PUBLISH packets, by QoS. */
  readonly payloadBytesSent: [number, number, number] = [0, 0, 0];
  /** PUBLISH packets sent to clients, all QoS levels together. */
  get messagesSentTotal(): number {
    return this.messagesSent[0] + this.messagesSent[1] + this.messagesSent[2];
  }
  /** Bytes read from client connections (every packet, as on the wire). */
  bytesReceived = 0;
  /** Bytes written to client connections (every packet, as on the wire). */
  bytesSent = 0;
}

const byOwner = new WeakMap<object, Traffic>();

/** The traffic counters of a broker (any object standing for one), created on first use. */
export function trafficOf(owner: object): Traffic {
  let traffic = byOwner.get(owner);
  if (traffic === undefined) {
    traffic = new Traffic();
    byOwner.set(owner, traffic);
  }
  return traffic;
}
