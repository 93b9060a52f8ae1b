"""Twilio voice webhooks: signatures, callback parsing, the pure state machine
that turns callbacks into session state, and the I/O that resolves and applies them.

Pure: `signature`, `callbacks`, `facts`, `derive`, `transitions`.
I/O: `links` (which session a callback belongs to), `deadletters`, `ingest`.
"""
