// live-transports.js: the three ways sessions-client.js reaches the service
// (docs/protocol.md): WebSocket, Server-Sent Events read with fetch(), and
// long-polling. Each runs one connection until it ends and resolves to an
// `Ended`, which says why and whether to reconnect.

// Why a connection ended. `live`: it had brought the state current first;
// `fatal`: do not reconnect as is; `expired`: reconnect with a fresh token;
// `retryMs`: the server said when; `quiet`: a planned reconnect (token renewal).
export class Ended {
  constructor({ live = false, code = null, reason = '', fatal = false, expired = false, retryMs = null,
    quiet = false } = {}) {
    Object.assign(this, { live, code, reason, fatal, expired, retryMs, quiet });
  }
}

export function fromCloseCode(code, reason, live) {
  if (code === 3005) return new Ended({ live, code, reason, expired: true });
  // 3500-3999, and 1009 (a message of ours was too big): sending it again would fail the same way.
  if ((code >= 3500 && code <= 3999) || code === 1009) return new Ended({ live, code, reason, fatal: true });
  return new Ended({ live, code, reason });
}

// 401, or the service's own 403 (a JSON responseStatus), refuses this user. Any
// other failure, such as a proxy's bare 403 for event streams, refuses only the transport.
function fromHttpResponse(response, live) {
  const { status } = response;
  const ours = (response.headers.get('content-type') || '').includes('json');
  const fatal = status === 401 || (status === 403 && ours);
  return new Ended({ live, code: status, reason: `HTTP ${status}`, fatal });
}

// What the transports share: the watchdog (a connect timeout, then an idle
// timeout) and how a transport reports that the state is live.

class Connection {
  constructor(client, signal, onLive, finish) {
    Object.assign(this, { client, signal, onLive, finish, retryMs: null, closeNotice: null, isLive: false });
    this.timer = setTimeout(() => this.fail('no state in time'), client.options.connectTimeoutMs);
  }

  heard() {
    if (!this.isLive) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fail('nothing heard: link presumed dead'), this.client.options.idleTimeoutMs);
  }

  live({ how, replayed = 0 }) {
    const first = !this.isLive;
    this.isLive = true;
    this.heard();
    if (first) {
      this.client.stats.connects += 1;
      this.onLive();
      this.client._scheduleRefresh(this);
      this.client._onFirstLive?.resolve();
    }
    this.client._status('live', { how, replayed });
  }

  fail(reason) {
    this.finish(new Ended({ live: this.isLive, reason }));
  }

  done() {
    clearTimeout(this.timer);
  }
}

function serviceUrl(client, path, params = {}) {
  const url = new URL(path, client.baseUrl);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) url.searchParams.set(k, v);
  return url;
}

// Acks (docs/protocol.md, `ack`): at most one per this many ms, always the latest applied position.
const ACK_EVERY_MS = 100;

// `?presence=1` when the client keeps presence (WebSocket and SSE; long-poll has none).
const liveParams = (client) => (client.options.presence ? { presence: 1 } : {});

function websocket(client, signal, onLive) {
  return new Promise((resolve) => {
    const url = serviceUrl(client, 'sessions/live', liveParams(client));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    let conn;
    let authSent = false;
    let ackTimer = null; // at most one ack pending
    let pendingAck = null; // the latest applied position not acknowledged yet
    let lastAck = null; // `epoch:cursor` of the last ack sent
    let lastAckAt = -Infinity;
    const finish = (ended) => {
      clearTimeout(ackTimer);
      pendingAck = null;
      conn.done();
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState <= 1) ws.close(1000);
      ended.retryMs ??= conn.retryMs;
      resolve(ended);
    };
    try {
      ws = new WebSocket(url);
    } catch (err) {
      resolve(new Ended({ reason: String(err) }));
      return;
    }
    conn = new Connection(client, signal, onLive, finish);
    conn.send = (msg) => ws.readyState === 1 && ws.send(JSON.stringify(msg));
    conn.renew = () => conn.send({ type: 'auth', token: client.token });
    // The client applied a snapshot or patch and is now at `position`: acknowledge it, coalesced
    // (a burst of patches costs one ack per ACK_EVERY_MS, carrying the last of them).
    const flushAck = () => {
      ackTimer = null;
      const at = pendingAck;
      pendingAck = null;
      if (!at || !authSent || ws.readyState !== 1) return;
      const text = `${at.epoch}:${at.cursor}`;
      if (text === lastAck) return;
      lastAck = text;
      lastAckAt = performance.now();
      ws.send(JSON.stringify({ type: 'ack', cursor: at.cursor, epoch: at.epoch }));
    };
    conn.applied = (position) => {
      if (!client.options.ack || !authSent || ws.readyState !== 1) return;
      pendingAck = { epoch: position.epoch, cursor: position.cursor };
      if (ackTimer === null) ackTimer = setTimeout(flushAck, Math.max(0, lastAckAt + ACK_EVERY_MS - performance.now()));
    };
    signal.addEventListener('abort', () => finish(new Ended({ live: conn.isLive, reason: 'aborted' })), { once: true });
    ws.onopen = () => {
      const auth = { type: 'auth', token: client.token };
      if (client.position) auth.since = client.positionText;
      conn.send(auth);
      authSent = true;
    };
    ws.onmessage = (event) => {
      conn.heard();
      let msg;
      try { msg = JSON.parse(event.data); } catch { return conn.fail('unreadable message'); }
      return client._handle(msg, conn);
    };
    ws.onclose = (event) => finish(fromCloseCode(event.code, event.reason, conn.isLive));
  });
}

// Server-Sent Events read with fetch(), not EventSource: fetch can send the
// token in a header, and we choose when and from where to reconnect.
async function sse(client, signal, onLive) {
  let settle;
  const ended = new Promise((resolve) => { settle = resolve; });
  const stop = new AbortController();
  signal.addEventListener('abort', () => stop.abort(), { once: true });
  const conn = new Connection(client, signal, onLive, (e) => { stop.abort(); settle(e); });
  conn.renew = () => conn.finish(new Ended({ live: true, retryMs: 0, quiet: true, reason: 'token renewed' }));
  const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${client.token}` };
  if (client.position) headers['Last-Event-ID'] = client.positionText;
  (async () => {
    const response = await fetch(serviceUrl(client, 'sessions/live', liveParams(client)),
      { headers, signal: stop.signal, cache: 'no-store' });
    if (!response.ok || !(response.headers.get('content-type') || '').startsWith('text/event-stream')) {
      return conn.finish(fromHttpResponse(response, false));
    }
    await readEvents(response.body, (data) => {
      conn.heard();
      const msg = JSON.parse(data);
      client._handle(msg, conn);
    });
    const notice = conn.closeNotice;
    return conn.finish(notice ? fromCloseCode(notice.code, notice.reason, conn.isLive)
      : new Ended({ live: conn.isLive, reason: 'stream ended' }));
  })().catch((err) => conn.finish(new Ended({ live: conn.isLive, reason: String(err?.message ?? err) })));
  const result = await ended;
  conn.done();
  result.retryMs ??= conn.retryMs;
  return result;
}

async function readEvents(body, onData) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length) onData(data.join('\n'));
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line[5] === ' ' ? 6 : 5));
      } // id: and retry: are in the messages themselves; comments are ignored
    }
  }
}

async function poll(client, signal, onLive) {
  let conn;
  const finished = new Promise((resolve) => { conn = new Connection(client, signal, onLive, resolve); });
  conn.renew = () => {}; // every request sends the current token
  // Messages are handled as they come, but a long-poll is live once per response.
  const quiet = { live() {}, fail: (reason) => conn.fail(reason) };
  const loop = async () => {
    let first = true;
    let idle = false; // the last response had nothing: ask for a digest, as a ping would bring
    while (!signal.aborted) {
      const since = client.positionText;
      const digest = since && client.options.verifyDigests && (first || idle || client._digestDue()) ? 1 : null;
      const url = serviceUrl(client, 'sessions/changes',
        { since, wait: since ? (first ? 0 : client.options.pollWaitSeconds) : null, digest });
      const response = await fetch(url, { headers: { Authorization: `Bearer ${client.token}` }, signal, cache: 'no-store' });
      if (!response.ok) return conn.finish(fromHttpResponse(response, conn.isLive));
      const body = await response.json();
      conn.heard();
      let replayed = 0;
      let how = null;
      for (const msg of body.messages) {
        if (msg.type === 'patch') replayed += 1;
        if (msg.type === 'snapshot') how = msg.reset || client._forceReset ? 'reset' : 'snapshot'; // forced: a desync
        client._handle(msg, quiet);
        if (!client.position) return conn.fail('patch failed');
      }
      client.position = { epoch: body.epoch, cursor: body.cursor };
      idle = body.messages.length === 0;
      if (!client._verify(body.digest, quiet)) return undefined; // it failed the connection: a reset follows
      if (first || how === 'reset') {
        if (first && how !== 'snapshot' && how !== 'reset') {
          client.stats.resumes += 1;
          client.stats.replayed += replayed;
        }
        conn.live({ how: how ?? 'resumed', replayed });
      }
      first = false;
    }
    return conn.finish(new Ended({ live: conn.isLive, reason: 'aborted' }));
  };
  loop().catch((err) => conn.finish(new Ended({ live: conn.isLive, reason: String(err?.message ?? err) })));
  const result = await finished;
  conn.done();
  return result;
}

export const TRANSPORTS = { websocket, sse, poll };
