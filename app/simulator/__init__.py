"""`python -m app simulate` and `python -m app demo`: realistic traffic for a running service.

- `cast`: the accounts, agents and customers calls happen between (pure, seeded).
- `flows`: the six call flows of the Twilio reference as timed steps (pure).
- `sender`: signs Twilio callbacks and posts them and platform events (HTTP).
- `runner`: starts calls at a rate, plays their steps in real time, reports progress.
- `demo`: the service on the embedded store with the simulator running against it.
"""
