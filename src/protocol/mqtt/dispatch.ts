import { type DisconnectPacket, type Packet, ReasonCode } from '../../codec/mqtt/index.js';
import type { MqttConnection } from './connection.js';
import { handleDeliveryAck } from './delivery.js';
import { ProtocolViolation } from './errors.js';
import { handleAuth } from './handle-auth.js';
import { handleConnect } from './handle-connect.js';
import { handlePublish, handlePubrel, handleThrottledPublish } from './handle-publish.js';
import { handleSubscribe, handleUnsubscribe } from './handle-subscribe.js';

/**
 * Hands one decoded packet to its handler, as the connection's state allows. A promise means
 * the handler still works on it: the connection holds later packets until it settles. A thrown
 * ProtocolViolation closes the connection with its reason code.
 */
export function dispatchPacket(conn: MqttConnection, packet: Packet): void | Promise<void> {
  if (conn.state === 'closed') return;
  if (conn.state !== 'connected') {
    if (packet.type === 'connect' && conn.state === 'awaiting-connect') return handleConnect(conn, packet);
    // MQTT 4.12: while the CONNECT's authentication exchange goes on, only AUTH and DISCONNECT.
    if (conn.authExchange !== undefined && packet.type === 'auth') return handleAuth(conn, packet);
    if (conn.authExchange !== undefined && packet.type === 'disconnect')
      return handleDisconnect(conn, packet);
    // MQTT-3.1.0-1: nothing before CONNECT; nothing else while it is processed.
    throw new ProtocolViolation(ReasonCode.ProtocolError, `${packet.type.toUpperCase()} before CONNACK`);
  }
  switch (packet.type) {
    case 'publish':
      if (conn.throttle === undefined) return handlePublish(conn, packet);
      return handleThrottledPublish(conn, packet, conn.throttle);
    case 'puback':
    case 'pubrec':
    case 'pubcomp':
      handleDeliveryAck(conn, packet);
      return;
    case 'pubrel':
      return handlePubrel(conn, packet);
    case 'subscribe':
      return handleSubscribe(conn, packet);
    case 'unsubscribe':
      handleUnsubscribe(conn, packet);
      return;
    case 'pingreq':
      conn.send({ type: 'pingresp' });
      return;
    case 'auth':
      return handleAuth(conn, packet);
    case 'disconnect':
      return handleDisconnect(conn, packet);
    case 'connect':
      // MQTT-3.1.0-2: a second CONNECT is a protocol violation.
      throw new ProtocolViolation(ReasonCode.ProtocolError, 'second CONNECT on one connection');
    default:
      // A packet only a server sends.
      throw new ProtocolViolation(
        ReasonCode.ProtocolError,
        `unexpected ${packet.type.toUpperCase()} from a client`,
      );
  }
}

/** DISCONNECT from the client (MQTT 3.14.4): the will is sent only if it asks (0x04). */
function handleDisconnect(conn: MqttConnection, packet: DisconnectPacket): void {
  const expiry = packet.properties?.sessionExpiryInterval;
  if (expiry !== undefined && expiry !== 0 && conn.connectExpiryInterval === 0) {
    throw new ProtocolViolation(
      ReasonCode.ProtocolError,
      'Session Expiry Interval set at DISCONNECT after 0 at CONNECT (MQTT-3.14.2-2)',
    );
  }
  // MQTT-3.14.4-3: a normal DISCONNECT discards the will; 0x04 asks for it.
  const sendWill = packet.reasonCode === ReasonCode.DisconnectWithWillMessage;
  conn.teardown('client-disconnect', sendWill, expiry);
  conn.end();
}
