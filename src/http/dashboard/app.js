// The dashboard's entry point: sign-in with the admin token (POST /api/v1/login sets an
// HttpOnly cookie, which also authenticates the topic explorer's EventSource) and a hash
// router over the views.
import { api, onUnauthorized } from './api.js';
import * as clients from './clients.js';
import { say } from './dom.js';
import * as overview from './overview.js';
import * as retained from './retained.js';
import * as topics from './topics.js';

const VIEWS = { overview, clients, topics, retained };
const TITLES = { overview: 'Overview', clients: 'Clients', topics: 'Topic explorer', retained: 'Retained' };

let signedIn = false;
let current;

function routeName() {
  const name = location.hash.replace(/^#\//, '');
  return Object.hasOwn(VIEWS, name) ? name : 'overview';
}

function showSection(id) {
  for (const section of document.querySelectorAll('main > .view')) section.hidden = section.id !== id;
}

function showLogin() {
  signedIn = false;
  current?.hide();
  current = undefined;
  topics.close();
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  showSection('view-login');
  document.title = 'Sign in · Cicada';
  say('');
  document.getElementById('login-token').focus();
}

function route() {
  if (!signedIn) return;
  const name = routeName();
  current?.hide();
  current = VIEWS[name];
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  showSection(`view-${name}`);
  say('');
  document.title = `${TITLES[name]} · Cicada`;
  current.show();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById('login-token');
  const error = document.getElementById('login-error');
  error.textContent = '';
  try {
    await api('login', { method: 'POST', body: { token: input.value } });
    input.value = '';
    signedIn = true;
    route();
  } catch (failure) {
    error.textContent = failure.status === 401 ? 'That token is not valid.' : failure.message;
  }
}

async function signOut() {
  try {
    // The cookie is HttpOnly: only the broker can clear it.
    await api('logout', { method: 'POST' });
  } catch (error) {
    say(`Could not sign out: ${error.message}`);
    return;
  }
  showLogin();
}

async function start() {
  onUnauthorized(showLogin);
  document.getElementById('login-form').addEventListener('submit', signIn);
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  try {
    // An existing cookie may still be valid: then there is no need to sign in again.
    await api('stats');
    signedIn = true;
    route();
  } catch (error) {
    if (!error.signIn) say(error.message);
    showLogin();
  }
}

start();
