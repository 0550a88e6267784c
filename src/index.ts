/** Cicada's public API: create a broker, listen, hook in, observe. */

export type { BrokerOptions, MessageInit, PublishResult, SubscribeRequest } from './broker/broker.js';
export type {
  AuthenticationRequest,
  AuthenticationResult,
  BrokerEvents,
  BrokerHooks,
  ClientInfo,
  ConnectRefusal,
  DropReason,
} from './broker/hooks.js';
export type { Message, MessageProperties, QoS, SubscriptionOptions } from './broker/message.js';
export type { Store } from './broker/store.js';
export type { MqttOptions } from './protocol/mqtt/options.js';
export { Cicada, type CicadaOptions, createBroker, type PublishInit } from './server.js';
export { DurableStore, type DurableStoreOptions, StoreError } from './store/durable/index.js';
export { MemoryStore } from './store/memory/memory-store.js';
export type { Listener } from './transport/transport.js';
