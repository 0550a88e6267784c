// Calls to the broker's admin API. Paths are relative to the dashboard (served at
// /dashboard/), so the dashboard also works behind a reverse proxy that adds a prefix.

/**
 * An API answer that was not a success: `status` is the HTTP status; `signIn` says the
 * caller is not the administrator (401, or 403 from an admin-only route), so the login shows.
 */
export class ApiError extends Error {
  constructor(status, message, signIn = false) {
    super(message);
    this.status = status;
    this.signIn = signIn;
  }
}

let unauthorized = () => {};

/** Registers what happens when a call says the caller is not the administrator (show the login). */
export function onUnauthorized(callback) {
  unauthorized = callback;
}

/** The URL of an API path such as `stats` or `clients?search=x`. */
export function apiUrl(path) {
  return new URL(`../api/v1/${path}`, document.baseURI).href;
}

/** Calls the API; resolves with the parsed JSON body (or null), rejects with an ApiError. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch {
    throw new ApiError(0, 'The broker cannot be reached.');
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (response.ok) return parsed;
  const message = parsed?.error?.message ?? `${response.status} ${response.statusText}`;
  const signIn = (response.status === 401 || response.status === 403) && path !== 'login';
  if (signIn) unauthorized();
  throw new ApiError(response.status, message, signIn);
}

/** The query string of `params`, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.append(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}
