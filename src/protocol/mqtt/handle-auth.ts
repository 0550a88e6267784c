import type { AuthConversation, AuthStep, ClientInfo, ConnectRefusal } from '../../broker/hooks.js';
import { type AuthPacket, ReasonCode } from '../../codec/mqtt/index.js';
import type { MqttConnection } from './connection.js';
import { ProtocolViolation } from './errors.js';

/**
 * MQTT 5 enhanced authentication (MQTT 4.12, AUTH 3.15): relays the client's AUTH data to the
 * method's conversation (the `enhancedAuthentication` hook) and its answers back, at CONNECT
 * and for re-authentication on a live connection. The core knows no AUTH packet.
 */

/** How an exchange ended: success or failure (a conversation's final step). */
export type FinalAuthStep = Exclude<AuthStep, { status: 'continue' }>;

/** An enhanced authentication exchange in progress on a connection. */
export interface AuthExchange {
  /** MQTT-4.12.0-5: every AUTH of the exchange carries this method. */
  readonly method: string;
  readonly conversation: AuthConversation;
  /** Acts on the outcome: completes or refuses the CONNECT, or confirms or ends the re-authentication. */
  readonly settle: (step: FinalAuthStep) => void | Promise<void>;
}

/**
 * Starts the exchange a CONNECT with an Authentication Method asks for, with the CONNECT's
 * Authentication Data. Resolves false when the method is not offered (the caller answers 0x8C,
 * MQTT-4.12.0-1); `settle` gets the outcome, now or on a later AUTH.
 */
export async function beginAuthentication(
  conn: MqttConnection,
  method: string,
  data: Buffer | undefined,
  client: ClientInfo,
  settle: (step: FinalAuthStep) => void | Promise<void>,
): Promise<boolean> {
  const conversation = conn.broker.options.hooks.enhancedAuthentication?.(method, client);
  if (conversation === undefined) return false;
  const exchange: AuthExchange = { method, conversation, settle };
  conn.authExchange = exchange;
  await advance(conn, exchange, data);
  return true;
}

/** AUTH from the client: continues an exchange or starts a re-authentication (MQTT 4.12). */
export async function handleAuth(conn: MqttConnection, packet: AuthPacket): Promise<void> {
  const method = packet.properties?.authenticationMethod;
  const reasonCode = packet.reasonCode ?? ReasonCode.Success;
  const data = packet.properties?.authenticationData;
  const exchange = conn.authExchange;
  if (exchange !== undefined) {
    // MQTT-4.12.0-3: the client answers the server's AUTH with Continue authentication.
    if (reasonCode !== ReasonCode.ContinueAuthentication) {
      throw violation(`AUTH 0x${reasonCode.toString(16)} during an authentication exchange (MQTT-4.12.0-3)`);
    }
    // MQTT-4.12.0-5: the same method throughout.
    if (method !== exchange.method)
      throw violation('AUTH with another Authentication Method (MQTT-4.12.0-5)');
    return advance(conn, exchange, data);
  }
  const current = conn.enhancedAuth;
  // MQTT-4.12.0-7: no AUTH from a client that connected without an Authentication Method.
  if (current === undefined || conn.client === undefined) {
    throw violation('AUTH from a client that did not use enhanced authentication (MQTT-4.12.0-7)');
  }
  // MQTT 4.12.1: only Re-authenticate starts a new exchange, with the original method (MQTT-4.12.1-1).
  if (reasonCode !== ReasonCode.ReAuthenticate) {
    throw violation(`AUTH 0x${reasonCode.toString(16)} with no authentication exchange in progress`);
  }
  if (method !== current.method) throw violation('re-authentication with another method (MQTT-4.12.1-1)');
  const settle = (step: FinalAuthStep): void => settleReauthentication(conn, method, step);
  const conversation = conn.broker.options.hooks.enhancedAuthentication?.(method, conn.client);
  if (conversation === undefined) {
    // The method was withdrawn since the client connected.
    settle({ status: 'failure', refusal: 'not-authorized', reason: `method ${method} no longer offered` });
    return;
  }
  const reauthentication: AuthExchange = { method, conversation, settle };
  conn.authExchange = reauthentication;
  return advance(conn, reauthentication, data);
}

/** Feeds the client's data to the conversation and relays its answer. */
async function advance(
  conn: MqttConnection,
  exchange: AuthExchange,
  data: Buffer | undefined,
): Promise<void> {
  let step: AuthStep;
  try {
    // The data is a view of a socket chunk: the conversation may keep it beyond that.
    step = await exchange.conversation.step(data === undefined ? undefined : Buffer.from(data));
  } catch (error) {
    conn.broker.options.onError(error);
    step = {
      status: 'failure',
      refusal: 'server-unavailable',
      reason: 'authentication failed with an error',
    };
  }
  if (conn.closed || conn.authExchange !== exchange) return;
  if (step.status === 'continue') {
    // MQTT-4.12.0-2: more is needed: AUTH 0x18 with the method and the server's data.
    conn.send({
      type: 'auth',
      reasonCode: ReasonCode.ContinueAuthentication,
      properties: { authenticationMethod: exchange.method, authenticationData: step.data },
    });
    return;
  }
  conn.authExchange = undefined;
  await exchange.settle(step);
}

/**
 * Success: AUTH 0x00 with the final data (MQTT 4.12.1). The client stays who it was: a
 * re-authentication that proves another user fails, as its permissions were granted to the first.
 * Failure: DISCONNECT with a reason code and close (MQTT-4.12.1-2); the will is published.
 */
function settleReauthentication(conn: MqttConnection, method: string, step: FinalAuthStep): void {
  let outcome = step;
  if (outcome.status === 'success' && outcome.username !== conn.enhancedAuth?.username) {
    outcome = { status: 'failure', refusal: 'not-authorized', reason: 're-authenticated as another user' };
  }
  if (outcome.status === 'success') {
    conn.send({
      type: 'auth',
      reasonCode: ReasonCode.Success,
      properties: {
        authenticationMethod: method,
        ...(outcome.data === undefined ? {} : { authenticationData: outcome.data }),
      },
    });
    return;
  }
  conn.send({ type: 'disconnect', reasonCode: reauthenticationFailureCode(outcome.refusal) });
  conn.teardown(`re-authentication failed: ${outcome.reason}`, true);
  conn.end();
}

/** A refusal as a DISCONNECT reason code: 0x86 and 0x88 are CONNACK-only (MQTT 3.14.2.1). */
function reauthenticationFailureCode(refusal: ConnectRefusal): number {
  switch (refusal) {
    case 'server-busy':
      return ReasonCode.ServerBusy;
    case 'server-unavailable':
      return ReasonCode.UnspecifiedError;
    default:
      return ReasonCode.NotAuthorized;
  }
}

function violation(message: string): ProtocolViolation {
  return new ProtocolViolation(ReasonCode.ProtocolError, message);
}
