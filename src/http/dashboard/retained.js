// Retained messages: listed by topic filter (GET /api/v1/retained?filter=), cleared one at a
// time (DELETE /api/v1/retained/{topic}).
import { api, query } from './api.js';
import { fillRows, fromBase64, h, payloadText, say } from './dom.js';

const COLUMNS = 4;

let next = null;
let shown = [];
const rows = () => document.getElementById('retained-rows');
const more = () => document.getElementById('retained-more');
const filter = () => document.getElementById('retained-filter').value.trim() || '#';

function textOf(message) {
  if (typeof message.payloadText === 'string') return message.payloadText;
  return typeof message.payload === 'string' ? payloadText(fromBase64(message.payload)) : '';
}

function row(message) {
  const clear = h(
    'button',
    {
      type: 'button',
      class: 'danger',
      'aria-label': `Clear retained message on ${message.topic}`,
      onclick: () => clearTopic(message.topic),
    },
    'Clear',
  );
  return h(
    'tr',
    {},
    h('td', { class: 'mono' }, message.topic),
    h('td', { class: 'num' }, message.qos ?? 0),
    h('td', { class: 'mono payload' }, textOf(message)),
    h('td', {}, clear),
  );
}

function render() {
  fillRows(rows(), shown.map(row), 'No retained messages match.', COLUMNS);
  document.getElementById('retained-caption').textContent =
    `${shown.length} retained message${shown.length === 1 ? '' : 's'}${next === null ? '' : ' (more available)'}`;
  more().hidden = next === null;
}

async function load({ append = false } = {}) {
  try {
    const page = await api(
      `retained${query({ filter: filter(), cursor: append ? next : undefined, limit: 100 })}`,
    );
    shown = append ? shown.concat(page.items) : page.items;
    next = page.next ?? null;
    render();
  } catch (error) {
    if (!error.signIn) say(`Retained messages unavailable: ${error.message}`);
  }
}

async function clearTopic(topic) {
  if (!window.confirm(`Clear the retained message on ${topic}?`)) return;
  try {
    await api(`retained/${encodeURIComponent(topic)}`, { method: 'DELETE' });
    say(`Cleared ${topic}`);
  } catch (error) {
    if (!error.signIn) say(`Could not clear ${topic}: ${error.message}`);
  }
  await load();
}

let wired = false;

/** Lists the retained messages of the current filter. */
export function show() {
  if (!wired) {
    wired = true;
    document.getElementById('retained-form').addEventListener('submit', (event) => {
      event.preventDefault();
      load();
    });
    more().addEventListener('click', () => load({ append: true }));
  }
  load();
}

/** Nothing runs in the background. */
export function hide() {}
