import { filterFault } from '../auth/topic-filter.js';
import {
  brokerCounts,
  clearRetained,
  connectedClient,
  connectedClients,
  deleteSession,
  disconnectClient,
  retainedMessages,
  sessionList,
  subscriptionList,
} from '../broker/inspect.js';
import { queueTotals } from '../observe/broker-metrics.js';
import { HttpError, isObject } from './app.js';
import { ADMIN_COOKIE, unauthorized } from './caller.js';
import type { HttpContext, HttpModule } from './context.js';
import { messageJson } from './message-json.js';
import { paginate } from './paging.js';

/**
 * The admin API: what the broker holds (clients, sessions, subscriptions, queues, retained
 * messages, counters) and the administrator's actions (kick, delete a session, purge a
 * queue, clear a retained message), plus the login that gives a browser the admin cookie.
 */
export const adminRoutes: HttpModule = (app, context) => {
  const { broker } = context;
  const admin = { auth: 'admin' } as const;

  // ---- login: the dashboard trades the token for an HttpOnly cookie its EventSource sends
  app.route(
    'POST',
    '/api/v1/login',
    async ({ json, send, listener }) => {
      const body = await json();
      const token = isObject(body) ? body['token'] : undefined;
      if (typeof token !== 'string') throw new HttpError(400, 'bad-request', 'expected {"token": "..."}');
      if (!app.auth.isAdminToken(token)) throw unauthorized('wrong admin token');
      send(204, undefined, { 'set-cookie': cookie(app.auth.adminCookieValue(), listener) });
    },
    { auth: 'none' },
  );
  app.route(
    'POST',
    '/api/v1/logout',
    ({ send, listener }) => send(204, undefined, { 'set-cookie': `${cookie('', listener)}; Max-Age=0` }),
    { auth: 'none' },
  );

  app.route('GET', '/api/v1/stats', ({ send }) => send(200, stats(context)), admin);

  // ---- clients: sessions with a connection, whatever its protocol
  app.route(
    'GET',
    '/api/v1/clients',
    ({ query, send }) =>
      send(
        200,
        paginate(connectedClients(broker, query.get('search') ?? ''), (c) => c.clientId, query),
      ),
    admin,
  );
  app.route(
    'GET',
    '/api/v1/clients/:id',
    ({ params, send }) => {
      const client = connectedClient(broker, params['id'] ?? '');
      if (client === undefined) throw notFound('client', params['id']);
      send(200, client);
    },
    admin,
  );
  app.route(
    'DELETE',
    '/api/v1/clients/:id',
    ({ params, send }) => {
      if (!disconnectClient(broker, params['id'] ?? '')) throw notFound('client', params['id']);
      send(204, undefined);
    },
    admin,
  );

  // ---- sessions
  app.route(
    'GET',
    '/api/v1/sessions',
    ({ query, send }) =>
      send(
        200,
        paginate(sessionList(broker, query.get('search') ?? ''), (s) => s.clientId, query),
      ),
    admin,
  );
  app.route(
    'DELETE',
    '/api/v1/sessions/:id',
    ({ params, send }) => {
      if (!deleteSession(broker, params['id'] ?? '')) throw notFound('session', params['id']);
      send(204, undefined);
    },
    admin,
  );

  // ---- subscriptions
  app.route(
    'GET',
    '/api/v1/subscriptions',
    ({ query, send }) => {
      const clientId = query.get('clientId');
      const filter = query.get('filter');
      const found = subscriptionList(broker, {
        ...(clientId === null || clientId === '' ? {} : { clientId }),
        ...(filter === null || filter === '' ? {} : { filter }),
      });
      send(
        200,
        paginate(found, (s) => `${s.clientId}\u0000${s.filter}`, query),
      );
    },
    admin,
  );

  // ---- point-to-point queues ($queue/<name>, STOMP /queue/<name>); a name with '/' is sent as %2F
  app.route(
    'GET',
    '/api/v1/queues',
    ({ query, send }) => {
      const search = query.get('search') ?? '';
      const found = broker.queues.list().filter((q) => search === '' || q.name.includes(search));
      send(
        200,
        paginate(found, (q) => q.name, query),
      );
    },
    admin,
  );
  app.route(
    'GET',
    '/api/v1/queues/:name',
    ({ params, send }) => {
      const queue = broker.queues.get(params['name'] ?? '');
      if (queue === undefined) throw notFound('queue', params['name']);
      send(200, queue);
    },
    admin,
  );
  app.route(
    'DELETE',
    '/api/v1/queues/:name/messages',
    ({ params, send }) => {
      const purged = broker.queues.purge(params['name'] ?? '');
      if (purged === undefined) throw notFound('queue', params['name']);
      send(200, { purged });
    },
    admin,
  );

  // ---- retained messages
  app.route(
    'GET',
    '/api/v1/retained',
    ({ query, send }) => {
      const filter = query.get('filter') || '#';
      const fault = filterFault(filter);
      if (fault !== undefined) throw new HttpError(400, 'bad-filter', `filter '${filter}': ${fault}`);
      const now = Date.now();
      const found = retainedMessages(broker, filter);
      const page = paginate(found, (m) => m.topic, query);
      send(200, { items: page.items.map((m) => messageJson(m, now)), next: page.next });
    },
    admin,
  );
  app.route(
    'DELETE',
    '/api/v1/retained/*topic',
    async ({ params, send }) => {
      if (!(await clearRetained(broker, params['topic'] ?? '')))
        throw notFound('retained message', params['topic']);
      send(204, undefined);
    },
    admin,
  );
};

/** The cumulative counters of `GET /api/v1/stats`; without metrics, only what the broker holds. */
function stats(context: HttpContext): Record<string, number> {
  const measured = context.metrics?.stats();
  if (measured !== undefined) return { ...measured };
  return {
    uptimeSeconds: Math.floor((Date.now() - context.startedAt) / 1000),
    ...brokerCounts(context.broker),
    ...queueTotals(context.broker),
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    droppedMessages: 0,
  };
}

function notFound(what: string, id: string | undefined): HttpError {
  return new HttpError(404, 'not-found', `no ${what} '${id ?? ''}'`);
}

/** The admin cookie: HttpOnly (scripts never see it), same-site only, Secure on HTTPS. */
function cookie(value: string, listener: string): string {
  const secure = listener.startsWith('https:') ? '; Secure' : '';
  return `${ADMIN_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict${secure}`;
}
