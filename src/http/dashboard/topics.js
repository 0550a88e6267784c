// Topic explorer: subscribes to a filter through Server-Sent Events
// (GET /api/v1/sse?filter=...; the login cookie authenticates the EventSource) and shows
// the messages live, newest first.
import { apiUrl, query } from './api.js';
import { fromBase64, h, payloadText } from './dom.js';

const MAX_ROWS = 500;

let source;
const rows = () => document.getElementById('topics-rows');
const state = (text) => {
  document.getElementById('topics-state').textContent = text;
};

function payloadOf(message) {
  if (typeof message.payload !== 'string') return '';
  if (message.encoding === 'base64') return payloadText(fromBase64(message.payload));
  return message.payload;
}

function addMessage(message) {
  const tbody = rows();
  tbody.querySelector('.empty')?.remove();
  const row = h(
    'tr',
    {},
    h('td', { class: 'mono' }, new Date().toLocaleTimeString()),
    h('td', { class: 'mono' }, message.topic),
    h('td', { class: 'num' }, message.qos ?? 0),
    h('td', {}, message.retain ? 'retained' : ''),
    h('td', { class: 'mono payload' }, payloadOf(message)),
  );
  tbody.prepend(row);
  while (tbody.rows.length > MAX_ROWS) tbody.lastElementChild.remove();
}

function stop(reason = 'Not subscribed.') {
  source?.close();
  source = undefined;
  document.getElementById('topics-stop').disabled = true;
  state(reason);
}

function subscribe(filter) {
  stop();
  const stream = new EventSource(apiUrl(`sse${query({ filter })}`), { withCredentials: true });
  source = stream;
  document.getElementById('topics-stop').disabled = false;
  state(`Connecting to ${filter} …`);
  stream.addEventListener('open', () => {
    if (source === stream) state(`Live: ${filter}`);
  });
  stream.addEventListener('message', (event) => {
    try {
      addMessage(JSON.parse(event.data));
    } catch {
      // A malformed event is skipped; the stream carries on.
    }
  });
  stream.addEventListener('error', () => {
    if (source !== stream) return;
    if (stream.readyState === EventSource.CLOSED) {
      stop(`The stream for ${filter} was refused or closed (signed out, or not allowed to read it).`);
    } else {
      state(`Reconnecting to ${filter} …`);
    }
  });
}

let wired = false;

/** Wires the form; the subscription (if any) stays open while other views are shown. */
export function show() {
  if (wired) return;
  wired = true;
  document.getElementById('topics-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const filter = document.getElementById('topics-filter').value.trim();
    if (filter !== '') subscribe(filter);
  });
  document.getElementById('topics-stop').addEventListener('click', () => stop());
  document.getElementById('topics-clear').addEventListener('click', () => rows().replaceChildren());
}

/** Nothing to stop: the explorer keeps listening in the background. */
export function hide() {}

/** Closes the stream (on sign-out). */
export function close() {
  stop();
}
