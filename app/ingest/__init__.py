"""Use cases that take input in (I/O): each is a class built once from the store
(`app.composition.build_services`) that a route calls in one line,
`await svc.events.handle(parsed)`, and whose result the route renders. Twilio
callbacks: `app.twilio.ingest.Ingest`; the platform's events API: `app.ingest.events`."""
