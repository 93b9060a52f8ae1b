"""The sweep: no call stays stuck. Sessions that are active but have heard nothing
for too long in a state that should have moved on are checked with Twilio's REST
API, and what it says is applied as an ordinary fact (docs/twilio.md)."""
