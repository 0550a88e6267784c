import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { HttpApp } from '../../src/http/app.js';
import type { HttpContext } from '../../src/http/context.js';
import { DASHBOARD_CSP, dashboardModule } from '../../src/http/dashboard.js';
import { httpBroker } from './support.js';

/**
 * The dashboard's files as the broker serves them: types, caching and security headers,
 * redirects, and no way out of the assets directory whatever the request path says.
 */

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request with the path sent exactly as given (fetch would resolve `..` before sending). */
function raw(base: string, path: string, method = 'GET', headers: Record<string, string> = {}) {
  const { hostname, port } = new URL(base);
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** The relative module imports of a script (`from './x.js'`). */
function importsOf(script: string): string[] {
  return [...script.matchAll(/from '\.\/([\w-]+\.js)'/g)].map((match) => match[1]!);
}

describe('dashboard assets on the broker', () => {
  test('/ and /dashboard redirect to /dashboard/, which is the page with its security headers', async () => {
    const { base } = await httpBroker();
    for (const path of ['/', '/dashboard']) {
      const answer = await raw(base, path);
      assert.equal(answer.status, 302, path);
      assert.equal(new URL(answer.headers.location as string, `${base}${path}`).pathname, '/dashboard/');
    }
    const page = await raw(base, '/dashboard/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.equal(page.headers['content-security-policy'], DASHBOARD_CSP);
    assert.match(DASHBOARD_CSP, /default-src 'none'/);
    assert.match(DASHBOARD_CSP, /script-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.match(page.body, /<script type="module" src="app\.js"><\/script>/);
  });

  test('every file the page loads is served with its type, and none comes from another origin', async () => {
    const { base } = await httpBroker();
    const page = await raw(base, '/dashboard/');
    const types: Record<string, string> = {
      js: 'text/javascript; charset=utf-8',
      css: 'text/css; charset=utf-8',
      svg: 'image/svg+xml',
    };
    const pending = [...page.body.matchAll(/(?:src|href)="([\w-]+\.(?:js|css|svg))"/g)].map((m) => m[1]!);
    assert.ok(pending.includes('app.js') && pending.includes('style.css') && pending.includes('icon.svg'));
    const seen = new Set<string>();
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      const asset = await raw(base, `/dashboard/${name}`);
      assert.equal(asset.status, 200, name);
      assert.equal(asset.headers['content-type'], types[name.split('.').pop()!], name);
      assert.equal(asset.headers['content-security-policy'], DASHBOARD_CSP, name);
      // No CDN, no web font, no analytics: the only URL allowed is the SVG namespace.
      const external = asset.body
        .replaceAll('http://www.w3.org/2000/svg', '')
        .match(/https?:\/\/|\/\/[a-z]/i);
      assert.equal(external, null, `${name} refers to another origin`);
      if (name.endsWith('.js')) pending.push(...importsOf(asset.body));
    }
    for (const module of [
      'app.js',
      'api.js',
      'overview.js',
      'chart.js',
      'clients.js',
      'topics.js',
      'retained.js',
    ])
      assert.ok(seen.has(module), `${module} is reached from the page`);
    assert.equal(page.body.includes('<style'), false, 'no inline style (the CSP forbids it)');
    assert.equal(/<script(?![^>]*\bsrc=)/.test(page.body), false, 'no inline script (the CSP forbids it)');
  });

  test('an unchanged file is a 304; HEAD has no body; other methods are 405; unknown files 404', async () => {
    const { base } = await httpBroker();
    const first = await raw(base, '/dashboard/app.js');
    const etag = first.headers.etag as string;
    assert.match(etag, /^"[\w-]+"$/);
    const again = await raw(base, '/dashboard/app.js', 'GET', { 'if-none-match': etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    const head = await raw(base, '/dashboard/style.css', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], 'text/css; charset=utf-8');
    assert.equal(head.body, '');
    const post = await raw(base, '/dashboard/app.js', 'POST');
    assert.equal(post.status, 405);
    assert.match(String(post.headers.allow), /GET/);
    const missing = await raw(base, '/dashboard/nothing-here.js');
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.body).error.code, 'not-found');
  });

  test('paths that try to leave the assets directory are refused', async () => {
    const { base } = await httpBroker();
    const attempts = [
      '/dashboard/../package.json',
      '/dashboard/../../package.json',
      '/dashboard/..%2fpackage.json',
      '/dashboard/..%2f..%2f..%2fpackage.json',
      '/dashboard/%2e%2e/%2e%2e/%2e%2e/package.json',
      '/dashboard/%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json',
      '/dashboard/%2E%2E%2F%2E%2E%2F%2E%2E%2Fpackage.json',
      '/dashboard/.%2e/.%2e/.%2e/package.json',
      '/dashboard/..%5c..%5c..%5cpackage.json',
      '/dashboard/%252e%252e%252f%252e%252e%252fpackage.json',
      '/dashboard/..%2f..%2fdashboard.ts',
      '/dashboard/%2fetc%2fpasswd',
      '/dashboard//etc/passwd',
      '/dashboard/index.html%00.js',
      '/dashboard/%',
    ];
    for (const path of attempts) {
      const answer = await raw(base, path);
      assert.ok([400, 404].includes(answer.status), `${path} answered ${answer.status}`);
      assert.doesNotMatch(answer.body, /devDependencies|root:|import/, `${path} leaked a file`);
    }
  });
});

describe("the dashboard's API calls", () => {
  test("a page script's 401 offers no Basic challenge (no browser password dialog); others' does", async () => {
    const { base } = await httpBroker();
    const script = await raw(base, '/api/v1/stats', 'GET', {
      'sec-fetch-dest': 'empty',
      'sec-fetch-mode': 'cors',
    });
    assert.equal(script.status, 401);
    assert.doesNotMatch(String(script.headers['www-authenticate']), /basic/i);
    assert.match(String(script.headers['www-authenticate']), /^Bearer realm="cicada"/);
    const other = await raw(base, '/api/v1/stats');
    assert.equal(other.status, 401);
    assert.match(String(other.headers['www-authenticate']), /Basic realm="cicada"/);
  });
});

describe('dashboard assets directory', () => {
  test('only files of a known type directly in the directory are served', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'cicada-dashboard-'));
    try {
      await writeFile(join(directory, 'index.html'), '<!doctype html><title>x</title>');
      await writeFile(join(directory, 'notes.txt'), 'private notes');
      await writeFile(join(directory, '.hidden.js'), 'secret()');
      await mkdir(join(directory, 'sub'));
      await writeFile(join(directory, 'sub', 'inner.js'), 'inner()');
      const app = new HttpApp();
      dashboardModule(directory)(app, undefined as unknown as HttpContext);
      const server = createServer(app.handler({ listener: 'http://127.0.0.1:0', secure: false }));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      try {
        assert.equal((await raw(base, '/dashboard/')).status, 200);
        assert.equal((await raw(base, '/dashboard/index.html')).status, 200);
        for (const path of ['/dashboard/notes.txt', '/dashboard/.hidden.js', '/dashboard/sub/inner.js'])
          assert.equal((await raw(base, path)).status, 404, path);
        assert.equal((await raw(base, '/dashboard/sub%2finner.js')).status, 404);
      } finally {
        server.close();
      }
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
