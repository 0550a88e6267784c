export { StoreError, type StoreErrorCode } from './errors.js';
export { DurableStore, type DurableStoreOptions, type DurableStoreStats } from './lmdb-store.js';
