// Type declarations for sessions-client.js, the public API of docs/client.md.
// Checked against the module by tests/static/test_client_package.py: every export both
// ways, the client's public members, options and stats, and the session types
// against the service's own models (app/models.py).

export { PatchError, applyOperation, applyPatch, deepEqual, parsePointer } from './json-patch.js';
export type { Operation } from './json-patch.js';

// -- the sessions, in the wire form of one item of GET /sessions/active ---------------------

export type SessionDialState = 'None' | 'Active';
export type SessionCallState = 'Disconnected' | 'Ringing' | 'Connected' | 'Hold' | 'Passive';
export type SessionQueueStates = 'None' | 'Queued' | 'Ringing' | 'Connected' | 'Hold' | 'Disconnected';
export type FlowChannels = 'Voice' | 'Chat' | 'Fax';
export type SessionHoldReasons = 'None' | 'Transferring';
export type SessionMemberCallState = 'None' | 'Ringing' | 'Connected' | 'Hold';
export type SessionMemberRoles = 'None' | 'Caller' | 'Agent' | 'Transfer';
export type SessionDirections = 'Incoming' | 'Outgoing';

export interface CustomerBreadcrumb {
  readonly id?: string;
  readonly name?: string;
}

export interface SessionLogInfo {
  readonly date?: string;
  readonly message?: string;
}

export interface SessionMemberInfo {
  readonly identity?: string;
  readonly endpointId?: string;
  readonly displayName?: string;
  readonly isOriginalMember?: boolean;
  readonly avatarUrl?: string;
  readonly applicationData?: Readonly<Record<string, string>>;
  readonly callState?: SessionMemberCallState;
  readonly role?: SessionMemberRoles;
  readonly callSid?: string;
  readonly muted?: boolean;
}

/** A call session. Fields that are null are absent. */
export interface SessionInfo {
  readonly dialState?: SessionDialState;
  readonly callState?: SessionCallState;
  readonly queueState?: SessionQueueStates;
  readonly accountId?: string;
  readonly accountName?: string;
  readonly customerId?: string;
  readonly customerBreadcrumb?: readonly CustomerBreadcrumb[];
  readonly customerName?: string;
  readonly endpointId?: string;
  readonly endpointName?: string;
  readonly dateCompleted?: string;
  readonly destination?: string;
  readonly toAddress?: string;
  readonly fromAddress?: string;
  readonly fromName?: string;
  readonly answeredByName?: string;
  readonly queueMemberId?: string;
  readonly channel?: FlowChannels;
  readonly ended?: boolean;
  readonly outcome?: string;
  readonly callSid?: string;
  readonly consoleData?: string;
  readonly holdQueueName?: string;
  readonly heldByUserId?: string;
  readonly holdReason?: SessionHoldReasons;
  readonly conferenceSid?: string;
  readonly displayName?: string;
  readonly log?: readonly SessionLogInfo[];
  readonly members?: readonly SessionMemberInfo[];
  readonly callbackNumber?: string;
  readonly answeredById?: string;
  readonly direction?: SessionDirections;
  readonly fromPhoneNumber?: string;
  readonly mostRecentParticipantCallSid?: string;
  readonly wasMissed?: boolean;
  readonly ringQueueId?: string;
  readonly id?: string;
  readonly dateCreated?: string;
  readonly dateLastModified?: string;
  readonly createdBy?: string;
  readonly lastModifiedBy?: string;
}

// -- the client ------------------------------------------------------------------------------

export type TransportName = 'websocket' | 'sse' | 'poll';
export type ClientState = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'closed';

/** What the state is current at. As text: `epoch:cursor`. */
export interface Position {
  readonly epoch: string;
  readonly cursor: number;
}

/** What `saveState()` returns: plain JSON, to keep (e.g. in sessionStorage) and give back as `initialState`. */
export interface SavedState {
  /** `epoch:cursor` (or a Position). */
  readonly position: string | Position;
  readonly sessions: { readonly [id: string]: SessionInfo };
  /** Whose view it is (from the token's claims); a token for another view starts afresh. */
  readonly viewer?: string | null;
}

export interface SessionsClientOptions {
  /** The service's base URL; default: the page's origin. */
  url?: string | URL;
  /** A bearer JWT. Leave it out and give `getToken` instead. */
  token?: string | null;
  /** Called at start without `token`, shortly before each token's `exp`, and once after a refused token. */
  getToken?: (() => Promise<string> | string) | null;
  /** Which transports to try, in order. Default: websocket, sse, poll. */
  transports?: readonly TransportName[];
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  refreshBeforeMs?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  pollWaitSeconds?: number;
  fallbackMemoryMs?: number;
  /** A state saved by `saveState()` (e.g. before a page reload): the first connection resumes from it. */
  initialState?: SavedState | null;
  /** Also keep who is present (`client.presence`, the `presence` event), on WebSocket and SSE. */
  presence?: boolean;
  /** Check the state against every digest the server sends; on a mismatch, report it and reset. Default true. */
  verifyDigests?: boolean;
  /** Long-poll: ask for a digest after this many patches (and after each idle poll). Default 50. */
  pollDigestEvery?: number;
  /** WebSocket: acknowledge the position applied after each snapshot and patch (an `ack` message,
   * at most one per 100 ms, carrying the latest), so the server can measure this client's lag. Default true. */
  ack?: boolean;
}

/** An endpoint with a live connection (docs/protocol.md, Presence). */
export interface PresentEndpoint {
  readonly endpointId: string;
  readonly userId: string;
  readonly name?: string;
  /** When its first live connection began (UTC, ISO 8601). */
  readonly since: string;
}

export interface PresenceEvent {
  readonly present: ReadonlyMap<string, PresentEndpoint>;
  /** The endpoint that joined, or null (a whole list arrived, or one left). */
  readonly joined: PresentEndpoint | null;
  readonly left: PresentEndpoint | null;
}

export interface ClientStats {
  readonly connects: number;
  readonly resumes: number;
  readonly resets: number;
  readonly patches: number;
  readonly replayed: number;
  /** Digests checked and matched. */
  readonly verified: number;
  /** Digests checked and not matched (each one a `mismatch` event). */
  readonly mismatches: number;
}

export interface AddedEvent {
  readonly id: string;
  readonly session: SessionInfo;
}

export interface ChangedEvent {
  readonly id: string;
  readonly session: SessionInfo;
  readonly previous: SessionInfo;
  /** The top-level fields that differ. */
  readonly fields: readonly string[];
}

export interface RemovedEvent {
  readonly id: string;
  /** The session's final state. */
  readonly session: SessionInfo;
}

export interface ResetEvent {
  readonly sessions: ReadonlyMap<string, SessionInfo>;
  readonly position: string | null;
}

/** The state did not match the digest the server sent with it (docs/protocol.md, "State digest"). */
export interface MismatchEvent {
  /** The position (`epoch:cursor`) the digest was for. */
  readonly position: string | null;
  /** The server's digest and ours: 16 hex digits each. */
  readonly expected: string;
  readonly actual: string;
  readonly transport: TransportName | null;
  /** True: the state is being thrown away (reconnect without a position, then a `reset`). False for a
   * snapshot's digest: the state is the server's own, so only the report is made. */
  readonly healing: boolean;
}

export interface StatusEvent {
  readonly state: ClientState;
  readonly transport: TransportName | null;
  readonly position: string | null;
  /** With `live`: how the state was reached. */
  readonly how?: 'snapshot' | 'resumed' | 'reset';
  /** With `live` after `resumed`: how many patches were replayed. */
  readonly replayed?: number;
  /** With `reconnecting`. */
  readonly attempt?: number;
  readonly retryInMs?: number;
  /** With `reconnecting` and `closed`: how the last connection ended (a close code or an HTTP status). */
  readonly code?: number | null;
  readonly reason?: string;
  /** With `closed` when the service refused: what `connect()` rejected with. */
  readonly error?: Error;
  /** The token expires at this time (seconds since the epoch) and there is no `getToken`. */
  readonly expiresAt?: number | null;
}

export interface SessionsClientEvents {
  added: AddedEvent;
  changed: ChangedEvent;
  removed: RemovedEvent;
  reset: ResetEvent;
  mismatch: MismatchEvent;
  status: StatusEvent;
  presence: PresenceEvent;
}

export class SessionsClient {
  constructor(options?: SessionsClientOptions);
  /** The options given, over the defaults. */
  readonly options: Readonly<SessionsClientOptions>;
  readonly baseUrl: URL;
  /** The token in use. */
  readonly token: string | null;
  /** Session id to session. Treat the values as read-only; an unchanged session keeps its identity. */
  readonly sessions: ReadonlyMap<string, SessionInfo>;
  readonly position: Position | null;
  /** `position` as `epoch:cursor`. */
  readonly positionText: string | null;
  readonly state: ClientState;
  readonly transport: TransportName | null;
  readonly stats: ClientStats;
  /** With the `presence` option: endpoint id to present endpoint (as last heard; read-only). */
  readonly presence: ReadonlyMap<string, PresentEndpoint>;
  /** Listen for an event; returns a function that removes the listener. */
  on<K extends keyof SessionsClientEvents>(type: K, fn: (detail: SessionsClientEvents[K]) => void): () => void;
  /** Start; resolves once the state is first live, rejects if the service refuses for good. */
  connect(): Promise<void>;
  /** Stop for good. The map keeps its last contents. */
  close(): void;
  /** Drop the current connection and resume at once. */
  reconnect(): void;
  /** The state and its position as plain JSON, or null while there is none. */
  saveState(): SavedState | null;
}

/** Seconds since the epoch at which a JWT expires (its `exp`), or null. Not verified. */
export function tokenExpiry(token: string | null | undefined): number | null;

/** The state digest of docs/protocol.md of `sessions` (id to session): 16 lowercase hex digits. */
export function stateDigest(sessions: { readonly [id: string]: SessionInfo } | ReadonlyMap<string, SessionInfo>): string;

/** Full-jitter exponential backoff: a random delay in [0, min(maxMs, baseMs * 2^attempt)). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random?: () => number): number;
