import { adminRoutes } from './admin.js';
import { HttpApp } from './app.js';
import type { HttpContext, HttpModule } from './context.js';
import { dashboardRoutes } from './dashboard.js';
import { healthRoutes } from './health.js';
import { metricsRoutes } from './metrics-route.js';
import { openApiRoutes } from './openapi.js';
import { pushRoutes } from './push.js';
import { sseRoutes } from './sse.js';

export type { HttpContext, HttpModule, HttpOptions, Readiness, ResolvedHttpOptions } from './context.js';
export { DEFAULT_HTTP_OPTIONS } from './context.js';

/**
 * The extension point of the HTTP API: each concern (health, admin, push, SSE, metrics,
 * dashboard) is an `HttpModule` that registers its routes on the app, given what the broker
 * offers (`HttpContext`). To add one, write `src/http/<concern>.ts` exporting an
 * `HttpModule` and add it to `HTTP_MODULES` below.
 */

/** Every module of the HTTP API, in registration order. */
export const HTTP_MODULES: readonly HttpModule[] = [
  healthRoutes,
  adminRoutes,
  openApiRoutes,
  metricsRoutes,
  dashboardRoutes,
  pushRoutes,
  sseRoutes,
];

/** Builds the HTTP API of a broker: the app with every module's routes. */
export function createHttpApp(context: HttpContext, modules: readonly HttpModule[] = HTTP_MODULES): HttpApp {
  const { adminToken, accessControl, maxBodyBytes } = context.options;
  const app = new HttpApp({
    ...(adminToken === undefined ? {} : { adminToken }),
    ...(accessControl === undefined ? {} : { accessControl }),
    ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }),
  });
  for (const register of modules) register(app, context);
  return app;
}
