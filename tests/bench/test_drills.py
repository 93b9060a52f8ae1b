"""The reliability drills (bench/drills), short versions: real redis-servers and service
processes on loopback, each drill bounded in time. `python -m bench.drills` runs the long ones."""

from typing import Any

import pytest

from bench.drills.__main__ import DRILLS


async def drill(name: str) -> dict[str, Any]:
    return await DRILLS[name](True)


@pytest.mark.parametrize("persistence", ["aof", "no_persistence"])
async def test_redis_kill_and_restart_under_a_stream(persistence: str) -> None:
    f = await drill(f"redis_restart_{persistence}")
    assert f["accepted"] > f["accepted_before_kill"] > 0  # writes resumed after the restart
    assert f["gaps"] == f["duplicates"] == 0 and f["viewer_matches_rest"]
    if persistence == "aof":  # appendfsync always: every acknowledged event survives
        assert f["accepted_then_lost"] == 0
    else:  # nothing survives; the viewer is told (one reset) instead of silently diverging
        assert f["accepted_then_lost"] == f["accepted_before_kill"] and f["resets"] >= 1


async def test_a_process_killed_mid_stream() -> None:
    f = await drill("process_kill")
    assert f["accepted_then_lost"] == f["gaps"] == f["duplicates"] == 0 and f["viewer_matches_rest"]
    assert f["reconnects"] >= 1


async def test_sigterm_with_stalled_readers() -> None:
    f = await drill("sigterm_stalled")
    assert f["exited_by_itself"] and f["healthy_got_3001"] == 1
    assert f["handshake_errors_logged"] == f["tracebacks_logged"] == 0


async def test_a_flood_of_sockets_that_never_authenticate() -> None:
    f = await drill("connection_flood")  # raises if the server keeps any of them
    assert f["fds_after"] <= f["fds_idle"] + 2
    assert f["oversize_answered_431"] == f["oversize_handshakes"]


async def test_slow_consumers_are_torn_down_and_the_healthy_viewer_is_exact() -> None:
    f = await drill("slow_consumers")  # raises if the stalled sockets stay
    assert f["healthy_gaps"] == f["healthy_duplicates"] == 0 and f["healthy_matches_rest"]


async def test_fuzz_every_entry_point() -> None:
    f = await drill("fuzz")
    assert f["requests"] > 100 and f["refused_4xx"] > 0 and f["ws_messages"] > 10
    assert f["server_errors"] == f["tracebacks"] == f["changed_redis"] == f["ws_server_errors"] == 0
    assert f["tracebacks_logged"] == 0
