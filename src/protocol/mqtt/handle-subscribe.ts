import type { SubscribeRequest } from '../../broker/broker.js';
import { parseSharedFilter } from '../../broker/routing.js';
import {
  ReasonCode,
  SubackFailure311,
  type SubscribePacket,
  sharedFilterFault,
  type UnsubscribePacket,
} from '../../codec/mqtt/index.js';
import { topicFault } from '../../limits/topic-limits.js';
import type { MqttConnection } from './connection.js';
import { ProtocolViolation, subscribeFailureCode } from './errors.js';

/**
 * SUBSCRIBE (MQTT 3.8.4): add each subscription through the broker (which authorizes it),
 * answer SUBACK with the granted QoS or a failure code per filter, then send the retained
 * messages the subscriptions ask for: after the SUBACK, so the client knows them for what they are.
 */
export async function handleSubscribe(conn: MqttConnection, packet: SubscribePacket): Promise<void> {
  const session = conn.session!;
  const subscriptionId = packet.properties?.subscriptionIdentifiers?.[0];
  // MQTT 3.2.2.3.12: an identifier the server said it does not support ends the connection with 0xA1.
  if (subscriptionId !== undefined && !conn.broker.options.subscriptionIdentifiersAvailable) {
    throw new ProtocolViolation(
      ReasonCode.SubscriptionIdentifiersNotSupported,
      'Subscription Identifiers are not supported',
    );
  }
  const codes: number[] = new Array(packet.subscriptions.length);
  const requests: SubscribeRequest[] = [];
  const positions: number[] = [];
  const quota = subscriptionQuota(conn);
  packet.subscriptions.forEach((s, i) => {
    const refusal = quotaRefusal(conn, s.topicFilter, quota);
    if (refusal !== undefined) {
      codes[i] = refusal;
      return;
    }
    // 3.x clients may use $share too (as most brokers allow); the 5.0 codec already checked its form.
    if (
      conn.version < 5 &&
      parseSharedFilter(s.topicFilter) !== undefined &&
      sharedFilterFault(s.topicFilter)
    ) {
      codes[i] = SubackFailure311;
      return;
    }
    requests.push({
      filter: s.topicFilter,
      options: {
        qos: s.qos,
        noLocal: s.noLocal ?? false,
        retainAsPublished: s.retainAsPublished ?? false,
        retainHandling: s.retainHandling ?? 0,
        ...(subscriptionId === undefined ? {} : { subscriptionId }),
      },
    });
    positions.push(i);
  });
  const results = await conn.broker.subscribe(session, requests);
  if (conn.closed) return;
  results.forEach((result, j) => {
    codes[positions[j]!] = result.ok ? result.qos : subscribeFailureCode(result.refusal, conn.version);
  });
  conn.send({ type: 'suback', packetId: packet.packetId, reasonCodes: codes });
  conn.broker.deliverRetained(session, results);
}

/** New filters one SUBSCRIBE may still add, and those it added so far (a filter repeated counts once). */
interface SubscriptionQuota {
  left: number;
  readonly added: Set<string>;
}

function subscriptionQuota(conn: MqttConnection): SubscriptionQuota {
  const max = conn.options.maxSubscriptionsPerClient;
  const left = max > 0 ? max - conn.session!.subscriptions.size : Number.POSITIVE_INFINITY;
  return { left, added: new Set() };
}

/**
 * The SUBACK code refusing a filter over the topic limits (0x8F Topic Filter invalid) or beyond
 * the subscriptions a client may hold (0x97 Quota exceeded); 3.1.1 has only 0x80. Replacing a
 * subscription the session holds is always allowed (MQTT-3.8.4-3). Undefined: within limits.
 */
function quotaRefusal(conn: MqttConnection, filter: string, quota: SubscriptionQuota): number | undefined {
  const { maxTopicLength, maxTopicLevels } = conn.options;
  const v5 = conn.version === 5;
  // The levels of a shared subscription are those of its filter, not of the `$share/name/` prefix.
  const topicFilter = parseSharedFilter(filter)?.filter ?? filter;
  if (
    topicFault(filter, maxTopicLength, Number.POSITIVE_INFINITY) !== undefined ||
    topicFault(topicFilter, Number.POSITIVE_INFINITY, maxTopicLevels) !== undefined
  ) {
    return v5 ? ReasonCode.TopicFilterInvalid : SubackFailure311;
  }
  if (conn.session!.subscriptions.has(filter) || quota.added.has(filter)) return undefined;
  if (quota.left <= 0) return v5 ? ReasonCode.QuotaExceeded : SubackFailure311;
  quota.left--;
  quota.added.add(filter);
  return undefined;
}

/** UNSUBSCRIBE (MQTT 3.10.4): remove each filter; 5.0 says which did not exist (0x11). */
export function handleUnsubscribe(conn: MqttConnection, packet: UnsubscribePacket): void {
  const removed = conn.broker.unsubscribe(conn.session!, packet.topicFilters);
  const reasonCodes =
    conn.version === 5 ? removed.map((r) => (r ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted)) : [];
  conn.send({ type: 'unsuback', packetId: packet.packetId, reasonCodes });
}
