import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBroker, MemoryStore } from '../../src/index.js';
import { testCerts } from '../helpers/certs.js';
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

test('GET /readyz is 503 starting while a listener is still coming up; https:// serves the API', async () => {
  const certs = await testCerts();
  const dir = await mkdtemp(join(tmpdir(), 'cicada-ready-'));
  // The key is a FIFO: the https listener waits, reading it, until the test writes the key.
  const key = join(dir, 'key.pem');
  try {
    execFileSync('mkfifo', [key]);
  } catch (error) {
    throw new Error(`mkfifo failed (Debian package coreutils): ${String(error)}`);
  }
  const cicada = createBroker();
  try {
    const http = await cicada.listen('http://127.0.0.1:0');
    const base = `http://127.0.0.1:${http.port}`;
    const secure = cicada.listen('https://127.0.0.1:0', { tls: { cert: certs.server.cert, key } });
    const starting = await fetchJson(base, '/readyz');
    assert.equal(starting.status, 503);
    assert.deepEqual(starting.body, { status: 'starting' });

    await writeFile(key, certs.server.keyPem);
    const listener = await secure;
    assert.equal((await fetchJson(base, '/readyz')).status, 200);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      get({ host: '127.0.0.1', port: listener.port, path: '/readyz', ca: certs.ca.certPem }, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      }).on('error', reject);
    });
    assert.deepEqual(answer, { status: 200, body: '{"status":"ready"}' });
  } finally {
    await cicada.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('GET /readyz is 503 stopping while the broker drains; the HTTP API closes last', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  class SlowToClose extends MemoryStore {
    override async close(): Promise<void> {
      await gate;
      return super.close();
    }
  }
  const cicada = createBroker({ store: new SlowToClose() });
  const http = await cicada.listen('http://127.0.0.1:0');
  const base = `http://127.0.0.1:${http.port}`;
  const closing = cicada.close();
  try {
    const { status, body } = await fetchJson(base, '/readyz');
    assert.equal(status, 503);
    assert.deepEqual(body, { status: 'stopping' });
    assert.equal((await fetchJson(base, '/healthz')).status, 200);
  } finally {
    release();
    await closing;
  }
  await assert.rejects(fetch(`${base}/healthz`));
});
