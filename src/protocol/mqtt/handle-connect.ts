import { randomBytes } from 'node:crypto';
import type { ConnectRequest } from '../../broker/broker.js';
import type { ClientInfo, EnhancedAuthentication } from '../../broker/hooks.js';
import type { MessageProperties } from '../../broker/message.js';
import { NEVER_EXPIRES, type SessionWill } from '../../broker/session.js';
import { type ConnectPacket, MAX_PACKET_SIZE, type Properties, ReasonCode } from '../../codec/mqtt/index.js';
import type { MqttConnection } from './connection.js';
import { resendInflight } from './delivery.js';
import { connackCode, connectRefusalCode } from './errors.js';
import { beginAuthentication } from './handle-auth.js';
import { OutboundAliases } from './topic-aliases.js';

/** What a CONNECT settled before the session is asked for. */
interface AcceptedConnect {
  readonly packet: ConnectPacket;
  readonly clientId: string;
  readonly assigned: boolean;
  readonly keepAlive: number;
  readonly requestedExpiry: number;
  readonly client: ClientInfo;
}

/** A successful enhanced authentication, with the final data the CONNACK carries to the client. */
interface Authenticated extends EnhancedAuthentication {
  readonly data?: Buffer;
}

/**
 * CONNECT (MQTT 3.1): validate, take the client's limits, run the enhanced authentication
 * exchange if the client asked for one (MQTT 4.12), ask the broker for a session, answer
 * CONNACK, then resend what was in flight and start delivering.
 */
export async function handleConnect(conn: MqttConnection, packet: ConnectPacket): Promise<void> {
  conn.state = 'connecting';
  conn.version = packet.protocolVersion;
  const version = packet.protocolVersion;
  const props = packet.properties;

  const refuse = (reasonCode: number): void => refuseConnect(conn, reasonCode);

  // 1. The client identifier (MQTT 3.1.3.1).
  let clientId = packet.clientId;
  let assigned = false;
  if (clientId.length === 0) {
    // MQTT-3.1.3-8: 3.1.1 only lets clean sessions go without an id; 3.1 never does.
    if (version === 3 || (version === 4 && !packet.clean) || !conn.options.allowZeroLengthClientId) {
      refuse(ReasonCode.ClientIdentifierNotValid);
      return;
    }
    clientId = `cicada-${randomBytes(9).toString('base64url')}`;
    assigned = true;
  }

  // 2. Capabilities the server does not offer (MQTT-3.2.2-12, -13).
  if (packet.will && packet.will.qos > conn.broker.options.maximumQoS) {
    refuse(ReasonCode.QoSNotSupported);
    return;
  }
  if (packet.will?.retain && !conn.broker.options.retainAvailable) {
    refuse(ReasonCode.RetainNotSupported);
    return;
  }

  // 3. The client's limits on what we send it (MQTT 3.1.2.11).
  conn.clientReceiveMaximum = props?.receiveMaximum ?? 65_535;
  conn.clientMaxPacketSize = props?.maximumPacketSize ?? MAX_PACKET_SIZE;
  conn.outboundAliases = new OutboundAliases(props?.topicAliasMaximum ?? 0);
  conn.problemInformation = props?.requestProblemInformation ?? true;
  const requestedExpiry =
    version === 5 ? (props?.sessionExpiryInterval ?? 0) : packet.clean ? 0 : NEVER_EXPIRES;
  conn.connectExpiryInterval = requestedExpiry;
  const keepAlive =
    version === 5 && conn.options.serverKeepAlive !== undefined
      ? conn.options.serverKeepAlive
      : packet.keepAlive;

  // A verified client certificate names the user, whatever CONNECT says (TLS `usernameFrom`).
  const username = conn.info.certificate?.username ?? packet.username;
  const client: ClientInfo = {
    clientId,
    ...(username === undefined ? {} : { username }),
    protocol: 'mqtt',
    protocolVersion: version,
    ...(conn.info.remoteAddress === undefined ? {} : { remoteAddress: conn.info.remoteAddress }),
    ...(conn.info.remotePort === undefined ? {} : { remotePort: conn.info.remotePort }),
    listener: conn.info.listener,
    secure: conn.info.secure,
    ...(conn.info.certificate === undefined ? {} : { certificate: conn.info.certificate }),
    keepAlive,
    connectedAt: Date.now(),
  };
  const accepted: AcceptedConnect = { packet, clientId, assigned, keepAlive, requestedExpiry, client };

  // 4. Enhanced authentication first, if asked for: the CONNACK waits for its outcome (MQTT 4.12).
  const method = props?.authenticationMethod;
  if (method === undefined) return completeConnect(conn, accepted, undefined);
  const offered = await beginAuthentication(conn, method, props?.authenticationData, client, (step) => {
    if (step.status === 'failure') return refuse(connectRefusalCode(step.refusal));
    const { username, data } = step;
    return completeConnect(conn, accepted, {
      method,
      ...(username === undefined ? {} : { username }),
      ...(data === undefined ? {} : { data }),
    });
  });
  // MQTT-4.12.0-1: a method the server does not offer.
  if (!offered) refuse(ReasonCode.BadAuthenticationMethod);
}

/** Answers CONNACK with a refusal and closes (MQTT-3.2.2-7). */
function refuseConnect(conn: MqttConnection, reasonCode: number): void {
  conn.send({ type: 'connack', sessionPresent: false, reasonCode: connackCode(reasonCode, conn.version) });
  conn.teardown(`refused: 0x${reasonCode.toString(16)}`, false);
  conn.end();
}

/** The session through the broker (authentication, takeover, resumption), CONNACK and deliveries. */
async function completeConnect(
  conn: MqttConnection,
  accepted: AcceptedConnect,
  authenticated: Authenticated | undefined,
): Promise<void> {
  const { packet, clientId, assigned, keepAlive, requestedExpiry } = accepted;
  const version = packet.protocolVersion;
  // The client is known by the name its authentication proved, if the method names one.
  const provenName = authenticated?.username;
  const client: ClientInfo =
    provenName === undefined ? accepted.client : { ...accepted.client, username: provenName };
  const enhancedAuthentication: EnhancedAuthentication | undefined =
    authenticated === undefined
      ? undefined
      : { method: authenticated.method, ...(provenName === undefined ? {} : { username: provenName }) };
  const request: ConnectRequest = {
    clientId,
    clean: packet.clean,
    expiryInterval: requestedExpiry,
    ...(packet.will === undefined ? {} : { will: makeWill(conn, packet, clientId) }),
    ...(packet.username === undefined ? {} : { username: packet.username }),
    ...(packet.password === undefined ? {} : { password: packet.password }),
    client,
    ...(enhancedAuthentication === undefined ? {} : { enhancedAuthentication }),
  };
  const outcome = await conn.broker.connect(request, conn);
  if (conn.closed) {
    // The socket went away while we waited: let go of the session we were given.
    if (outcome.ok)
      conn.broker.disconnect(outcome.session, conn, { reason: 'socket-closed', sendWill: true });
    return;
  }
  if (!outcome.ok) {
    refuseConnect(conn, connectRefusalCode(outcome.refusal));
    return;
  }
  conn.session = outcome.session;
  conn.client = client;
  conn.enhancedAuth = enhancedAuthentication;
  conn.state = 'connected';

  // 5. CONNACK, advertising what this server supports (MQTT 3.2.2.3).
  conn.send({
    type: 'connack',
    sessionPresent: outcome.sessionPresent,
    reasonCode: 0,
    properties:
      version === 5
        ? connackProperties(
            conn,
            packet,
            { clientId, assigned, keepAlive, expiry: outcome.expiryInterval },
            authenticated,
          )
        : undefined,
  });
  conn.startKeepAlive(keepAlive);

  // 6. MQTT-4.4.0-1: resend unacknowledged PUBLISH and PUBREL, then deliver the queue.
  resendInflight(conn);
  conn.wake();
}

function makeWill(conn: MqttConnection, packet: ConnectPacket, clientId: string): SessionWill {
  const will = packet.will!;
  const props = will.properties;
  const message = conn.broker.createMessage({
    topic: will.topic,
    payload: will.payload,
    qos: will.qos,
    retain: will.retain,
    ...(props === undefined ? {} : { properties: messageProperties(props) }),
    ...(props?.messageExpiryInterval === undefined ? {} : { expiryInterval: props.messageExpiryInterval }),
    origin: clientId,
  });
  return { message, delay: props?.willDelayInterval ?? 0 };
}

/** The application properties a message carries end to end (MQTT 3.3.2.3). */
export function messageProperties(props: Properties): MessageProperties | undefined {
  const { payloadFormatIndicator, contentType, responseTopic, correlationData, userProperties } = props;
  if (
    payloadFormatIndicator === undefined &&
    contentType === undefined &&
    responseTopic === undefined &&
    correlationData === undefined &&
    userProperties === undefined
  ) {
    return undefined;
  }
  const out: MessageProperties = {};
  if (payloadFormatIndicator !== undefined) out.payloadFormatIndicator = payloadFormatIndicator;
  if (contentType !== undefined) out.contentType = contentType;
  if (responseTopic !== undefined) out.responseTopic = responseTopic;
  // Correlation data outlives the socket chunk it was decoded from.
  if (correlationData !== undefined) out.correlationData = Buffer.from(correlationData);
  if (userProperties !== undefined) out.userProperties = userProperties;
  return out;
}

function connackProperties(
  conn: MqttConnection,
  packet: ConnectPacket,
  granted: { clientId: string; assigned: boolean; keepAlive: number; expiry: number },
  authenticated: Authenticated | undefined,
): Properties {
  const { options, broker } = conn;
  const props: Properties = {};
  const requested = packet.properties?.sessionExpiryInterval ?? 0;
  // MQTT 3.2.2.3.2: tell the client when the server uses another Session Expiry Interval.
  if (granted.expiry !== requested) props.sessionExpiryInterval = granted.expiry;
  if (granted.assigned) props.assignedClientIdentifier = granted.clientId;
  if (granted.keepAlive !== packet.keepAlive) props.serverKeepAlive = granted.keepAlive;
  if (options.receiveMaximum !== 65_535) props.receiveMaximum = options.receiveMaximum;
  if (broker.options.maximumQoS < 2) props.maximumQoS = broker.options.maximumQoS as 0 | 1;
  if (!broker.options.retainAvailable) props.retainAvailable = false;
  props.maximumPacketSize = options.maxPacketSize;
  if (options.topicAliasMaximum > 0) props.topicAliasMaximum = options.topicAliasMaximum;
  props.wildcardSubscriptionAvailable = broker.options.wildcardSubscriptionsAvailable;
  props.subscriptionIdentifierAvailable = broker.options.subscriptionIdentifiersAvailable;
  props.sharedSubscriptionAvailable = broker.options.sharedSubscriptionsAvailable;
  if (authenticated !== undefined) {
    // MQTT-4.12.0-5: a successful CONNACK names the method, with the server's final data.
    props.authenticationMethod = authenticated.method;
    if (authenticated.data !== undefined) props.authenticationData = authenticated.data;
  }
  if (packet.properties?.requestResponseInformation) {
    props.responseInformation = options.responseInformation.replaceAll('%c', granted.clientId);
  }
  return props;
}
