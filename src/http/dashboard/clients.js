// Clients: the connected clients, searchable by client id or username, with a kick button
// (DELETE /api/v1/clients/{id} disconnects the client).
import { api, query } from './api.js';
import { fillRows, h, say, when } from './dom.js';

const REFRESH_MS = 5000;
const COLUMNS = 10;

let timer;
let next = null;
let shown = [];

const rows = () => document.getElementById('clients-rows');
const more = () => document.getElementById('clients-more');

function row(client) {
  const kick = h(
    'button',
    {
      type: 'button',
      class: 'danger',
      'aria-label': `Kick ${client.clientId}`,
      onclick: () => kickClient(client.clientId),
    },
    'Kick',
  );
  return h(
    'tr',
    { 'data-client-id': client.clientId },
    h('td', { class: 'mono' }, client.clientId),
    h('td', {}, client.username ?? '–'),
    h('td', {}, `${client.protocol ?? ''} ${client.protocolVersion ?? ''}`.trim()),
    h('td', { class: 'mono' }, client.remoteAddress ? `${client.remoteAddress}:${client.remotePort}` : '–'),
    h('td', { class: 'mono' }, client.listener ?? '–'),
    h('td', {}, when(client.connectedAt)),
    h('td', { class: 'num' }, client.subscriptions ?? 0),
    h('td', { class: 'num' }, client.inflight ?? 0),
    h('td', { class: 'num' }, client.queued ?? 0),
    h('td', {}, kick),
  );
}

function render() {
  fillRows(rows(), shown.map(row), 'No connected clients match.', COLUMNS);
  document.getElementById('clients-caption').textContent =
    `${shown.length} client${shown.length === 1 ? '' : 's'}${next === null ? '' : ' (more available)'}`;
  more().hidden = next === null;
}

let loads = 0;

async function load({ append = false } = {}) {
  // Answers can arrive out of order while the user types: only the latest request counts.
  const ticket = ++loads;
  const search = document.getElementById('clients-search').value.trim();
  try {
    const page = await api(`clients${query({ search, cursor: append ? next : undefined, limit: 100 })}`);
    if (ticket !== loads) return;
    shown = append ? shown.concat(page.items) : page.items;
    next = page.next ?? null;
    render();
  } catch (error) {
    if (!error.signIn) say(`Clients unavailable: ${error.message}`);
  }
}

async function kickClient(clientId) {
  if (!window.confirm(`Disconnect client ${clientId}?`)) return;
  try {
    await api(`clients/${encodeURIComponent(clientId)}`, { method: 'DELETE' });
    say(`Disconnected ${clientId}`);
  } catch (error) {
    if (!error.signIn) say(`Could not disconnect ${clientId}: ${error.message}`);
  }
  await load();
}

let wired = false;

/** Loads the list and refreshes it every few seconds. */
export function show() {
  if (!wired) {
    wired = true;
    document.getElementById('clients-form').addEventListener('submit', (event) => {
      event.preventDefault();
      load();
    });
    document.getElementById('clients-search').addEventListener('input', () => load());
    more().addEventListener('click', () => load({ append: true }));
  }
  load();
  clearInterval(timer);
  // A refresh replaces extra pages the user loaded, so only the first page refreshes itself.
  timer = setInterval(() => {
    if (next === null || shown.length <= 100) load();
  }, REFRESH_MS);
}

/** Stops refreshing. */
export function hide() {
  clearInterval(timer);
  timer = undefined;
}
