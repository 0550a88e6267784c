import type { IncomingMessage, ServerResponse } from 'node:http';

/** The largest JSON request body accepted by default, in bytes. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * An error answered as JSON `{"error": {"code", "message"}}` with its HTTP status; route
 * handlers throw it and the app writes it.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string | string[]>> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The JSON error body of the contract. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** Writes `value` as a JSON response (no body for 204). */
export function sendJson(
  response: ServerResponse,
  status: number,
  value: unknown,
  headers: Readonly<Record<string, string | string[]>> = {},
): void {
  if (status === 204) {
    response.writeHead(204, { 'cache-control': 'no-store', ...headers });
    response.end();
    return;
  }
  const body = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // Answers describe live broker state: never cache them.
    'cache-control': 'no-store',
    ...headers,
  });
  response.end(body);
}

/** Writes an error as `{"error": {"code", "message"}}`. */
export function sendError(response: ServerResponse, error: HttpError): void {
  const body: ErrorBody = { error: { code: error.code, message: error.message } };
  const headers = fromPageScript(response.req) ? withoutBasicChallenge(error.headers) : error.headers;
  sendJson(response, error.status, body, headers);
}

/**
 * Whether a page's script (fetch, XHR, EventSource) made the request rather than a navigation
 * or a non-browser client: browsers send `Sec-Fetch-Dest: empty` for those (Node's fetch sends
 * no Sec-Fetch-Dest).
 */
function fromPageScript(request: IncomingMessage | undefined): boolean {
  return request?.headers['sec-fetch-dest'] === 'empty' || request?.headers['x-requested-with'] !== undefined;
}

/**
 * A Basic challenge on a script's 401 makes the browser stall the request behind its own
 * password dialog; the dashboard shows its own sign-in instead, so scripts get only Bearer.
 */
function withoutBasicChallenge(
  headers: Readonly<Record<string, string | string[]>>,
): Readonly<Record<string, string | string[]>> {
  const challenges = headers['www-authenticate'];
  if (challenges === undefined) return headers;
  const kept = (Array.isArray(challenges) ? challenges : [challenges]).filter((c) => !/^basic\b/i.test(c));
  return { ...headers, 'www-authenticate': kept };
}

/**
 * Reads the request body and parses it as JSON. A body over `maxBytes` is a 413 (refused
 * from Content-Length before reading when it says so), invalid JSON a 400.
 */
export async function readJsonBody(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(request.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'bad-json', 'the request body is empty; JSON expected');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new HttpError(400, 'bad-json', `the request body is not valid JSON: ${reason}`);
  }
}

function tooLarge(maxBytes: number): HttpError {
  // The rest of the body is not read: the connection closes after the answer.
  return new HttpError(413, 'body-too-large', `the request body exceeds ${maxBytes} bytes`, {
    connection: 'close',
  });
}

/** A plain JSON object (not an array, not null), for validating request bodies. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
