"""Use cases that take input in (I/O): each is a class built from the store
that a route calls in one line, `await Ingest(...).handle(parsed)`, and
whose result the route maps to a response. Twilio callbacks:
`app.twilio.ingest.Ingest`; the platform's events API: `app.ingest.events`."""
