export {
  ConnectionGate,
  type ConnectionGateDeps,
  type ConnectionGateOptions,
  DEFAULT_CONNECTION_GATE_OPTIONS,
  type GateDecision,
  type GateRefusal,
} from './connection-gate.js';
export { DEFAULT_LIMITS_OPTIONS, Limits, type LimitsDeps, type LimitsOptions } from './limits.js';
export {
  DEFAULT_MEMORY_WATCH_OPTIONS,
  type MemorySource,
  type MemoryState,
  MemoryWatch,
  type MemoryWatchEvents,
  type MemoryWatchOptions,
  memoryLimit,
  residentSetSize,
} from './memory-watch.js';
export { type PublishRates, PublishThrottle } from './publish-throttle.js';
export { TokenBucket } from './token-bucket.js';
export { describeTopicFault, type TopicFault, topicFault } from './topic-limits.js';
