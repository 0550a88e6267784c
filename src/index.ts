/** Cicada's public API: create a broker, listen, hook in, observe. */

export type { BrokerOptions, MessageInit, PublishResult, SubscribeRequest } from './broker/broker.js';
export type {
  AuthConversation,
  AuthenticationRequest,
  AuthenticationResult,
  AuthStep,
  BrokerEvents,
  BrokerHooks,
  CertificateInfo,
  ClientInfo,
  ConnectRefusal,
  DeliveryGuard,
  DropReason,
} from './broker/hooks.js';
export type { Message, MessageProperties, QoS, SubscriptionOptions } from './broker/message.js';
export type { Store } from './broker/store.js';
export type { ConnectionGateOptions, LimitsOptions } from './limits/index.js';
export { Limits } from './limits/index.js';
export type { MqttOptions } from './protocol/mqtt/options.js';
export type { StompOptions } from './protocol/stomp/options.js';
export {
  Cicada,
  type CicadaListenOptions,
  type CicadaOptions,
  createBroker,
  type PublishInit,
} from './server.js';
export { DurableStore, type DurableStoreOptions, StoreError } from './store/durable/index.js';
export { MemoryStore } from './store/memory/memory-store.js';
export type { Listener, ListenOptions, TlsListenOptions } from './transport/transport.js';
