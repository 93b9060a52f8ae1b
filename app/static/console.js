// The console page: sign in, then a live table of the user's call sessions,
// kept current by sessions-client.js. No framework, no external assets.

import { SessionsClient, tokenExpiry } from './sessions-client.js';
import {
  isMine, renderConnections, renderDetails, renderRow, sessionKey, summary, sweepSummary, tickTimers,
} from './console-rows.js';

const STORE_KEY = 'callstate.console.token';
const LEAVE_MS = 4000; // an ended call stays this long, showing how it ended
const TRANSPORT_NAMES = { websocket: 'WebSocket', sse: 'SSE', poll: 'long-poll' };

const $ = (id) => document.getElementById(id);
const ui = {
  signIn: $('sign-in'), form: $('token-form'), token: $('token'), error: $('sign-in-error'), dev: $('dev'),
  board: $('board'), title: $('board-title'), views: $('views'), summary: $('summary'), empty: $('empty'),
  body: document.querySelector('#sessions tbody'), conn: $('connection'), connText: $('connection-text'),
  who: $('who'), signOut: $('sign-out'), history: $('history'), sweep: $('sweep'),
  present: $('present'), presentNone: $('present-none'), presenceTitle: $('presence-title'),
  connections: $('connections'), connectionsBody: document.querySelector('#connections-table tbody'),
  connectionsNone: $('connections-none'),
};

let client = null;
let me = null; // the token's claims
let view = 'account';
const rows = new Map(); // id -> {tr, details, session, leaving}
const expanded = new Set();
const firstSeenConnected = new Map(); // id -> ms, when the page first saw it connected

// -- sign in ----------------------------------------------------------------------------

function decodeClaims(token) {
  const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
}

async function mint(role) {
  const response = await fetch('/console/dev-token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ role }),
  });
  if (!response.ok) throw new Error(`could not mint a token (HTTP ${response.status})`);
  return (await response.json()).token;
}

function signIn(token, source = 'pasted') {
  let claims;
  try {
    claims = decodeClaims(token.trim());
  } catch {
    showSignIn('That does not look like a JWT (three base64url parts separated by dots).');
    return;
  }
  sessionStorage.setItem(STORE_KEY, JSON.stringify({ token: token.trim(), source }));
  start(token.trim(), claims, source);
}

function showSignIn(message = '') {
  ui.error.textContent = message;
  ui.signIn.hidden = false;
  ui.board.hidden = true;
  ui.signOut.hidden = true;
  ui.who.hidden = true;
  ui.token.focus();
}

function signOut() {
  sessionStorage.removeItem(STORE_KEY);
  client?.close();
  client = null;
  stopConnections();
  clearRows();
  setConnection({ state: 'idle' });
  showSignIn();
}

// -- the live client ------------------------------------------------------------------------

function start(token, claims, source) {
  client?.close();
  clearRows();
  me = claims;
  const roles = claims.roles ?? claims.Roles ?? [];
  const manager = roles.includes('Manager') || roles.includes('Admin');
  view = manager ? 'account' : 'mine';
  ui.views.hidden = !manager;
  updateViewButtons();
  ui.who.textContent = `${claims.name ?? claims.sub} · ${claims.accountId}${manager ? ' · manager' : ''}`;
  ui.who.hidden = false;
  ui.signOut.hidden = false;
  ui.signIn.hidden = true;
  ui.board.hidden = false;
  ui.token.value = '';

  const role = source.startsWith('dev:') ? source.slice(4) : null;
  client = new SessionsClient({ token, getToken: role ? () => storeToken(mint(role), source) : null, presence: true });
  client.on('presence', ({ present }) => drawPresence(present, manager));
  client.on('added', ({ id, session }) => upsertRow(id, session, 'added'));
  client.on('changed', ({ id, session }) => upsertRow(id, session, 'changed'));
  client.on('removed', ({ id, session }) => leaveRow(id, session));
  client.on('status', (status) => {
    setConnection(status);
    if (status.state === 'closed' && status.code) refused(status);
  });
  window.sessionsClient = client; // for the console of the browser (and tests)
  client.connect().catch(() => {}); // a refusal arrives as a 'closed' status too
  followSweep();
  followConnections(manager);
  ui.board.focus();
}

// The service refused the token for good (expired with nothing to renew it, invalid, forbidden).
function refused({ code, reason }) {
  const expired = code === 3005 || (tokenExpiry(client?.token ?? '') ?? Infinity) * 1000 < Date.now();
  sessionStorage.removeItem(STORE_KEY);
  client = null;
  stopConnections();
  clearRows();
  showSignIn(expired ? 'Your token has expired. Paste a fresh one.' : `Sign-in refused (${code}): ${reason}`);
}

async function storeToken(promise, source) {
  const token = await promise;
  sessionStorage.setItem(STORE_KEY, JSON.stringify({ token, source }));
  return token;
}

function setConnection(status) {
  const { state, how, replayed, transport, attempt, retryInMs, reason, expiresAt } = status;
  let text;
  if (state === 'live') {
    text = { resumed: `Live · resumed (${replayed} missed change${replayed === 1 ? '' : 's'} replayed)`,
      reset: 'Live · reset to a fresh snapshot' }[how] ?? 'Live';
    text += ` · via ${TRANSPORT_NAMES[transport] ?? transport}`;
    ui.conn.dataset.how = how;
  } else if (state === 'reconnecting') {
    text = `Reconnecting in ${(retryInMs / 1000).toFixed(1)} s (attempt ${attempt})${reason ? ` · ${reason}` : ''}`;
  } else if (state === 'connecting') {
    text = 'Connecting…';
  } else if (state === 'closed') {
    text = `Disconnected${reason ? ` · ${reason}` : ''}`;
  } else {
    text = 'Signed out';
  }
  if (expiresAt) text += ` · token expires ${new Date(expiresAt * 1000).toLocaleTimeString()}: sign in again to stay live`;
  ui.conn.dataset.state = state;
  ui.conn.dataset.transport = transport ?? '';
  ui.connText.textContent = text;
  if (state !== 'idle') {
    const item = document.createElement('li');
    item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    item.dataset.state = state;
    if (state === 'live') item.dataset.how = how;
    ui.history.prepend(item);
    while (ui.history.children.length > 50) ui.history.lastChild.remove();
  }
}

// -- the sweep (docs/twilio.md): what it did for the account, from GET /sessions/sweep --------

const SWEEP_POLL_MS = 10000;
let sweepTimer = null;

function followSweep() {
  clearInterval(sweepTimer);
  ui.sweep.hidden = true;
  pollSweep();
  sweepTimer = setInterval(pollSweep, SWEEP_POLL_MS);
}

async function pollSweep() {
  const token = client?.token;
  if (!token) { clearInterval(sweepTimer); ui.sweep.hidden = true; return; }
  try {
    const response = await fetch('/sessions/sweep', { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) return;
    const counts = await response.json();
    ui.sweep.textContent = sweepSummary(counts);
    ui.sweep.hidden = false;
  } catch {
    // offline for a moment: the next poll tries again
  }
}

// -- connections and their lag (Managers and Admins): GET /live/connections -----------------
// Polled every few seconds while the page is visible; a hidden tab asks nothing and catches
// up the moment it is shown again.

const CONNECTIONS_POLL_MS = 3000;
let connectionsTimer = null;
let connectionsRun = 0; // which sign-in the polling belongs to: a late answer for an older one is dropped
let connectionsBusy = false;

function followConnections(manager) {
  stopConnections();
  if (!manager) return; // the service would answer 403: the panel is not shown at all
  const run = ++connectionsRun;
  ui.connections.hidden = false;
  pollConnections(run);
  connectionsTimer = setInterval(() => pollConnections(run), CONNECTIONS_POLL_MS);
}

function stopConnections() {
  clearInterval(connectionsTimer);
  connectionsTimer = null;
  connectionsRun += 1;
  ui.connections.hidden = true;
  ui.connectionsBody.replaceChildren();
  ui.connectionsNone.hidden = true;
}

async function pollConnections(run) {
  const token = client?.token;
  if (run !== connectionsRun || !token) return;
  if (document.visibilityState !== 'visible' || connectionsBusy) return;
  connectionsBusy = true;
  try {
    const response = await fetch('/live/connections', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (run !== connectionsRun) return;
    if ([401, 403, 404].includes(response.status)) { stopConnections(); return; } // not for us (or not served)
    if (!response.ok) return;
    const { connections = [] } = await response.json();
    if (run !== connectionsRun) return;
    renderConnections(ui.connectionsBody, connections);
    ui.connectionsNone.hidden = connections.length > 0;
  } catch {
    // offline for a moment: the next poll tries again
  } finally {
    connectionsBusy = false;
  }
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && connectionsTimer !== null) pollConnections(connectionsRun);
});

// -- rows ----------------------------------------------------------------------------------

function visible(session) {
  return view === 'account' || isMine(session, me?.endpointId);
}

function upsertRow(id, session, why) {
  if (['Connected', 'Hold', 'Passive'].includes(session.callState) && !firstSeenConnected.has(id)) {
    firstSeenConnected.set(id, Date.now());
  }
  let row = rows.get(id);
  if (row?.leaving) { clearTimeout(row.leaving); row.tr.remove(); row.details.remove(); row = undefined; }
  if (!row) {
    const tr = document.createElement('tr');
    const details = document.createElement('tr');
    details.className = 'details';
    row = { tr, details, session };
    rows.set(id, row);
  }
  row.session = session;
  draw(id, row);
  place(id, row);
  flash(row.tr, why);
  refreshSummary();
}

function leaveRow(id, finalState) {
  const row = rows.get(id);
  if (!row) return;
  row.session = finalState;
  draw(id, row, true);
  row.tr.classList.add('leaving');
  row.leaving = setTimeout(() => {
    row.tr.remove();
    row.details.remove();
    rows.delete(id);
    expanded.delete(id);
    firstSeenConnected.delete(id);
    refreshSummary();
  }, LEAVE_MS);
  refreshSummary();
}

function draw(id, row, ended = false) {
  const hadFocus = row.tr.contains(document.activeElement);
  renderRow(row.tr, id, row.session, { ended, open: expanded.has(id), connectedAt: firstSeenConnected.get(id),
    manager: !ui.views.hidden });
  renderDetails(row.details, id, row.session, expanded.has(id));
  row.tr.hidden = !visible(row.session);
  row.details.hidden = row.tr.hidden || !expanded.has(id);
  if (hadFocus) row.tr.querySelector('button.disclose')?.focus();
}

function place(id, row) {
  const key = sessionKey(row.session, id);
  let before = null;
  for (const [otherId, other] of rows) {
    if (otherId !== id && other.tr.isConnected && sessionKey(other.session, otherId) > key
        && (!before || sessionKey(other.session, otherId) < sessionKey(before.session, before.id))) {
      before = { ...other, id: otherId };
    }
  }
  if (row.tr.isConnected && row.tr.nextSibling === row.details && row.details.nextSibling === (before?.tr ?? null)) return;
  ui.body.insertBefore(row.tr, before?.tr ?? null);
  ui.body.insertBefore(row.details, before?.tr ?? null);
}

function flash(tr, why) {
  if (matchMedia('(prefers-reduced-motion: reduce)').matches) return;
  tr.classList.remove('flash-added', 'flash-changed');
  void tr.offsetWidth; // restart the animation
  tr.classList.add(`flash-${why}`);
}

function clearRows() {
  for (const row of rows.values()) clearTimeout(row.leaving);
  rows.clear();
  expanded.clear();
  firstSeenConnected.clear();
  ui.body.replaceChildren();
  ui.present.replaceChildren();
  ui.presentNone.hidden = false;
  refreshSummary();
}

function refreshSummary() {
  const shown = [...rows.values()].filter((r) => !r.leaving && visible(r.session)).map((r) => r.session);
  ui.summary.textContent = summary(shown);
  ui.empty.hidden = shown.length > 0;
  ui.title.textContent = view === 'account' ? `Whole account · ${me?.accountId ?? ''}` : 'My calls';
  document.title = `${shown.length ? `(${shown.length}) ` : ''}Call sessions · console`;
}

function updateViewButtons() {
  for (const button of ui.views.querySelectorAll('button')) {
    button.setAttribute('aria-pressed', String(button.dataset.view === view));
  }
}

function redrawAll() {
  for (const [id, row] of rows) draw(id, row, Boolean(row.leaving));
  refreshSummary();
}

// -- presence: who is connected (a Manager sees the account, an agent themselves) -----------

function drawPresence(present, manager) {
  ui.presenceTitle.textContent = manager ? 'Connected now' : 'Your softphone';
  const items = [...present.values()].sort((a, b) => (a.name ?? a.userId).localeCompare(b.name ?? b.userId))
    .map((entry) => {
      const item = document.createElement('li');
      item.dataset.endpoint = entry.endpointId;
      const since = new Date(entry.since);
      item.textContent = `${entry.name ?? entry.userId} · ${entry.endpointId}`;
      const time = document.createElement('time');
      time.dateTime = entry.since;
      time.textContent = ` since ${since.toLocaleTimeString()}`;
      item.append(time);
      return item;
    });
  ui.present.replaceChildren(...items);
  ui.presentNone.hidden = items.length > 0;
}

// -- keyboard and clicks -------------------------------------------------------------

ui.body.addEventListener('click', (event) => {
  const button = event.target.closest('button.disclose');
  if (!button) return;
  const id = button.dataset.id;
  if (expanded.has(id)) expanded.delete(id); else expanded.add(id);
  const row = rows.get(id);
  if (row) draw(id, row, Boolean(row.leaving));
});

ui.body.addEventListener('keydown', (event) => {
  const buttons = [...ui.body.querySelectorAll('tr:not([hidden]) button.disclose')];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const next = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  buttons[Math.max(0, Math.min(buttons.length - 1, next))].focus();
});

ui.views.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-view]');
  if (!button) return;
  view = button.dataset.view;
  updateViewButtons();
  redrawAll();
});

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  signIn(ui.token.value);
});
ui.signOut.addEventListener('click', signOut);
for (const role of ['agent', 'manager']) {
  $(`dev-${role}`).addEventListener('click', async () => {
    try {
      signIn(await mint(role), `dev:${role}`);
    } catch (err) {
      showSignIn(err.message);
    }
  });
}

// Running timers: one tick a second rewrites only the timer texts.
setInterval(() => tickTimers(ui.body), 1000);

// -- start ------------------------------------------------------------------------------------

async function init() {
  fetch('/console/config').then((r) => (r.ok ? r.json() : {})).then((config) => {
    ui.dev.hidden = !config.devTokens;
  }).catch(() => {});
  // `python -m app demo` prints a URL with the token in the fragment (never sent to the server).
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get('token')) {
    history.replaceState(null, '', location.pathname + location.search);
    signIn(fragment.get('token'), fragment.get('source') ?? 'pasted');
    return;
  }
  const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) ?? 'null');
  if (saved?.token) signIn(saved.token, saved.source);
  else showSignIn();
}

init();
