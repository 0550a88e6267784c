import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { createBroker } from '../../src/index.js';
import { ADMIN, adminJson, fetchJson, httpBroker, mqttClient } from './support.js';

test('an unknown route is a JSON 404; a known path with another method is 405 with Allow', async () => {
  const { base } = await httpBroker();
  const missing = await fetchJson(base, '/api/v1/nothing-here');
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, {
    error: { code: 'not-found', message: 'no route for /api/v1/nothing-here' },
  });
  const wrongMethod = await fetchJson(base, '/healthz', { method: 'DELETE' });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get('allow'), 'GET');
});

test('a JSON body over 1 MiB is 413, invalid JSON is 400, both as JSON errors', async () => {
  const { base } = await httpBroker();
  const big = JSON.stringify({ token: 'x'.repeat(1024 * 1024) });
  const tooLarge = await fetchJson(base, '/api/v1/login', { method: 'POST', body: big });
  assert.equal(tooLarge.status, 413);
  assert.equal((tooLarge.body as { error: { code: string } }).error.code, 'body-too-large');
  const bad = await fetchJson(base, '/api/v1/login', { method: 'POST', body: '{"token": ' });
  assert.equal(bad.status, 400);
  assert.equal((bad.body as { error: { code: string } }).error.code, 'bad-json');
  // The broker carries on.
  assert.equal((await fetchJson(base, '/healthz')).status, 200);
});

test('a body too large without Content-Length (chunked) is 413 too', async () => {
  const { base } = await httpBroker();
  const port = Number(new URL(base).port);
  const socket = connect(port, '127.0.0.1');
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (d) => {
      text += d.toString('latin1');
    });
    socket.on('close', () => resolve(text));
    socket.on('error', () => resolve(text));
  });
  socket.write('POST /api/v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
  const chunk = 'y'.repeat(64 * 1024);
  for (let i = 0; i < 20 && !socket.destroyed; i++)
    socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
  assert.match(await answer, /^HTTP\/1\.1 413 /);
});

test('routes added through the extension point get path parameters, query and JSON bodies', async () => {
  const cicada = createBroker({ http: { adminToken: 'tok' } });
  cicada.http.route(
    'POST',
    '/test/echo/:name',
    async ({ params, query, json, send, principal }) => {
      send(200, { name: params['name'], q: query.getAll('q'), body: await json(), who: principal.kind });
    },
    { auth: 'caller' },
  );
  cicada.http.route('GET', '/test/rest/*path', ({ params, send }) => send(200, { path: params['path'] }), {
    auth: 'none',
  });
  try {
    const http = await cicada.listen('http://127.0.0.1:0');
    const base = `http://127.0.0.1:${http.port}`;
    const echo = await fetchJson(base, '/test/echo/a%2Fb?q=1&q=2', {
      method: 'POST',
      headers: { authorization: 'Bearer tok' },
      body: '{"x": [1]}',
    });
    assert.equal(echo.status, 200);
    assert.deepEqual(echo.body, { name: 'a/b', q: ['1', '2'], body: { x: [1] }, who: 'admin' });
    const anonymous = await fetchJson(base, '/test/echo/z', { method: 'POST', body: '1' });
    assert.deepEqual(anonymous.body, { name: 'z', q: [], body: 1, who: 'client' });
    const rest = await fetchJson(base, '/test/rest/a/b%2Fc/d');
    assert.deepEqual(rest.body, { path: 'a/b/c/d' });
    const badEncoding = await fetchJson(base, '/test/rest/%E0%A4%A');
    assert.equal(badEncoding.status, 400);
  } finally {
    await cicada.close();
  }
});

test('the HTTP API shares a port with ws://.../mqtt; a WebSocket client shows up in the client list', async () => {
  const { cicada } = await httpBroker();
  const http = cicada.listeners[0]!;
  const wsUrl = `ws://127.0.0.1:${http.port}/mqtt`;
  const ws = await cicada.listen(wsUrl);
  assert.equal(ws.port, http.port);
  await mqttClient(wsUrl, { clientId: 'over-websocket', protocolVersion: 5 });
  const base = `http://127.0.0.1:${http.port}`;
  const { status, body } = await adminJson(base, '/api/v1/clients/over-websocket');
  assert.equal(status, 200);
  const client = body as { protocol: string; listener: string; protocolVersion: number };
  assert.equal(client.protocol, 'mqtt');
  assert.equal(client.protocolVersion, 5);
  assert.equal(client.listener, ws.url);
  // Plain requests still reach the API on that port.
  assert.equal((await fetch(`${base}/healthz`, { headers: ADMIN })).status, 200);
});
