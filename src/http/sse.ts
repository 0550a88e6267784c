import { randomBytes } from 'node:crypto';
import { filterFault } from '../auth/topic-filter.js';
import type { SubscribeRequest } from '../broker/broker.js';
import type { DeliveryGuard } from '../broker/hooks.js';
import { describeTopicFault, topicFault } from '../limits/topic-limits.js';
import { DEFAULT_MQTT_OPTIONS } from '../protocol/mqtt/options.js';
import type { RouteContext } from './app.js';
import { forbidden } from './caller.js';
import type { HttpContext, HttpModule } from './context.js';
import { callerClientInfo } from './http-client.js';
import { HttpError } from './json.js';
import { SseJournal } from './sse-journal.js';
import { SseStream } from './sse-stream.js';

/**
 * `GET /api/v1/sse?filter=a/+/b&filter=...`: matching messages as Server-Sent Events, for a
 * browser's EventSource. Each stream is a clean, non-persistent broker session named
 * `sse-<random>`, subscribed at QoS 0 to its filters once the subscribe ACL allowed each one
 * (a denied filter is a 403 before the stream starts). A new stream first gets the retained
 * messages of its filters (without ids), then live messages (`id: <n>`). A stream that sends
 * `Last-Event-ID` (or `?lastEventId=`) within the replay window gets the messages it missed
 * instead, then live ones; an id outside the window (history lost, or another run's) starts
 * the stream afresh. Keep-alive comments come from one timer shared by all streams.
 */

/** Most filters one stream may ask for. */
export const MAX_SSE_FILTERS = 32;
/** Most streams open at once per broker; more are answered 503. */
export const MAX_SSE_STREAMS = 10_000;
/** Most messages kept for replay, whatever the window. */
export const MAX_REPLAY_MESSAGES = 10_000;
/** Most topic and payload bytes kept for replay, whatever the window. */
export const MAX_REPLAY_BYTES = 16 * 1024 * 1024;
/** Unsent bytes past which a stream is a slow consumer (as MQTT's outboundSoftLimit default). */
export const SSE_SOFT_LIMIT = 64 * 1024;

/** The headers of an event stream. */
const STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  // Reverse proxies (nginx) must pass events on as they come.
  'x-accel-buffering': 'no',
} as const;

/** Registers the SSE route. */
export const sseRoutes: HttpModule = (app, context) => {
  const journal = new SseJournal(
    context.options.sseReplayWindow * 1000,
    MAX_REPLAY_MESSAGES,
    MAX_REPLAY_BYTES,
  );
  const streams = new KeepAlive(context.options.sseKeepAlive * 1000);
  app.route(
    'GET',
    '/api/v1/sse',
    async (route) => {
      const filters = readFilters(route.query.getAll('filter'));
      const decisions = filters.map((filter) => {
        const decision = app.canSubscribe(route.principal, filter);
        if (decision === false) throw forbidden(`not authorized to subscribe to '${filter}'`);
        return decision;
      });
      if (streams.size >= MAX_SSE_STREAMS)
        throw new HttpError(503, 'unavailable', 'too many event streams are open; try again later');
      // HEAD (routed here as GET) learns whether a stream would open, without opening one.
      if (route.request.method === 'HEAD') {
        route.response.writeHead(200, STREAM_HEADERS).end();
        return;
      }
      await openStream(route, context, journal, streams, filters, decisions);
    },
    { auth: 'caller' },
  );
};

/** Connects the stream's session, subscribes it, then answers 200 and starts writing. */
async function openStream(
  route: RouteContext,
  context: HttpContext,
  journal: SseJournal,
  streams: KeepAlive,
  filters: readonly string[],
  decisions: readonly (boolean | DeliveryGuard)[],
): Promise<void> {
  const { broker } = context;
  journal.attach(broker);
  const clientId = `sse-${randomBytes(12).toString('base64url')}`;
  const stream = new SseStream(
    broker,
    journal,
    route.response,
    filters.map((filter, i) => {
      const decision = decisions[i]!;
      return {
        levels: filter.split('/'),
        ...(decision === true ? {} : { guard: decision as DeliveryGuard }),
      };
    }),
    SSE_SOFT_LIMIT,
    (ended) => streams.delete(ended),
  );
  // Messages up to here were published before the subscription: not this stream's (bar replay).
  const marker = journal.newest;
  const client = callerClientInfo(route, clientId);
  const outcome = await broker.connect(
    { clientId, clean: true, expiryInterval: 0, client, authenticated: true },
    stream,
  );
  if (!outcome.ok) throw new HttpError(503, 'unavailable', 'the broker is not accepting clients');
  if (!stream.attach(outcome.session)) return;
  const requests: SubscribeRequest[] = filters.map((filter, i) => ({
    filter,
    options: { qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
    authorization: decisions[i]!,
  }));
  let results: Awaited<ReturnType<typeof broker.subscribe>>;
  try {
    results = await broker.subscribe(outcome.session, requests);
    const refused = results.find((r) => !r.ok);
    if (refused !== undefined) throw badFilter(`'${refused.request.filter}' is not supported by this broker`);
  } catch (error) {
    stream.finish('refused');
    throw error;
  }
  // The client left while the session was being set up.
  if (stream.closed) return;
  streams.add(stream);
  const lastEventId = readLastEventId(route);
  const resume = lastEventId !== undefined && journal.covers(lastEventId);
  route.response.writeHead(200, STREAM_HEADERS);
  if (resume) {
    stream.start(journal.newest, lastEventId);
  } else {
    stream.start(marker, undefined);
    broker.deliverRetained(outcome.session, results);
  }
}

/** The filters of the query: at least one, valid as in an MQTT SUBSCRIBE, no shared ones. */
function readFilters(values: readonly string[]): string[] {
  const filters = [...new Set(values)];
  if (filters.length === 0) throw badFilter("at least one 'filter' query parameter is needed");
  if (filters.length > MAX_SSE_FILTERS) throw badFilter(`at most ${MAX_SSE_FILTERS} filters per stream`);
  const { maxTopicLength, maxTopicLevels } = DEFAULT_MQTT_OPTIONS;
  for (const filter of filters) {
    const fault = filterFault(filter);
    if (fault !== undefined) throw badFilter(`'${filter}': ${fault}`);
    // A shared subscription would hand each message to one stream of a group, which the replay cannot follow.
    if (filter.startsWith('$share/')) throw badFilter('shared subscriptions are not offered over SSE');
    const limit = topicFault(filter, maxTopicLength, maxTopicLevels);
    if (limit !== undefined)
      throw badFilter(`'${filter}': ${describeTopicFault(limit, maxTopicLength, maxTopicLevels)}`);
  }
  return filters;
}

/** The Last-Event-ID header (an EventSource reconnecting) or `lastEventId` query parameter (a new page). */
function readLastEventId(route: RouteContext): number | undefined {
  const header = route.request.headers['last-event-id'];
  const value =
    (typeof header === 'string' ? header : undefined) ?? route.query.get('lastEventId') ?? undefined;
  // Anything else is not an id this broker issued: the stream starts afresh.
  if (value === undefined || !/^\d{1,16}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

function badFilter(message: string): HttpError {
  return new HttpError(400, 'bad-filter', message);
}

/** The open streams and the one timer that sends their keep-alive comments (running while any is open). */
class KeepAlive {
  private readonly streams = new Set<SseStream>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  get size(): number {
    return this.streams.size;
  }

  add(stream: SseStream): void {
    this.streams.add(stream);
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      for (const open of [...this.streams]) open.tick();
    }, this.intervalMs);
    // Open streams alone do not keep the process alive.
    this.timer.unref();
  }

  delete(stream: SseStream): void {
    this.streams.delete(stream);
    if (this.streams.size > 0 || this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
