import type { Broker } from '../broker/broker.js';
import type { ClientInfo } from '../broker/hooks.js';
import { DEFAULT_MQTT_OPTIONS } from '../protocol/mqtt/options.js';
import type { HttpApp, Principal, RouteContext } from './app.js';
import { forbidden } from './caller.js';
import type { HttpModule } from './context.js';
import { callerClientInfo } from './http-client.js';
import { HttpError } from './json.js';
import { badPublish, type PublishRules, parsePublishBody } from './publish-body.js';

/**
 * Publishing over HTTP: `POST /api/v1/publish` takes one message, `POST /api/v1/publish/batch`
 * an array of them. A message goes through the same checks as an MQTT PUBLISH (topic rules,
 * Maximum QoS, Retain Available, the publish ACL) and the answer comes only once the broker
 * has routed it and the store has kept what must survive (retained messages, QoS 1/2 copies
 * for persistent sessions), as a PUBACK would.
 */

/** Most messages in one batch request (the body size cap applies too). */
export const MAX_BATCH_ITEMS = 1000;

/** An item's outcome in a batch answer. */
export type BatchResult =
  | { readonly ok: true }
  | { readonly error: { readonly code: string; readonly message: string } };

/** Registers the publish routes. */
export const pushRoutes: HttpModule = (app, context) => {
  const { broker } = context;
  app.route(
    'POST',
    '/api/v1/publish',
    async (route) => {
      const body = await route.json();
      const { persisted } = await publishItem(app, broker, route.principal, callerClientInfo(route), body);
      await durable(persisted);
      route.send(200, { ok: true });
    },
    { auth: 'caller' },
  );
  app.route('POST', '/api/v1/publish/batch', (route) => publishBatch(app, broker, route), { auth: 'caller' });
};

/** The batch: each item checked and published in order; one bad item does not stop the others. */
async function publishBatch(app: HttpApp, broker: Broker, route: RouteContext): Promise<void> {
  const body = await route.json();
  if (!Array.isArray(body)) throw badPublish('a batch is a JSON array of publish objects');
  if (body.length > MAX_BATCH_ITEMS) throw badPublish(`a batch holds at most ${MAX_BATCH_ITEMS} messages`);
  const client = callerClientInfo(route);
  // Each outcome settles into a result at once: a store failure is never an unhandled rejection.
  const outcomes: Promise<BatchResult>[] = [];
  for (const item of body) {
    try {
      const { persisted } = await publishItem(app, broker, route.principal, client, item);
      outcomes.push(durable(persisted).then(() => ({ ok: true }) as const, errorResult));
    } catch (error) {
      outcomes.push(Promise.resolve(errorResult(error)));
    }
  }
  const results = await Promise.all(outcomes);
  route.send(200, { results });
}

/** An item's error as the batch answer shows it; anything but an HttpError is the server's fault. */
function errorResult(error: unknown): BatchResult {
  if (error instanceof HttpError) return { error: { code: error.code, message: error.message } };
  throw error;
}

/**
 * Checks, authorizes and publishes one message as `client`; returns the store writes to wait
 * for (wrapped: an async function would wait for them itself). Throws a 400 (bad message), 403 (denied) or 503 (broker not running) HttpError.
 */
async function publishItem(
  app: HttpApp,
  broker: Broker,
  principal: Principal,
  client: ClientInfo,
  body: unknown,
): Promise<{ persisted: Promise<void> | undefined }> {
  const init = parsePublishBody(body, rulesOf(broker));
  if (!app.canPublish(principal, init.topic)) throw forbidden(`not authorized to publish to '${init.topic}'`);
  const message = broker.createMessage({ ...init, origin: client.clientId });
  // The broker's own hook too, for an embedding application's rules (the administrator bypasses them).
  if (principal.kind !== 'admin' && !(await broker.authorizePublish(client, message)))
    throw forbidden(`not authorized to publish to '${init.topic}'`);
  if (!broker.running) throw new HttpError(503, 'unavailable', 'the broker is not running');
  return { persisted: broker.publish(message, client).persisted };
}

/** Waits for the store; its failure is the broker's, not the caller's: 503, try again. */
async function durable(persisted: Promise<void> | undefined): Promise<void> {
  if (persisted === undefined) return;
  try {
    await persisted;
  } catch {
    throw new HttpError(503, 'store-failed', 'the store did not accept the message; try again');
  }
}

/** What the broker accepts; topic limits are the MQTT listeners' defaults. */
function rulesOf(broker: Broker): PublishRules {
  return {
    maximumQoS: broker.options.maximumQoS,
    retainAvailable: broker.options.retainAvailable,
    maxTopicLength: DEFAULT_MQTT_OPTIONS.maxTopicLength,
    maxTopicLevels: DEFAULT_MQTT_OPTIONS.maxTopicLevels,
  };
}
