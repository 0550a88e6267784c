import { integer, section } from './fields.js';

/** The `$SYS/broker/...` topics. */
export interface SysConfig {
  /** Seconds between updates; 0 switches them off. */
  interval: number;
}

/** Settings of the `$SYS` topics (the Prometheus metrics need none: they are served on `http://` listeners). */
export const SYS = section<SysConfig>('$SYS/broker/... topics (retained; the ACL decides who reads them)', {
  interval: integer(0, 86_400, 10, 'Seconds between $SYS updates (0: off)'),
});
