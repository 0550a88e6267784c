import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpError, type RouteContext } from './app.js';
import type { HttpModule } from './context.js';

/**
 * The web dashboard: plain HTML, CSS and JavaScript modules (no build step, nothing fetched
 * from the internet) served at `/dashboard/`, with `/` redirecting there. The assets stay as
 * they are in the package's `src/http/dashboard/` (tsc emits only .ts files); only the files
 * of that one directory with a known type are served, looked up by exact name, so no request
 * path can reach any other file. The pages talk to the admin API with the login cookie.
 */

/** Where the assets are: `src/http/dashboard/` of the package, from `dist/src/http/dashboard.js`. */
export const DASHBOARD_ASSETS_DIRECTORY = fileURLToPath(
  new URL('../../../src/http/dashboard/', import.meta.url),
);

/** Content types of the files the dashboard is made of; other files are never served. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * Everything comes from the broker itself: no inline script or style, no other origin, no
 * framing (clickjacking a kick button), no plugins.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** One file, read once. */
interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/** Reads the directory's servable files (no subdirectories, no dot files). */
async function loadAssets(directory: string): Promise<ReadonlyMap<string, Asset>> {
  const assets = new Map<string, Asset>();
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    const contentType = CONTENT_TYPES[extname(entry.name)];
    if (!entry.isFile() || entry.name.startsWith('.') || contentType === undefined) continue;
    const body = await readFile(join(directory, entry.name));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    assets.set(entry.name, { body, contentType, etag });
  }
  return assets;
}

/** Answers with one asset (304 when the browser's copy is current; no body for HEAD). */
function sendAsset({ request, response }: RouteContext, asset: Asset): void {
  const headers = {
    'content-type': asset.contentType,
    // Revalidated on every load (cheap with the ETag), so an upgraded broker serves its new pages at once.
    'cache-control': 'no-cache',
    etag: asset.etag,
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
  };
  if (request.headers['if-none-match'] === asset.etag) {
    response.writeHead(304, headers).end();
    return;
  }
  response.writeHead(200, { ...headers, 'content-length': asset.body.length }).end(asset.body);
}

/** A redirect relative to the request's path, so that a reverse proxy's prefix is kept. */
function redirect({ response }: RouteContext, location: string): void {
  response.writeHead(302, { location, 'cache-control': 'no-cache', 'content-length': 0 }).end();
}

/** The dashboard's routes, serving the assets of `directory`. */
export function dashboardModule(directory: string = DASHBOARD_ASSETS_DIRECTORY): HttpModule {
  return (app) => {
    let loading: Promise<ReadonlyMap<string, Asset>> | undefined;
    const assets = (): Promise<ReadonlyMap<string, Asset>> => {
      loading ??= loadAssets(directory).catch((error: unknown) => {
        loading = undefined;
        const reason = error instanceof Error ? error.message : String(error);
        throw new HttpError(500, 'dashboard-missing', `the dashboard assets cannot be read: ${reason}`);
      });
      return loading;
    };
    const serve = async (context: RouteContext, name: string): Promise<void> => {
      const asset = (await assets()).get(name);
      if (asset === undefined) throw new HttpError(404, 'not-found', 'no such dashboard file');
      sendAsset(context, asset);
    };
    // The pages themselves are public: the data they show needs the admin (the login page asks for it).
    app.route('GET', '/', (context) => redirect(context, 'dashboard/'), { auth: 'none' });
    app.route('GET', '/dashboard', (context) => redirect(context, 'dashboard/'), { auth: 'none' });
    app.route('GET', '/dashboard/', (context) => serve(context, 'index.html'), { auth: 'none' });
    // The router decodes the segment; a name with '/' or '..' simply is not in the map.
    app.route('GET', '/dashboard/:file', (context) => serve(context, context.params['file'] ?? ''), {
      auth: 'none',
    });
  };
}

/** The dashboard served from the package's own assets. */
export const dashboardRoutes: HttpModule = dashboardModule();
