"""What an operator sees: request context and ids, structured logs, and the
counters `/metrics` exposes (see docs/operations.md)."""
