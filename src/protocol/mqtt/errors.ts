import type { SubscribeRefusal } from '../../broker/broker.js';
import type { ConnectRefusal, ServerDisconnectReason } from '../../broker/hooks.js';
import {
  ConnectReturnCode,
  type ProtocolVersion,
  ReasonCode,
  SubackFailure311,
} from '../../codec/mqtt/index.js';

/**
 * The one place where failures become MQTT reason and return codes. Handlers throw a
 * ProtocolViolation (or the codec throws an MqttCodecError); the connection answers with the
 * code and closes (MQTT 4.13).
 */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
  constructor(
    /** The MQTT 5 reason code to send in CONNACK or DISCONNECT. */
    readonly reasonCode: number,
    message: string,
  ) {
    super(message);
  }
}

const CONNECT_REFUSALS: Record<ConnectRefusal, number> = {
  'bad-credentials': ReasonCode.BadUserNameOrPassword,
  'not-authorized': ReasonCode.NotAuthorized,
  banned: ReasonCode.Banned,
  'server-busy': ReasonCode.ServerBusy,
  'server-unavailable': ReasonCode.ServerUnavailable,
  'client-id-invalid': ReasonCode.ClientIdentifierNotValid,
};

export function connectRefusalCode(refusal: ConnectRefusal): number {
  return CONNECT_REFUSALS[refusal];
}

/** A 5.0 CONNACK reason code as the nearest 3.x return code (MQTT 3.1.1 table 3.1). */
export function connackCode(reasonCode: number, version: ProtocolVersion): number {
  if (version === 5 || reasonCode === 0) return reasonCode;
  switch (reasonCode) {
    case ReasonCode.UnsupportedProtocolVersion:
      return ConnectReturnCode.UnacceptableProtocolVersion;
    case ReasonCode.ClientIdentifierNotValid:
      return ConnectReturnCode.IdentifierRejected;
    case ReasonCode.BadUserNameOrPassword:
      return ConnectReturnCode.BadUserNameOrPassword;
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
      return ConnectReturnCode.NotAuthorized;
    default:
      return ConnectReturnCode.ServerUnavailable;
  }
}

const SERVER_DISCONNECTS: Record<ServerDisconnectReason, number> = {
  'session-taken-over': ReasonCode.SessionTakenOver,
  'server-shutting-down': ReasonCode.ServerShuttingDown,
  'administrative-action': ReasonCode.AdministrativeAction,
  'keep-alive-timeout': ReasonCode.KeepAliveTimeout,
  'protocol-error': ReasonCode.ProtocolError,
};

export function serverDisconnectCode(reason: ServerDisconnectReason): number {
  return SERVER_DISCONNECTS[reason];
}

const SUBSCRIBE_REFUSALS: Record<SubscribeRefusal, number> = {
  'not-authorized': ReasonCode.NotAuthorized,
  'wildcards-not-supported': ReasonCode.WildcardSubscriptionsNotSupported,
  'shared-not-supported': ReasonCode.SharedSubscriptionsNotSupported,
  'quota-exceeded': ReasonCode.QuotaExceeded,
  unspecified: ReasonCode.UnspecifiedError,
};

export function subscribeFailureCode(refusal: SubscribeRefusal, version: ProtocolVersion): number {
  return version < 5 ? SubackFailure311 : SUBSCRIBE_REFUSALS[refusal];
}
