"""Sample data the benchmarks and the tests share (tests may import bench/, never the
other way round)."""

from __future__ import annotations

from typing import Any


def full_session_fields() -> dict[str, Any]:
    """Every settable SessionInfo field, non-null (wire names)."""
    return {
        "dialState": "Active", "callState": "Connected", "queueState": "Connected",
        "accountName": "Acme Corp", "customerId": "C1",
        "customerBreadcrumb": [{"id": "C0", "name": "Parent Co"}, {"id": "C1", "name": "Acme, Inc"}],
        "customerName": "Acme", "endpointId": "E1", "endpointName": "Alice's phone",
        "dateCompleted": "2024-05-01T10:30:00Z", "destination": "+15551230000",
        "toAddress": "+15551230000", "fromAddress": "+15559870000", "fromName": "Bob <Caller>",
        "answeredByName": "Alice", "queueMemberId": "QM1", "channel": "Voice", "outcome": "Answered",
        "callSid": "CA0001", "consoleData": "{\"k\":1}", "holdQueueName": "hold-1",
        "heldByUserId": "U9", "holdReason": "Transferring", "conferenceSid": "CF0001",
        "displayName": "Bob & Co", "log": [{"date": "2024-05-01T10:00:01Z", "message": "ringing"}],
        "members": [{
            "identity": "client:alice", "endpointId": "E2", "displayName": "Alice",
            "isOriginalMember": False, "avatarUrl": "https://x.test/a.png",
            "applicationData": {"crm": "42", "tier": "gold"}, "callState": "Connected",
            "role": "Agent", "callSid": "CA0002", "muted": False,
        }],
        "callbackNumber": "+15550001111", "answeredById": "E3", "direction": "Incoming",
        "fromPhoneNumber": "+15559870000", "mostRecentParticipantCallSid": "CA0002",
        "wasMissed": False, "ringQueueId": "RQ1", "createdBy": "U1", "lastModifiedBy": "U2",
    }
