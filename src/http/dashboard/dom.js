// Small DOM helpers. Text always goes in through textContent, never as HTML, so client ids,
// topics and payloads cannot inject markup.

/** An element with attributes (`class`, `aria-*`, ...) and children (nodes or text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'onclick') element.addEventListener('click', value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces the rows of `tbody`; with no rows, one row saying `emptyText`. */
export function fillRows(tbody, rows, emptyText, columns) {
  if (rows.length === 0) {
    tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: columns }, emptyText)));
  } else {
    tbody.replaceChildren(...rows);
  }
}

const status = () => document.getElementById('status');

/** Shows a short message in the top bar (announced politely to screen readers). */
export function say(message) {
  status().textContent = message;
}

/** A payload as readable text: UTF-8 if it decodes, else its size and first bytes in hex. */
export function payloadText(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const hex = Array.from(bytes.slice(0, 32), (byte) => byte.toString(16).padStart(2, '0')).join(' ');
    return `(binary, ${bytes.length} bytes) ${hex}${bytes.length > 32 ? ' …' : ''}`;
  }
}

/** Bytes of a base64 string. */
export function fromBase64(text) {
  const binary = atob(text);
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

/** A count with thousands separators. */
export function count(value) {
  return typeof value === 'number' ? value.toLocaleString('en') : '–';
}

/** Seconds as "3d 4h", "2h 5m", "4m 10s". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${hours}h`;
  if (hours > 0) return `${hours}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

/** A timestamp (ms, ISO string or seconds) as local date and time. */
export function when(value) {
  if (value === undefined || value === null) return '–';
  const date = new Date(typeof value === 'number' && value < 1e12 ? value * 1000 : value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}
