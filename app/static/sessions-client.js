// sessions-client.js: the live call sessions of one user, in the browser.
//
// A dependency-free ES module (no build step) implementing docs/protocol.md:
// WebSocket first, then Server-Sent Events, then long-polling. It keeps the
// live map of sessions current with JSON Patches, resumes from its last
// position after any disconnect, and refreshes its token before it expires.
// Usage and events: docs/client.md.

import { PatchError, applyOperation, deepEqual, parsePointer } from './json-patch.js';
import { Ended, TRANSPORTS } from './live-transports.js';
import { stateDigest } from './state-digest.js';

export { PatchError, applyOperation, applyPatch, deepEqual, parsePointer } from './json-patch.js';
export { stateDigest } from './state-digest.js';

// -- helpers ----------------------------------------------------------------------------

// A JWT's claims (its payload), or null. Not verified: only to plan ahead.
function tokenClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
    return claims !== null && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** Seconds since the epoch at which a JWT expires (its `exp`), or null. Not verified. */
export function tokenExpiry(token) {
  const exp = tokenClaims(token)?.exp;
  return typeof exp === 'number' ? exp : null;
}

// Whose view a token shows (the claims the server's view depends on), as text;
// a saved state is only resumed by a token for the same view.
function viewerOf(token) {
  const claims = tokenClaims(token);
  if (!claims) return null;
  const roles = claims.roles ?? claims.Roles;
  return JSON.stringify([claims.sub ?? null, claims.accountId ?? null, claims.endpointId ?? null,
    Array.isArray(roles) ? [...roles].map(String).sort() : []]);
}

// `epoch:cursor` or {epoch, cursor} as {epoch, cursor}; null if it is neither.
function parsePosition(position) {
  let epoch;
  let cursor;
  if (typeof position === 'string') {
    const colon = position.lastIndexOf(':');
    epoch = position.slice(0, colon);
    cursor = /^(0|[1-9][0-9]*)$/.test(position.slice(colon + 1)) ? Number(position.slice(colon + 1)) : NaN;
  } else if (position !== null && typeof position === 'object') {
    ({ epoch, cursor } = position);
  }
  if (typeof epoch === 'string' && epoch !== '' && Number.isSafeInteger(cursor) && cursor >= 0) return { epoch, cursor };
  return null;
}

/** Full-jitter exponential backoff: a random delay in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt, baseMs, maxMs, random = Math.random) {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

function changedFields(before, after) {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => before[k] !== after[k] && !deepEqual(before[k], after[k]));
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const done = () => { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve(); };
  const timer = setTimeout(done, ms);
  signal?.addEventListener('abort', done, { once: true });
});

// -- the client ---------------------------------------------------------------------------

const DEFAULTS = {
  url: undefined, // the service's base URL; default: this page's origin
  token: null, // a bearer JWT; or leave it out and give getToken
  getToken: null, // async () => a fresh token; called at start (without `token`) and near expiry
  transports: ['websocket', 'sse', 'poll'],
  backoffBaseMs: 500,
  backoffMaxMs: 15000,
  refreshBeforeMs: 60000, // fetch a new token this long before `exp`
  connectTimeoutMs: 10000, // from opening a transport to the first state
  idleTimeoutMs: 30000, // nothing heard (the server pings every 25 s): the link is dead (docs/protocol.md)
  pollWaitSeconds: 25,
  fallbackMemoryMs: 300000, // after WebSockets were refused, skip them this long
  initialState: null, // what saveState() gave (e.g. before a page reload): resume from it
  presence: false, // also keep who is present (WebSocket and SSE: `?presence=1`, docs/protocol.md)
  verifyDigests: true, // check the state against each digest the server sends; on a mismatch, reset
  pollDigestEvery: 50, // long-poll: ask for a digest after this many patches (and after each idle poll)
  ack: true, // WebSocket: tell the server the position applied (`ack`, coalesced), so it can measure our lag
};

export class SessionsClient {
  constructor(options = {}) {
    this.options = { ...DEFAULTS, ...options };
    const origin = typeof location === 'undefined' ? undefined : location.href;
    this.baseUrl = new URL(this.options.url ?? '/', origin);
    this.token = this.options.token;
    this.sessions = new Map(); // id -> SessionInfo (wire JSON); treat as read-only
    this.position = null; // {epoch, cursor}: what the state is current at
    this.state = 'idle'; // idle | connecting | live | reconnecting | closed
    this.transport = null; // websocket | sse | poll, while connected
    this.stats = { connects: 0, resumes: 0, resets: 0, patches: 0, replayed: 0, verified: 0, mismatches: 0 };
    this.presence = new Map(); // endpointId -> present endpoint, with the `presence` option; treat as read-only
    this._presenceVersion = -1;
    this._unverified = 0; // patches applied since the last digest was checked
    this._listeners = new Map();
    this._doc = {}; // the same state as one JSON document, for patching
    this._refused = new Map(); // transport -> refused until (ms)
    this._abort = null;
    this._current = null; // the running transport's own abort controller
    if (this.options.initialState !== null && this.options.initialState !== undefined) {
      this._restore(this.options.initialState);
    }
  }

  // -- a saved state ---------------------------------------------------------------------
  /** The state and its position, as plain JSON to keep (e.g. in sessionStorage) and
   * give back as `initialState`; null while there is no state (never live, or desynced). */
  saveState() {
    if (!this.position) return null;
    return { position: this.positionText, sessions: { ...this._doc }, viewer: viewerOf(this.token) };
  }

  _restore({ position, sessions, viewer = null }) {
    const at = parsePosition(position);
    if (!at || sessions === null || typeof sessions !== 'object' || Array.isArray(sessions)) {
      throw new TypeError('initialState must be what saveState() returned: {position: "epoch:cursor", sessions: {id: session}}');
    }
    this._doc = { ...sessions };
    this.sessions = new Map(Object.entries(this._doc));
    this.position = at;
    this._restoredFor = viewer; // checked against the token before the first connection
    this._announce = true; // the page learns of these sessions as `added` on connect()
  }

  // -- events ------------------------------------------------------------------------------
  /** Listen for added, changed, removed, reset, mismatch or status; returns a function that stops. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type).delete(fn);
  }

  _emit(type, detail) {
    for (const fn of this._listeners.get(type) ?? []) {
      try { fn(detail); } catch (err) { setTimeout(() => { throw err; }); }
    }
  }

  _status(state, extra = {}) {
    this.state = state;
    this._emit('status', { state, transport: this.transport, position: this.positionText, ...extra });
  }

  get positionText() {
    return this.position ? `${this.position.epoch}:${this.position.cursor}` : null;
  }

  // -- lifecycle ------------------------------------------------------------------------------
  /** Start; resolves once the state is live, rejects if the server refuses us for good. */
  connect() {
    if (this._abort) return this._firstLive;
    this._abort = new AbortController();
    this._firstLive = new Promise((resolve, reject) => { this._onFirstLive = { resolve, reject }; });
    this._firstLive.catch(() => {}); // whoever does not await connect() still sees 'status'
    if (this._announce) {
      this._announce = false;
      this._diff(new Map(), this.sessions, new Map());
    }
    this._run(this._abort.signal);
    return this._firstLive;
  }

  /** Stop for good (until connect() again). The map keeps its last contents. */
  close() {
    this._abort?.abort();
    this._abort = null;
    this._current?.abort();
    clearTimeout(this._refreshTimer);
    this.transport = null;
    this._status('closed', { reason: 'closed by the page' });
  }

  /** Drop the current connection and resume at once (e.g. after a network change). */
  reconnect() {
    this._skipDelay = true;
    this._current?.abort();
  }

  async _run(signal) {
    let attempt = 0;
    let liveSince = 0;
    this._status('connecting');
    try {
      if (!this.token && this.options.getToken) this.token = await this._freshToken(signal);
    } catch (err) {
      if (!signal.aborted) this._stop(new Ended({ reason: `no token: ${err.message}`, fatal: true }));
      return;
    }
    if (this._restoredFor !== undefined) {
      // A state saved for someone else's view cannot be resumed: start afresh (reported as a reset).
      if (this._restoredFor !== null && this._restoredFor !== viewerOf(this.token)) {
        this.position = null;
        this._forceReset = true;
      }
      this._restoredFor = undefined;
    }
    while (!signal.aborted) {
      const ended = await this._cycle(signal, () => { attempt = 0; liveSince = Date.now(); });
      if (signal.aborted) break;
      const renewable = ended.expired || ended.code === 3501 || ended.code === 401;
      if ((ended.fatal || ended.expired) && !(renewable && await this._retryAuth(ended, signal))) {
        this._stop(ended);
        break;
      }
      // A connection that was live only briefly keeps growing the delay (a flapping server).
      if (!ended.live || Date.now() - liveSince < 5000) attempt += 1;
      const retryMs = ended.retryMs ?? (this._skipDelay ? 0
        : backoffDelay(Math.max(0, attempt - 1), this.options.backoffBaseMs, this.options.backoffMaxMs));
      this._skipDelay = false;
      this.transport = null;
      if (!ended.quiet) this._status('reconnecting', { attempt, retryInMs: retryMs, code: ended.code, reason: ended.reason });
      await this._wait(retryMs, signal);
    }
  }

  _stop(ended) {
    this.transport = null;
    this._abort = null;
    clearTimeout(this._refreshTimer);
    const error = new Error(`live push refused: ${ended.code} ${ended.reason}`.trim());
    this._status('closed', { code: ended.code, reason: ended.reason, error });
    this._onFirstLive?.reject(error);
  }

  // After an auth failure: try again with a fresh token, if we can get one
  // (once per failure streak: a token that is refused twice is not the problem).
  async _retryAuth(ended, signal) {
    if (!this.options.getToken || this._authRetried) return false;
    this._authRetried = true;
    try {
      this.token = await this._freshToken(signal);
      return true;
    } catch {
      return false;
    }
  }

  async _freshToken(signal) {
    const token = await this.options.getToken();
    if (signal.aborted) throw new Error('closed');
    return token;
  }

  _wait(ms, signal) {
    // Back online: try now rather than at the end of the delay.
    const early = new AbortController();
    const wake = () => early.abort();
    globalThis.addEventListener?.('online', wake);
    signal.addEventListener('abort', wake);
    return sleep(ms, early.signal).finally(() => {
      globalThis.removeEventListener?.('online', wake);
      signal.removeEventListener('abort', wake);
    });
  }

  // One pass down the transport list: the first that becomes live is used
  // until it drops. Returns why the connection ended.
  async _cycle(signal, onLive) {
    let last = new Ended({ reason: 'no transport' });
    const [preferred] = this.options.transports;
    for (const name of this._transportOrder()) {
      const current = new AbortController();
      const stop = () => current.abort();
      this._current = current;
      signal.addEventListener('abort', stop);
      this.transport = name;
      const ended = await TRANSPORTS[name](this, current.signal, () => {
        onLive();
        this._authRetried = false;
        if (name !== preferred) this._refused.set(preferred, Date.now() + this.options.fallbackMemoryMs);
      });
      signal.removeEventListener('abort', stop);
      // Try the next transport only when this one never reached the service: a
      // close code of the protocol, or the service's 503, means it did (back off instead).
      const reached = ended.code >= 3000 || ended.code === 503;
      if (ended.live || reached || ended.fatal || ended.expired || ended.retryMs !== null || current.signal.aborted) {
        return ended;
      }
      last = ended;
    }
    return last;
  }

  _transportOrder() {
    const now = Date.now();
    const usable = this.options.transports.filter((t) => !(this._refused.get(t) > now));
    return usable.length ? usable : this.options.transports;
  }

  // -- what the server says ---------------------------------------------------------------
  _handle(msg, conn) {
    switch (msg.type) {
      case 'snapshot': return this._snapshot(msg, conn);
      case 'resumed':
        this.position = { epoch: msg.epoch, cursor: msg.cursor };
        this.stats.resumes += 1;
        this.stats.replayed += msg.replayed;
        return conn.live({ how: 'resumed', replayed: msg.replayed });
      case 'patch':
        this._patch(msg, conn);
        // Acknowledged once applied and (when it carries a digest) verified; not after a desync.
        if (this.position && this._verify(msg.digest, conn)) conn.applied?.(this.position);
        return undefined;
      case 'ping':
        if (this.position && typeof msg.cursor === 'number' && msg.cursor > this.position.cursor) this.position.cursor = msg.cursor;
        conn.send?.({ type: 'pong' });
        return this.position?.cursor === msg.cursor ? this._verify(msg.digest, conn) : undefined;
      case 'authenticated': return this._scheduleRefresh(conn);
      case 'reconnect': conn.retryMs = msg.delayMs; return undefined;
      case 'close': conn.closeNotice = msg; return undefined;
      case 'presence': return this._presence(msg);
      default: return undefined; // newer server messages are ignored
    }
  }

  _snapshot(msg, conn) {
    const old = this.sessions;
    const forced = this._forceReset;
    this._forceReset = false;
    this._doc = msg.sessions;
    this.sessions = new Map(Object.entries(msg.sessions));
    this.position = { epoch: msg.epoch, cursor: msg.cursor };
    this._diff(old, this.sessions, new Map());
    const reset = Boolean(msg.reset) || forced;
    if (reset) {
      this.stats.resets += 1;
      this._emit('reset', { sessions: this.sessions, position: this.positionText });
    }
    conn.live({ how: reset ? 'reset' : 'snapshot' });
    this._verify(msg.digest, conn, false); // a snapshot is the server's own state: nothing to heal
    conn.applied?.(this.position);
  }

  _patch(msg, conn) {
    const finals = new Map();
    let doc = this._doc;
    try {
      for (const op of msg.ops) {
        const tokens = parsePointer(op.path);
        if (op.op === 'remove' && tokens.length === 1) finals.set(tokens[0], doc[tokens[0]]);
        doc = applyOperation(doc, op);
      }
    } catch (err) {
      this._desync(conn, `patch ${msg.cursor} did not apply: ${err.message}`);
      return;
    }
    const old = this.sessions;
    this._doc = doc;
    this.sessions = new Map(Object.entries(doc));
    this.position.cursor = msg.cursor;
    this.stats.patches += 1;
    this._unverified += 1;
    this._diff(old, this.sessions, finals);
  }

  // Our copy no longer matches the server's: end this connection; the next starts over
  // from a fresh snapshot (reported as a reset).
  _desync(conn, reason) {
    this.position = null;
    this._forceReset = true;
    conn.fail(reason);
  }

  // -- state digest (docs/protocol.md, "State digest") -------------------------------------
  // Compare the state with the digest a message carries (none: nothing to do). On a
  // mismatch, tell the page ('mismatch') and, with `heal`, throw the state away. False then.
  _verify(expected, conn, heal = true) {
    if (typeof expected !== 'string' || !this.options.verifyDigests || !this.position) return true;
    const actual = stateDigest(this._doc);
    this._unverified = 0;
    if (actual === expected) {
      this.stats.verified += 1;
      return true;
    }
    this.stats.mismatches += 1;
    this._emit('mismatch', { position: this.positionText, expected, actual, transport: this.transport, healing: heal });
    if (heal) this._desync(conn, `state digest ${actual} is not the server's ${expected}`);
    return false;
  }

  // Long-poll: whether to ask for a digest with the next request.
  _digestDue() {
    return this.options.verifyDigests && this._unverified >= this.options.pollDigestEvery;
  }

  _diff(before, after, finals) {
    for (const [id, session] of before) {
      if (!after.has(id)) this._emit('removed', { id, session: finals.get(id) ?? session });
    }
    for (const [id, session] of after) {
      const previous = before.get(id);
      if (previous === undefined) this._emit('added', { id, session });
      else if (previous !== session) {
        const fields = changedFields(previous, session);
        if (fields.length) this._emit('changed', { id, session, previous, fields });
      }
    }
  }

  // -- presence (docs/protocol.md, Presence) -------------------------------------------------
  // The whole list replaces ours; a change applies only above the version we hold.
  _presence(msg) {
    if (Array.isArray(msg.present)) {
      this.presence = new Map(msg.present.map((e) => [e.endpointId, e]));
      this._presenceVersion = msg.version;
      this._emit('presence', { present: this.presence, joined: null, left: null });
      return;
    }
    if (!(msg.version > this._presenceVersion)) return;
    this._presenceVersion = msg.version;
    const present = new Map(this.presence);
    if (msg.joined) present.set(msg.joined.endpointId, msg.joined);
    if (msg.left) present.delete(msg.left.endpointId);
    this.presence = present;
    this._emit('presence', { present, joined: msg.joined ?? null, left: msg.left ?? null });
  }

  // -- token refresh -----------------------------------------------------------------------
  _scheduleRefresh(conn) {
    clearTimeout(this._refreshTimer);
    const exp = tokenExpiry(this.token);
    if (exp === null) return;
    const left = exp * 1000 - Date.now();
    const lead = Math.min(this.options.refreshBeforeMs, Math.max(1000, left / 5));
    this._refreshTimer = setTimeout(() => this._refresh(conn), Math.max(0, left - lead));
  }

  async _refresh(conn) {
    if (!this.options.getToken) {
      this._emit('status', { state: this.state, transport: this.transport, position: this.positionText,
        expiresAt: tokenExpiry(this.token) });
      return;
    }
    try {
      this.token = await this.options.getToken();
    } catch (err) {
      this._refreshTimer = setTimeout(() => this._refresh(conn), 5000);
      return;
    }
    conn.renew(); // WebSocket: an auth message; SSE: reconnect with it; long-poll: next request
  }
}
