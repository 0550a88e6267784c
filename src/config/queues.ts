import type { QueueOptions } from '../broker/queues.js';
import { DEFAULT_QUEUE_OPTIONS, queueNameFault } from '../broker/queues.js';
import { integer, section } from './fields.js';

const DEFAULTS = DEFAULT_QUEUE_OPTIONS;

/** Point-to-point queues (MQTT `$queue/<name>`, STOMP `/queue/<name>`). */
export const QUEUES = section<QueueOptions>('Point-to-point queues ($queue/<name>, STOMP /queue/<name>)', {
  maxMessages: integer(
    1,
    Number.MAX_SAFE_INTEGER,
    DEFAULTS.maxMessages,
    'Most messages one queue holds, waiting or unacknowledged (beyond: refused)',
  ),
  maxRedeliveries: integer(
    0,
    65_534,
    DEFAULTS.maxRedeliveries,
    'Redeliveries of a message before it goes to the dead-letter queue',
  ),
  deadLetterPrefix: {
    kind: 'string',
    default: DEFAULTS.deadLetterPrefix,
    description: "Prefix naming a queue's dead-letter queue (orders: DLQ.orders)",
    // An empty prefix would name every queue its own dead-letter queue.
    check: (value) => (queueNameFault(value) === undefined ? undefined : 'a non-empty name without + or #'),
  },
  defaultPrefetch: integer(
    1,
    65_535,
    DEFAULTS.defaultPrefetch,
    'Unacknowledged messages per consumer unless it asks for another number',
  ),
  maxQueues: integer(
    1,
    Number.MAX_SAFE_INTEGER,
    DEFAULTS.maxQueues,
    'Most queues; a publish or subscription that would make another is refused (dead-letter queues aside)',
  ),
});
