import type { HttpModule } from './context.js';

/**
 * Liveness and readiness for orchestrators (Kubernetes probes, load balancers): no
 * authentication, tiny answers.
 */
export const healthRoutes: HttpModule = (app, context) => {
  // The process answers: it is alive, whatever the broker is doing.
  app.route('GET', '/healthz', ({ send }) => send(200, { status: 'ok' }), { auth: 'none' });
  // Traffic should come only once the store is open and every listener is up, and stop while stopping.
  app.route(
    'GET',
    '/readyz',
    ({ send }) => {
      const state = context.readiness();
      send(state === 'ready' ? 200 : 503, { status: state });
    },
    { auth: 'none' },
  );
};
