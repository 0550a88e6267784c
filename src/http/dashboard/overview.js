// Overview: /api/v1/stats polled every 2 s while the view is shown; message rates are the
// deltas of the cumulative counters divided by the time between two polls. Below the charts,
// the first queues by name (GET /api/v1/queues): a glance, not a queue browser.
import { api, query } from './api.js';
import { LineChart } from './chart.js';
import { count, duration, fillRows, h, say } from './dom.js';

const POLL_MS = 2000;
const QUEUES_SHOWN = 10;

let timer;
let previous;
let connectionsChart;
let ratesChart;

function charts() {
  connectionsChart ??= new LineChart(document.getElementById('chart-connections'), [
    { label: 'connections', color: '--series-1' },
    { label: 'sessions', color: '--series-3' },
  ]);
  ratesChart ??= new LineChart(document.getElementById('chart-rates'), [
    { label: 'in', color: '--series-1' },
    { label: 'out', color: '--series-2' },
  ]);
}

function showTiles(stats) {
  for (const cell of document.querySelectorAll('#overview-tiles [data-stat]')) {
    const value = stats[cell.dataset.stat];
    cell.textContent = cell.dataset.stat === 'uptimeSeconds' ? duration(value ?? 0) : count(value);
  }
}

function showQueues(page) {
  const rows = page.items.map((queue) =>
    h(
      'tr',
      {},
      h('td', { class: 'mono' }, queue.name),
      h('td', { class: 'num' }, count(queue.depth)),
      h('td', { class: 'num' }, count(queue.unacknowledged)),
      h('td', { class: 'num' }, count(queue.consumers)),
    ),
  );
  fillRows(document.getElementById('queues-rows'), rows, 'No queues.', 4);
  const caption = document.getElementById('queues-caption');
  caption.textContent = `The first ${page.items.length} queues by name`;
  caption.hidden = page.next === null;
}

/** Per-second rates of the counters since the previous poll; undefined on the first poll or after a restart. */
function rates(stats, at) {
  const before = previous;
  previous = { stats, at };
  if (before === undefined) return undefined;
  const seconds = (at - before.at) / 1000;
  const messagesIn = stats.messagesIn - before.stats.messagesIn;
  const messagesOut = stats.messagesOut - before.stats.messagesOut;
  if (seconds <= 0 || messagesIn < 0 || messagesOut < 0) return undefined;
  return [messagesIn / seconds, messagesOut / seconds];
}

async function poll() {
  try {
    const [stats, queues] = await Promise.all([api('stats'), api(`queues${query({ limit: QUEUES_SHOWN })}`)]);
    showTiles(stats);
    showQueues(queues);
    connectionsChart.push([stats.connections, stats.sessions]);
    const perSecond = rates(stats, performance.now());
    if (perSecond !== undefined) ratesChart.push(perSecond);
    document
      .getElementById('chart-rates')
      .setAttribute(
        'aria-label',
        `Message rates over the last five minutes; now ${(perSecond?.[0] ?? 0).toFixed(1)} in and ${(perSecond?.[1] ?? 0).toFixed(1)} out per second`,
      );
    document
      .getElementById('chart-connections')
      .setAttribute('aria-label', `Connections over the last five minutes; now ${stats.connections}`);
    say(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (!error.signIn) say(`Stats unavailable: ${error.message}`);
  }
}

/** Starts polling. */
export function show() {
  charts();
  clearInterval(timer);
  previous = undefined;
  poll();
  timer = setInterval(poll, POLL_MS);
}

/** Stops polling. */
export function hide() {
  clearInterval(timer);
  timer = undefined;
}
