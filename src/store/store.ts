/**
 * The store port is defined by the broker core (which depends on nothing below it);
 * store engines implement it. Re-exported here for the engines' convenience.
 */
export type * from '../broker/store.js';
