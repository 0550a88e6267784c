import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fetchJson, httpBroker } from './support.js';

test('GET /healthz answers ok without credentials', async () => {
  const { base } = await httpBroker();
  const { status, body } = await fetchJson(base, '/healthz');
  assert.equal(status, 200);
  assert.deepEqual(body, { status: 'ok' });
});

test('GET /readyz is 200 ready once the store is open and listeners are up', async () => {
  const { base } = await httpBroker();
  const { status, body } = await fetchJson(base, '/readyz');
  assert.equal(status, 200);
  assert.deepEqual(body, { status: 'ready' });
});
