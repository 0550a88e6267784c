import { PROMETHEUS_CONTENT_TYPE } from '../observe/metrics.js';
import { HttpError } from './app.js';
import type { HttpModule } from './context.js';

/**
 * `GET /metrics`: the Prometheus text exposition of the broker's metrics. Open to anyone by
 * default, as scrapers expect; `http.metricsAuth` restricts it to the administrator.
 */
export const metricsRoutes: HttpModule = (app, context) => {
  app.route(
    'GET',
    '/metrics',
    ({ response }) => {
      const { metrics } = context;
      if (metrics === undefined) throw new HttpError(404, 'not-found', 'metrics are switched off');
      const body = metrics.exposition();
      response.writeHead(200, {
        'content-type': PROMETHEUS_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      });
      response.end(body);
    },
    { auth: context.options.metricsAuth ? 'admin' : 'none' },
  );
};
