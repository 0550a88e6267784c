import type { StompFrame } from '../../codec/stomp/index.js';
import type { StompConnection } from './connection.js';
import { StompViolation } from './errors.js';
import { handleAck } from './handle-ack.js';
import { handleConnect } from './handle-connect.js';
import { handleSend } from './handle-send.js';
import { handleSubscribe, handleUnsubscribe } from './handle-subscribe.js';
import { handleAbort, handleBegin, handleCommit } from './transactions.js';

/**
 * Which handler takes which frame. CONNECT (or STOMP) comes first and only once; server frames
 * (MESSAGE, RECEIPT, ERROR, CONNECTED) from a client are violations. Returns a promise when the
 * handler waits on the broker: the connection holds later frames until it settles.
 */
export function dispatchFrame(conn: StompConnection, frame: StompFrame): void | Promise<void> {
  const { command } = frame;
  if (conn.state === 'awaiting-connect') {
    if (command === 'CONNECT' || command === 'STOMP') return handleConnect(conn, frame);
    throw new StompViolation(`expected CONNECT, got ${command}: connect first`);
  }
  switch (command) {
    case 'SEND':
      return handleThrottledSend(conn, frame);
    case 'SUBSCRIBE':
      return handleSubscribe(conn, frame);
    case 'UNSUBSCRIBE':
      return handleUnsubscribe(conn, frame);
    case 'ACK':
    case 'NACK':
      return handleAck(conn, frame);
    case 'BEGIN':
      return handleBegin(conn, frame);
    case 'COMMIT':
      return handleCommit(conn, frame);
    case 'ABORT':
      return handleAbort(conn, frame);
    case 'DISCONNECT':
      return conn.disconnect(frame);
    case 'CONNECT':
    case 'STOMP':
      throw new StompViolation('already connected: CONNECT comes once');
    default:
      throw new StompViolation(`${command} is not a client frame`);
  }
}

/**
 * A SEND from a client whose sending is limited (rates, memory pressure): handled at once,
 * then reading pauses for as long as the throttle says, slowing the client down through TCP.
 */
function handleThrottledSend(conn: StompConnection, frame: StompFrame): void | Promise<void> {
  const handled = handleSend(conn, frame);
  const throttle = conn.throttle;
  if (throttle === undefined) return handled;
  const wait = throttle.charge(frame.body.length);
  if (wait === undefined) return handled;
  const resumed = conn.holdReads(wait);
  return handled === undefined ? resumed : Promise.all([handled, resumed]).then(() => {});
}
