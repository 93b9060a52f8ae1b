"""A change as a feed keeps it for resumes (app.live.feed): none of its structs is tracked by the
cyclic collector, so full collections do not walk them (app.domain.changes, app.gc_policy)."""

from __future__ import annotations

import gc

from app.domain.changes import Change, entry_decoder, entry_encoder, make_entry
from app.domain.dtos import SessionInfo


def test_an_entry_its_visibilities_and_its_change_are_not_tracked_decoded_or_made() -> None:
    made = make_entry(SessionInfo(id="S1"), SessionInfo(id="S1", endpoint_id="E1"), 2)
    decoded = entry_decoder.decode(entry_encoder.encode(made))
    assert decoded == made
    for entry in (made, decoded):
        change = Change(account_id="A", epoch="e", cursor=1, entry=entry)
        assert not any(gc.is_tracked(o) for o in (change, entry, entry.before, entry.after))
