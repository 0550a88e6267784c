import { readFile } from 'node:fs/promises';
import { boolean, integer, section, string } from './fields.js';

/** The HTTP API of `http://` and `https://` listeners: who administers it, metrics access, SSE. */
export interface HttpConfig {
  /** The administrator's token; empty: none (unless `adminTokenFile` gives one). */
  adminToken: string;
  /** A file holding the administrator's token (first line), kept out of the config file. */
  adminTokenFile: string;
  metricsAuth: boolean;
  sseKeepAlive: number;
  sseReplayWindow: number;
}

/** The `http` section of the config file. */
export const HTTP = section<HttpConfig>(
  'HTTP API (admin, push, SSE, metrics, dashboard) of http(s):// listeners',
  {
    adminToken: string('', 'Administrator token (Bearer or dashboard login); empty: no administrator'),
    adminTokenFile: string(
      '',
      'File whose first line is the administrator token (read at start and on SIGHUP)',
    ),
    metricsAuth: boolean(false, 'Whether GET /metrics requires the administrator token'),
    sseKeepAlive: integer(1, 3600, 15, 'Seconds between keep-alive comments on Server-Sent Events streams'),
    sseReplayWindow: integer(
      0,
      86_400,
      60,
      'Seconds of messages replayed to an SSE client resuming with Last-Event-ID',
    ),
  },
);

/**
 * The administrator token the config gives: `adminToken`, else the first line of
 * `adminTokenFile`; undefined when neither is set. A file that cannot be read throws.
 */
export async function readAdminToken(config: Pick<HttpConfig, 'adminToken' | 'adminTokenFile'>) {
  if (config.adminToken !== '') return config.adminToken;
  if (config.adminTokenFile === '') return undefined;
  const text = await readFile(config.adminTokenFile, 'utf8');
  const token = text.split(/\r?\n/, 1)[0]?.trim() ?? '';
  if (token === '') throw new Error(`http.adminTokenFile ${config.adminTokenFile} holds no token`);
  return token;
}
