import { until } from '../helpers/broker.js';

/**
 * A Server-Sent Events reader over Node's fetch, parsing the stream as the EventSource
 * specification does: fields per line, events at blank lines, comments recorded apart.
 */

/** One dispatched event (or an id-only block, which only moves the last event id). */
export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/** The `data` of a `message` event, as the broker writes it. */
export interface MessageData {
  topic: string;
  payload: string;
  encoding: 'utf8' | 'base64';
  qos: number;
  retain: boolean;
  properties: Record<string, unknown>;
}

/** An open stream: what came so far, and the last event id as an EventSource would keep it. */
export interface SseReader {
  readonly status: number;
  readonly headers: Headers;
  /** Events with data, in order. */
  readonly events: SseEvent[];
  /** Comment lines without the leading ':'. */
  readonly comments: string[];
  /** The last event id seen (id-only blocks included). */
  readonly lastEventId: () => string | undefined;
  /** Resolves when the server ended the stream. */
  readonly ended: Promise<void>;
  /** The `message` events' data, parsed. */
  messages(): (MessageData & { id: string | undefined })[];
  /** Waits until a message event on `topic` has come. */
  untilTopic(topic: string): Promise<void>;
  /** Aborts the request (the client goes away). */
  close(): void;
}

/** Opens `url` as an event stream; resolves once the answer's headers came (the stream is subscribed). */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let lastId: string | undefined;
  const ended = (async () => {
    if (response.body === null) return;
    const decoder = new TextDecoder();
    let buffer = '';
    let id: string | undefined;
    let event = '';
    let data: string[] = [];
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let nl = buffer.search(/\r\n|\r|\n/); nl !== -1; nl = buffer.search(/\r\n|\r|\n/)) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (id !== undefined) lastId = id;
            if (data.length > 0) events.push({ id, event: event || 'message', data: data.join('\n') });
            id = undefined;
            event = '';
            data = [];
          } else if (line.startsWith(':')) {
            comments.push(line.slice(1).trim());
          } else {
            const colon = line.indexOf(':');
            const field = colon === -1 ? line : line.slice(0, colon);
            const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') id = value;
            else if (field === 'event') event = value;
            else if (field === 'data') data.push(value);
          }
        }
      }
    } catch {
      // Aborted by the test: the stream is over.
    }
  })();
  const reader: SseReader = {
    status: response.status,
    headers: response.headers,
    events,
    comments,
    lastEventId: () => lastId,
    ended,
    messages: () =>
      events
        .filter((e) => e.event === 'message')
        .map((e) => ({ ...(JSON.parse(e.data) as MessageData), id: e.id })),
    untilTopic: (topic) =>
      until(() => reader.messages().some((m) => m.topic === topic), `an event on ${topic}`),
    close: () => abort.abort(),
  };
  return reader;
}
