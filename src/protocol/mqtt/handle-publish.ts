import type { Message } from '../../broker/message.js';
import { QUEUE_TOPIC_PREFIX } from '../../broker/queues.js';
import { type PublishPacket, type PubrelPacket, ReasonCode } from '../../codec/mqtt/index.js';
import type { PublishThrottle } from '../../limits/publish-throttle.js';
import { describeTopicFault, topicFault } from '../../limits/topic-limits.js';
import type { MqttConnection } from './connection.js';
import { ProtocolViolation } from './errors.js';
import { messageProperties } from './handle-connect.js';

/**
 * An inbound PUBLISH (MQTT 3.3.4): resolve its topic alias, check it against what the
 * server offers, authorize, route, and acknowledge once the broker (and the store, for
 * what must survive) has accepted it.
 */
export function handlePublish(conn: MqttConnection, packet: PublishPacket): void | Promise<void> {
  const session = conn.session!;
  const { qos } = packet;
  // The topic as sent: one set for an alias is checked here, so its later uses need not be.
  if (packet.topic.length > 0) {
    const { maxTopicLength, maxTopicLevels } = conn.options;
    const fault = topicFault(packet.topic, maxTopicLength, maxTopicLevels);
    if (fault !== undefined) {
      refuseTopic(conn, packet, describeTopicFault(fault, maxTopicLength, maxTopicLevels));
      return;
    }
  }
  const topic = resolveTopic(conn, packet);
  checkCapabilities(conn, packet);
  // `$queue/` with no name names no queue (a name with wildcards cannot reach here, MQTT-3.3.2-2).
  if (topic === QUEUE_TOPIC_PREFIX) {
    refuseTopic(conn, packet, 'a $queue/ topic needs a queue name');
    return;
  }

  if (qos > 0) {
    // MQTT-4.3.3-10: a QoS 2 id already received is not delivered again; just acknowledge.
    if (qos === 2 && session.inboundQoS2.has(packet.packetId!)) {
      // The repeat may follow a reconnect within one disk sync of the original: recording the
      // id again (a no-op) and waiting for it means the original is durable too, since one
      // client's writes are applied in order.
      const packetId = packet.packetId!;
      const durable = conn.broker.receivedQoS2(session, packetId);
      acknowledge(conn, durable, 2, () => conn.send({ type: 'pubrec', packetId }));
      return;
    }
    // MQTT-3.3.4-9: no more QoS 1/2 publishes in progress than our Receive Maximum.
    if (conn.pendingQoS1Acks + session.inboundQoS2.size >= conn.options.receiveMaximum) {
      throw new ProtocolViolation(ReasonCode.ReceiveMaximumExceeded, 'Receive Maximum exceeded');
    }
  }

  const props = packet.properties;
  const message = conn.broker.createMessage({
    topic,
    // A retained copy outlives the socket chunk the payload is a view of.
    payload: packet.retain ? Buffer.from(packet.payload) : packet.payload,
    qos,
    retain: packet.retain,
    ...(props === undefined ? {} : { properties: messageProperties(props) }),
    ...(props?.messageExpiryInterval === undefined ? {} : { expiryInterval: props.messageExpiryInterval }),
    origin: session.clientId,
  });

  const allowed = conn.broker.authorizePublish(conn.client!, message);
  if (allowed === true) return route(conn, packet, message);
  if (allowed === false) return refuse(conn, packet);
  return allowed.then((ok) => (ok ? route(conn, packet, message) : refuse(conn, packet)));
}

function resolveTopic(conn: MqttConnection, packet: PublishPacket): string {
  const alias = packet.properties?.topicAlias;
  if (alias === undefined) return packet.topic;
  // MQTT-3.3.2-9/-10: an alias above our Topic Alias Maximum is invalid.
  if (alias > conn.options.topicAliasMaximum) {
    throw new ProtocolViolation(
      ReasonCode.TopicAliasInvalid,
      `Topic Alias ${alias} exceeds the maximum ${conn.options.topicAliasMaximum}`,
    );
  }
  if (packet.topic.length > 0) {
    conn.inboundAliases.set(alias, packet.topic);
    return packet.topic;
  }
  const topic = conn.inboundAliases.get(alias);
  if (topic === undefined)
    throw new ProtocolViolation(ReasonCode.ProtocolError, `Topic Alias ${alias} was never set`);
  return topic;
}

function checkCapabilities(conn: MqttConnection, packet: PublishPacket): void {
  const { options } = conn.broker;
  // MQTT-3.3.4-6: a client never sends Subscription Identifiers in PUBLISH.
  if (packet.properties?.subscriptionIdentifiers !== undefined) {
    throw new ProtocolViolation(
      ReasonCode.ProtocolError,
      'Subscription Identifier in a PUBLISH from a client (MQTT-3.3.4-6)',
    );
  }
  // MQTT-3.2.2-11: a QoS above Maximum QoS is answered with 0x9B.
  if (packet.qos > options.maximumQoS) {
    throw new ProtocolViolation(
      ReasonCode.QoSNotSupported,
      `QoS ${packet.qos} is above the server's maximum ${options.maximumQoS}`,
    );
  }
  // MQTT-3.2.2-14: RETAIN when Retain Available is 0 is answered with 0x9A.
  if (packet.retain && !options.retainAvailable) {
    throw new ProtocolViolation(ReasonCode.RetainNotSupported, 'retained messages are not supported');
  }
}

function route(conn: MqttConnection, packet: PublishPacket, message: Message): void {
  const result = conn.broker.publish(message, conn.client);
  if (packet.qos === 0) return;
  const session = conn.session!;
  const packetId = packet.packetId!;
  // MQTT 5: say so when nobody was subscribed (0x10), or a full queue or the queue cap refused it (0x97), as
  // PUBACK/PUBREC allow; 3.x has no refusal codes (as for a full session queue, the message is dropped).
  const reasonCode =
    conn.version < 5
      ? 0
      : result.refusal === 'queue-full' || result.refusal === 'too-many-queues'
        ? ReasonCode.QuotaExceeded
        : result.matched === 0
          ? ReasonCode.NoMatchingSubscribers
          : 0;
  let durable = result.persisted;
  if (packet.qos === 2) {
    const recorded = conn.broker.receivedQoS2(session, packetId);
    if (recorded !== undefined)
      durable = durable === undefined ? recorded : Promise.all([durable, recorded]).then(() => {});
  }
  acknowledge(conn, durable, packet.qos, () => {
    conn.send({ type: packet.qos === 1 ? 'puback' : 'pubrec', packetId, reasonCode });
  });
}

/** Denied (MQTT 5: 0x87 in PUBACK/PUBREC; 3.x has no code, so the publish is acknowledged and dropped). */
function refuse(conn: MqttConnection, packet: PublishPacket): void {
  if (packet.qos === 0) return;
  const reasonCode = conn.version === 5 ? ReasonCode.NotAuthorized : 0;
  const type = packet.qos === 1 ? 'puback' : 'pubrec';
  // MQTT-3.1.2-29: the reason string goes only to clients that did not opt out of problem information.
  const properties =
    conn.version === 5 ? conn.ackProperties({ reasonString: 'not authorized to publish' }) : undefined;
  acknowledge(conn, undefined, packet.qos, () =>
    conn.send({ type, packetId: packet.packetId!, reasonCode, properties }),
  );
}

/**
 * A topic over the configured length or depth. MQTT 5, QoS 1/2: PUBACK/PUBREC 0x90 Topic Name
 * invalid, and the connection goes on: the client learns which message failed. MQTT 5, QoS 0:
 * there is no acknowledgement to carry the refusal and a silent drop would hide the fault, so
 * DISCONNECT 0x90. MQTT 3.1.1 has no refusal codes, and acknowledging would claim the message
 * was accepted: the connection is closed.
 */
function refuseTopic(conn: MqttConnection, packet: PublishPacket, reason: string): void {
  if (conn.version < 5 || packet.qos === 0) throw new ProtocolViolation(ReasonCode.TopicNameInvalid, reason);
  const type = packet.qos === 1 ? 'puback' : 'pubrec';
  const properties = conn.ackProperties({ reasonString: reason });
  // A PUBREC with a failure code ends the QoS 2 exchange: the packet id is not held (MQTT 4.3.3).
  acknowledge(conn, undefined, packet.qos, () =>
    conn.send({ type, packetId: packet.packetId!, reasonCode: ReasonCode.TopicNameInvalid, properties }),
  );
}

/**
 * A PUBLISH from a client whose publishing is limited (rates, memory pressure): handled at
 * once, then reading pauses for as long as the throttle says. The pause pushes back through
 * TCP to the client: it is slowed down, and none of its QoS 1/2 messages is dropped.
 */
export function handleThrottledPublish(
  conn: MqttConnection,
  packet: PublishPacket,
  throttle: PublishThrottle,
): void | Promise<void> {
  const handled = handlePublish(conn, packet);
  const wait = throttle.charge(packet.topic.length + packet.payload.length);
  if (wait === undefined) return handled;
  conn.readPauses++;
  conn.readsHeld = true;
  conn.stream.pause();
  const resumed = wait.then(() => {
    conn.readsHeld = false;
  });
  return handled === undefined ? resumed : Promise.all([handled, resumed]).then(() => {});
}

/**
 * Sends an acknowledgement once `durable` resolves, never before an earlier one
 * (MQTT-4.6.0-2). The common case, nothing to wait for and nothing queued, sends at once.
 */
function acknowledge(
  conn: MqttConnection,
  durable: Promise<void> | undefined,
  qos: number,
  send: () => void,
): void {
  if (durable === undefined && conn.pendingAcks === 0) {
    send();
    return;
  }
  const counted = qos === 1 ? 1 : 0;
  conn.pendingQoS1Acks += counted;
  conn.pendingAcks++;
  const previous = conn.ackChain ?? Promise.resolve();
  conn.ackChain = previous
    .then(() => durable)
    .then(
      () => {
        conn.pendingAcks--;
        conn.pendingQoS1Acks -= counted;
        if (conn.pendingAcks === 0) conn.ackChain = undefined;
        send();
      },
      (error: unknown) => {
        conn.pendingAcks--;
        conn.pendingQoS1Acks -= counted;
        // Not durable: no acknowledgement, so the client resends after reconnecting.
        conn.fail(error);
      },
    );
}

/** PUBREL (MQTT 4.3.3): release the inbound QoS 2 id and answer PUBCOMP; 0x92 for an unknown id in 5.0. */
export function handlePubrel(conn: MqttConnection, packet: PubrelPacket): void {
  const released = conn.broker.releasedQoS2(conn.session!, packet.packetId);
  const reasonCode = released !== false || conn.version < 5 ? 0 : ReasonCode.PacketIdentifierNotFound;
  // Once the id is forgotten durably (see Broker.releasedQoS2); unsaved, the client resends PUBREL.
  acknowledge(conn, released === false ? undefined : released, 0, () =>
    conn.send({ type: 'pubcomp', packetId: packet.packetId, reasonCode }),
  );
}
