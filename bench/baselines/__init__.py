"""What the service is measured against, each run under uvicorn exactly as the service is (but for
the raw fan-out ceiling's push process, which is the library's own server).

- `check_and_store`: the ceiling for ingest, a bare Starlette route that checks the same Twilio
  signature and does one Redis SET.
- `snapshot_ceiling`: the ceiling for snapshot reads, a bare Starlette route returning the same
  bytes from memory.
- `socketio_server`: what users would pick instead for live push, python-socketio with
  AsyncRedisManager doing the same fan-out job.
- `raw_broadcast`: the ceiling for fan-out, the same frames sent by `websockets`' own asyncio
  server with `broadcast()` (its push process is not under uvicorn: `python -m` runs it)."""
