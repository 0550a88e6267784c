import type { Logger } from '../observe/log.js';
import type { Cicada } from '../server.js';

/**
 * The broker's events as log lines: connects and disconnects at info, subscription and
 * delivery details at debug. Debug events are listened to whatever the level, since a reload
 * may switch debug on.
 */
export function logBrokerEvents(broker: Cicada, log: Logger): void {
  broker.on('clientConnected', (client, sessionPresent) =>
    log.info('client connected', {
      clientId: client.clientId,
      username: client.username,
      protocolVersion: client.protocolVersion,
      remoteAddress: client.remoteAddress,
      remotePort: client.remotePort,
      listener: client.listener,
      keepAlive: client.keepAlive,
      sessionPresent,
    }),
  );
  broker.on('clientDisconnected', (client, reason) =>
    log.info('client disconnected', { clientId: client.clientId, reason }),
  );
  broker.on('subscribed', (client, filter, options) => {
    if (log.enabled('debug'))
      log.debug('subscribed', { clientId: client.clientId, filter, qos: options.qos });
  });
  broker.on('unsubscribed', (client, filter) => {
    if (log.enabled('debug')) log.debug('unsubscribed', { clientId: client.clientId, filter });
  });
  broker.on('dropped', (message, clientId, reason) => {
    if (log.enabled('debug')) log.debug('message dropped', { clientId, topic: message.topic, reason });
  });
  broker.on('sessionExpired', (clientId) => {
    if (log.enabled('debug')) log.debug('session expired', { clientId });
  });
}
