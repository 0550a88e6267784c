import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { OPENAPI_FILE } from '../../src/http/openapi.js';
import { createBroker } from '../../src/index.js';
import { fetchJson, httpBroker } from './support.js';

interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
}

/** `/api/v1/clients/:id` as OpenAPI writes it: `/api/v1/clients/{id}` (a `*rest` parameter too). */
function openApiPath(pattern: string): string {
  return pattern.replace(/[:*]([A-Za-z0-9_]+)/g, '{$1}');
}

test('docs/openapi.json describes every route the app registers, and only those', async () => {
  const doc = JSON.parse(await readFile(OPENAPI_FILE, 'utf8')) as OpenApi;
  assert.equal(doc.openapi, '3.1.0');
  const registered = createBroker()
    .http.routes.map((r) => `${r.method} ${openApiPath(r.pattern)}`)
    .sort();
  const documented = Object.entries(doc.paths)
    .flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
    )
    .sort();
  assert.deepEqual(documented, registered);
  for (const [path, operations] of Object.entries(doc.paths))
    for (const [method, operation] of Object.entries(operations))
      assert.ok(Object.keys(operation.responses).length > 0, `${method} ${path} has responses`);
});

test('GET /api/v1/openapi.json serves the document without credentials', async () => {
  const { base } = await httpBroker();
  const { status, headers, body } = await fetchJson(base, '/api/v1/openapi.json');
  assert.equal(status, 200);
  assert.match(headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(body, JSON.parse(await readFile(OPENAPI_FILE, 'utf8')));
});
