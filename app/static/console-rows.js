// How one call session looks in the console's table. Rendering only: the
// page (console.js) owns the state. Text always goes in as text, never HTML.

const COLUMNS = ['Call', 'From → To', 'State', 'Time', 'Hold', 'Members', 'Latest'];
const TALKING = new Set(['Connected', 'Hold', 'Passive']);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const slug = (text) => String(text).toLowerCase().replace(/[^a-z0-9]+/g, '-');
const badge = (kind, text, title) => h('span', { class: `b b-${kind}-${slug(text)}`, title }, text);
// Twilio SIDs are 34 characters; in a table cell the last few tell them apart.
const shortSids = (text) => String(text).replace(/\b(CA|CF|AC)[0-9a-f]{32}\b/g, (sid) => `${sid.slice(0, 2)}…${sid.slice(-5)}`);
const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '');

export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  const mm = hms[0] ? String(hms[1]).padStart(2, '0') : String(hms[1]);
  return `${hms[0] ? `${hms[0]}:` : ''}${mm}:${String(hms[2]).padStart(2, '0')}`;
}

/** Table order: oldest call first, as GET /sessions/active sorts. */
export function sessionKey(session, id) {
  return `${session.dateCreated ?? ''}\u0000${id}`;
}

/** The user's own calls: the service's visibility rule for one endpoint. */
export function isMine(session, endpointId) {
  if (!endpointId) return false;
  return session.endpointId === endpointId || session.answeredById === endpointId
    || (session.members ?? []).some((m) => m.endpointId === endpointId);
}

/** When the call was answered: Twilio's answer is in the log ("call CA… in-progress");
 * a call fed only by platform events may not say, so then the page's own
 * first sighting of it connected (`seen`) stands in. */
export function answeredAt(session, seen) {
  const answers = (session.log ?? [])
    .filter((line) => /\bin-progress\b/.test(line.message ?? ''))
    .map((line) => Date.parse(line.date))
    .filter(Number.isFinite);
  if (answers.length) return Math.min(...answers);
  return TALKING.has(session.callState) ? (seen ?? Date.parse(session.dateCreated)) : null;
}

// -- the sweep (docs/twilio.md): a stale session, and what the sweep did -------------------

const STALE_PREFIX = 'stale: ';

/** The stale mark the sweep files when it could not check a quiet session with Twilio,
 * if it is the session's latest log line (anything heard since clears it); else null. */
export function staleMark(session) {
  const log = session.log ?? [];
  const last = log[log.length - 1];
  return last && (last.message ?? '').startsWith(STALE_PREFIX) ? last : null;
}

export const isStale = (session) => staleMark(session) !== null;

/** One line of GET /sessions/sweep's counts. */
export function sweepSummary(counts) {
  if (!counts.intervalSeconds && !counts.lastPassAt) return 'Sweep: off';
  const resolved = Object.values(counts.resolved ?? {}).reduce((a, b) => a + b, 0);
  const parts = [`${counts.asked} checked`, `${resolved} resolved`, `${counts.lost} lost`, `${counts.stale} stale`];
  if (counts.errors) parts.push(`${counts.errors} errors`);
  if (counts.lastPassAt) parts.push(`last ${clock(counts.lastPassAt)}`);
  return `Sweep: ${parts.join(' · ')}`;
}

export function summary(sessions) {
  const count = (test) => sessions.filter(test).length;
  const parts = [`${sessions.length} active`];
  const add = (n, label) => n && parts.push(`${n} ${label}`);
  add(count((s) => s.callState === 'Ringing'), 'ringing');
  add(count((s) => s.callState === 'Connected'), 'connected');
  add(count((s) => s.callState === 'Hold'), 'on hold');
  add(count((s) => s.queueState === 'Queued'), 'queued');
  add(count(isStale), 'stale');
  return parts.join(' · ');
}

function title(session, id) {
  return session.displayName ?? session.customerName ?? session.fromName ?? session.fromAddress ?? id;
}

function callCell(id, session, { open, manager }) {
  const dir = session.direction === 'Outgoing' ? ['out', '↗', 'Out'] : session.direction === 'Incoming' ? ['in', '↘', 'In'] : null;
  const who = [];
  if (session.customerName && session.customerName !== title(session, id)) who.push(session.customerName);
  const agent = session.answeredByName ?? session.endpointName ?? session.endpointId;
  if (manager && agent) who.push(`agent ${agent}`);
  return [
    h('button', { type: 'button', class: 'disclose', 'data-id': id, 'aria-expanded': String(open),
      'aria-controls': `details-${slug(id)}` },
    dir && h('span', { class: `dir dir-${dir[0]}`, title: session.direction }, h('span', { 'aria-hidden': 'true' }, dir[1]), ` ${dir[2]}`),
    h('span', { class: 'title' }, title(session, id))),
    who.length ? h('span', { class: 'sub' }, who.join(' · ')) : null,
  ];
}

function addressCell(session) {
  const from = session.fromName && session.fromName !== session.fromAddress ? session.fromName : null;
  return [
    from ? h('span', { class: 'name' }, from) : null,
    h('span', { class: 'addr' }, session.fromAddress ?? '—'),
    h('span', { class: 'addr to' }, h('span', { class: 'arrow' }, '→ '), h('span', { class: 'sr-only' }, 'to '),
      session.toAddress ?? session.destination ?? '—'),
  ];
}

function stateCell(session, ended) {
  if (ended) {
    const outcome = session.wasMissed ? 'Missed' : 'Ended';
    return [badge('call', outcome), session.outcome ? h('span', { class: 'sub' }, session.outcome) : null];
  }
  const stale = staleMark(session);
  return [
    session.callState ? badge('call', session.callState, 'Call state') : h('span', { class: 'sub' }, 'starting'),
    session.queueState && session.queueState !== 'None' ? badge('queue', `Queue: ${session.queueState}`, 'Queue state') : null,
    stale ? badge('stale', 'Stale', stale.message.slice(STALE_PREFIX.length)) : null,
  ];
}

function timerCell(session, { ended, connectedAt }) {
  const created = Date.parse(session.dateCreated);
  if (ended) {
    const end = Date.parse(session.dateCompleted ?? session.dateLastModified);
    return h('span', { class: 'timer' }, Number.isFinite(created) && Number.isFinite(end) ? duration(end - created) : '—');
  }
  const answered = answeredAt(session, connectedAt);
  const since = answered ?? created;
  if (!Number.isFinite(since)) return '—';
  const label = answered ? 'connected' : session.queueState === 'Queued' ? 'queued' : 'ringing';
  return h('span', { class: 'timer', 'data-since': since, 'data-label': label },
    h('span', { class: 'elapsed' }, duration(Date.now() - since)), h('span', { class: 'sub' }, label));
}

export function tickTimers(root) {
  for (const el of root.querySelectorAll('.timer[data-since]')) {
    el.firstChild.textContent = duration(Date.now() - Number(el.dataset.since));
  }
}

function holdCell(session) {
  if (session.callState !== 'Hold' && !session.heldByUserId) return h('span', { class: 'none' }, '—');
  const holder = session.heldByUserId;
  const member = (session.members ?? []).find((m) => m.identity === `client:${holder}` || m.endpointId === holder);
  const parts = [holder ? `by ${member?.displayName ?? holder}` : null,
    session.holdReason === 'Transferring' ? 'transferring' : null, session.holdQueueName].filter(Boolean);
  return [badge('call', 'On hold'), parts.length ? h('span', { class: 'sub held-by' }, parts.join(' · ')) : null];
}

function memberName(m, session) {
  if (m.displayName) return m.displayName;
  if (m.identity) return m.identity.replace(/^client:/, '');
  if (m.role === 'Caller') {  // a leg known only by its SID so far: who placed the call
    return (session.direction === 'Outgoing' ? session.endpointName : session.customerName ?? session.fromName) ?? 'Caller';
  }
  return shortSids(m.callSid ?? '?');
}

function membersCell(session) {
  const members = session.members ?? [];
  if (!members.length) return h('span', { class: 'none' }, '—');
  return h('ul', { class: 'members' }, members.map((m) => h('li', { class: m.muted ? 'member muted' : 'member' },
    h('span', { class: 'name', title: m.identity ?? m.callSid }, memberName(m, session)),
    m.role && m.role !== 'None' ? badge('role', m.role, 'Role') : null,
    m.callState && m.callState !== 'None' ? badge('member', m.callState, 'Member state') : null,
    m.muted ? badge('mute', 'Muted') : null)));
}

function latestCell(session) {
  const log = session.log ?? [];
  const last = log[log.length - 1];
  if (!last) return h('span', { class: 'none' }, '—');
  return [h('time', { datetime: last.date, class: 'sub' }, clock(last.date)), ' ', h('span', { class: 'log', title: last.message }, shortSids(last.message ?? ''))];
}

/** Fill `tr` with one session's cells. */
export function renderRow(tr, id, session, opts) {
  const cells = [callCell(id, session, opts), addressCell(session), stateCell(session, opts.ended), timerCell(session, opts),
    holdCell(session), membersCell(session), latestCell(session)];
  tr.className = `session state-${slug(opts.ended ? 'ended' : session.callState ?? 'none')}${opts.ended ? ' leaving' : ''}`
    + (!opts.ended && isStale(session) ? ' stale' : '');
  tr.dataset.id = id;
  tr.replaceChildren(...cells.map((content, i) => h('td', { 'data-label': COLUMNS[i], class: `c-${slug(COLUMNS[i])}` },
    h('div', { class: 'cell' }, content))));
}

/** The row under a session with everything else about it, shown on demand. */
export function renderDetails(tr, id, session, open) {
  tr.id = `details-${slug(id)}`;
  if (!open) { tr.replaceChildren(); return; }
  const facts = [
    ['Session', id], ['Call SID', session.callSid], ['Conference', session.conferenceSid],
    ['Customer', [session.customerName, session.customerId].filter(Boolean).join(' · ')],
    ['Account', session.accountName ?? session.accountId], ['Endpoint', session.endpointName ?? session.endpointId],
    ['Answered by', session.answeredByName ?? session.answeredById], ['Channel', session.channel],
    ['Started', session.dateCreated && new Date(session.dateCreated).toLocaleString()],
  ].filter(([, value]) => value);
  const log = (session.log ?? []).slice(-30);
  tr.replaceChildren(h('td', { colspan: COLUMNS.length },
    h('dl', {}, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    log.length ? h('ol', { class: 'full-log', 'aria-label': 'Call log' },
      log.map((line) => h('li', {}, h('time', { datetime: line.date }, clock(line.date)), ' ', line.message ?? ''))) : null));
}

// -- connections and their lag (GET /live/connections; docs/protocol.md, `ack`) ---------------

const TRANSPORT_LABELS = { websocket: 'WebSocket', sse: 'SSE', poll: 'long-poll' };
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** A connection's lag as text: "2 cursors · 130 ms", or "—" if it never acknowledged. */
export function lagText(connection) {
  const { lagCursors, lagMs } = connection;
  if (lagCursors === null || lagCursors === undefined) return '—';
  return `${plural(lagCursors, 'cursor')}${lagMs === null || lagMs === undefined ? '' : ` · ${lagMs} ms`}`;
}

const LAG_WARN_MS = 1000;

/** Fill `tbody` with one row per connection (GET /live/connections), by user then connection. */
export function renderConnections(tbody, connections) {
  const sorted = [...connections].sort((a, b) => String(a.userId).localeCompare(String(b.userId))
    || String(a.connectionId).localeCompare(String(b.connectionId)));
  tbody.replaceChildren(...sorted.map((c) => {
    const never = c.acked === null || c.acked === undefined;
    const behind = !never && (c.lagCursors > 0 || c.lagMs >= LAG_WARN_MS);
    const cells = [
      ['user', c.userId ?? '—'], ['endpoint', c.endpointId ?? '—'],
      ['transport', TRANSPORT_LABELS[c.transport] ?? c.transport ?? '—'], ['cursor', c.cursor ?? '—'],
      ['acked', never ? '—' : c.acked], ['lag', lagText(c)], ['conflations', c.conflations ?? 0],
    ];
    return h('tr', { class: `connection${never ? ' never-acked' : ''}${behind ? ' behind' : ''}`,
      'data-connection': c.connectionId, 'data-user': c.userId, title: `connection ${c.connectionId}` },
    cells.map(([name, value]) => h('td', { class: `c-${name}` }, String(value))));
  }));
}
