export { DurableStore, type DurableStoreOptions, StoreError } from './durable/index.js';
export { MemoryStore } from './memory/memory-store.js';
export type {
  SessionRecord,
  Store,
  StoredDelivery,
  StoredSession,
  StoredState,
  StoredWill,
} from './store.js';
