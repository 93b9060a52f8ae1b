"""Live push: every committed change reaches every subscribed client as a JSON Patch.

- `protocol`: message types, encoding, positions, close codes (pure).
- `views`: who sees a change, and the ops each kind of viewer gets (pure).
- `resume`: replay-or-snapshot decision for a client's last position (pure-ish).
- `session`: one connection's protocol state machine (pure).
- `outbox`: a bounded per-connection send queue.
- `pump`: writes every connection's queue from one place, a task only for a write that blocks.
- `broker`: Redis pub/sub, one connection per process, one channel per account.
- `feed`: one account's relay on this process: gap detection, catch-up, fan-out.
- `hub`: this process's feeds and connections; drain on shutdown.
- `client`: drives one connection (WebSocket or SSE) over a transport.
- `signals`: SIGTERM -> drain, then let the server shut down.

See docs/protocol.md for the wire protocol.
"""
