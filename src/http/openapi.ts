import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { HttpModule } from './context.js';

/** The OpenAPI 3.1 description of the HTTP API, in the package (`docs/openapi.json`). */
export const OPENAPI_FILE = fileURLToPath(new URL('../../../docs/openapi.json', import.meta.url));

/** `GET /api/v1/openapi.json`: the API's description, public like any API documentation. */
export const openApiRoutes: HttpModule = (app) => {
  let text: Promise<string> | undefined;
  app.route(
    'GET',
    '/api/v1/openapi.json',
    async ({ response }) => {
      // Read once, when first asked for; a failed read is tried again next time.
      text ??= readFile(OPENAPI_FILE, 'utf8').catch((error: unknown) => {
        text = undefined;
        throw error;
      });
      const body = await text;
      response.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-cache',
      });
      response.end(body);
    },
    { auth: 'none' },
  );
};
