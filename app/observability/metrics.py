"""`GET /metrics`: the Prometheus text format, read at scrape time from counters the
code already keeps (the hub's stats, the Redis writer's, `TALLY`, the garbage collector's); nothing is
computed on the request path for it. Each process serves its own."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.tokens import api_key_matches
from app.gc_policy import GcPauses, GcPolicy
from app.live.hub import Hub
from app.observability.tally import TALLY, Histogram, Tally
from app.redis_io import REDIS_DOWN
from app.services import services
from app.storage.session_store import SessionStore
from app.twilio.deadletters import DeadLetters
from app.web.errors import ApiError
from app.web.requests import bearer_from_header

log = logging.getLogger(__name__)
PREFIX = "callstate"


def _histogram(name: str, doc: str, hist: Histogram, labels: dict[str, str] | None = None,
               family: HistogramMetricFamily | None = None) -> HistogramMetricFamily:
    labels = labels or {}
    family = family or HistogramMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), hist.cumulative(), hist.total)
    return family


class ServiceCollector(Collector):
    def __init__(self, store: SessionStore, hub: Hub, tally: Tally = TALLY, gc_pauses: GcPauses | None = None,
                 gc_policy: GcPolicy | None = None) -> None:
        self._store = store
        self._hub = hub
        self._tally = tally
        self._gc_pauses = gc_pauses
        self._gc_policy = gc_policy
        self.dead_letters: int | None = None  # read from Redis by the route before each scrape

    def collect(self) -> Iterator[Metric]:
        t = self._tally
        ingest = CounterMetricFamily(f"{PREFIX}_ingest", "Webhooks and events by route and outcome "
                                     "(applied, duplicate, unchanged, dead-lettered)", labels=["route", "outcome"])
        for (route, outcome), n in sorted(t.outcomes.items()):
            ingest.add_metric([route, outcome], n)
        yield ingest
        rejected = CounterMetricFamily(f"{PREFIX}_ingest_rejected", "Refused webhook and event requests by "
                                       "route and responseStatus.errorCode", labels=["route", "reason"])
        for (route, reason), n in sorted(t.rejections.items()):
            rejected.add_metric([route, reason], n)
        yield rejected
        yield _histogram(f"{PREFIX}_commit_seconds", "Store commit latency (all round trips of one commit)",
                         t.commit_seconds)
        writers = self._store.redis.writers  # one per Redis node this process talks to
        yield CounterMetricFamily(f"{PREFIX}_redis_writes", "Socket writes to Redis (each one or more "
                                  "batches of commands), all nodes", value=sum(w.writes for w in writers))
        yield CounterMetricFamily(f"{PREFIX}_redis_batches", "Command batches sent to Redis, all nodes",
                                  value=sum(w.batches for w in writers))
        yield CounterMetricFamily(f"{PREFIX}_redis_resends", "Writes sent again on a fresh connection after "
                                  "their kept one was found dead", value=sum(w.resends for w in writers))
        yield _histogram(f"{PREFIX}_arrival_to_write_seconds", "From a webhook or event batch arriving at "
                         "this process to its patch being written to this process's sockets",
                         t.arrival_to_write_seconds)
        yield _histogram(f"{PREFIX}_live_arrival_to_ack_seconds", "From a webhook or event arriving (at any "
                         "process) to a client of this process acknowledging the state that includes it "
                         "(clients that send `ack`; one sample per ack, for the change it names)",
                         t.arrival_to_ack_seconds)
        ages = HistogramMetricFamily(f"{PREFIX}_event_time_to_write_seconds", "From a change's own time "
                                     "(Twilio callback Timestamp, event occurredAt) to its patch being written "
                                     "to sockets, by where it arrived", labels=["source"])
        for source, hist in sorted(t.event_time_to_write_seconds.items()):
            _histogram("", "", hist, {"source": source}, ages)
        yield ages
        yield from self._live(t)
        yield from _sweep(t)
        yield from self._gc()
        if self.dead_letters is not None:
            yield GaugeMetricFamily(f"{PREFIX}_dead_letters", "Twilio callbacks held as dead letters "
                                    "(shared by every process)", value=self.dead_letters)

    def _gc(self) -> Iterator[Metric]:
        """The collector's pauses (app.gc_policy; the counts per generation are prometheus_client's
        `python_gc_*`). Nothing here walks the heap: the frozen size is the policy's own count."""
        if self._gc_pauses is not None:
            pauses = HistogramMetricFamily(f"{PREFIX}_gc_pause_seconds", "How long each garbage collection "
                                           "held the event loop, by generation (2: full)", labels=["generation"])
            for generation, hist in self._gc_pauses.seconds.items():
                _histogram("", "", hist, {"generation": str(generation)}, pauses)
            yield pauses
        policy = self._gc_policy
        if policy is not None and policy.installed:
            c = policy.counts
            reclaims = CounterMetricFamily(f"{PREFIX}_gc_reclaims", "Whole-heap collections of the frozen set "
                                           "(GC_POLICY=freeze), by cause: ended (closed connections), growth "
                                           "(allocated memory)", labels=["cause"])
            for cause, n in c.reclaims_by_cause.items():
                reclaims.add_metric([cause], n)
            yield reclaims
            yield CounterMetricFamily(f"{PREFIX}_gc_reclaimed_objects", "Objects the whole-heap collections "
                                      "found unreachable and freed (the garbage the frozen set held)",
                                      value=c.reclaimed)
            yield GaugeMetricFamily(f"{PREFIX}_gc_allocated_blocks", "Memory blocks Python's small-object "
                                    "allocator has handed out (sys.getallocatedblocks(); the policy's growth measure)",
                                    value=policy.allocated_blocks())
            yield GaugeMetricFamily(f"{PREFIX}_gc_ended_objects", "Garbage reported since the frozen set was "
                                    "last made whole: closed connections that were frozen, in objects (an estimate)",
                                    value=c.ended)
            yield GaugeMetricFamily(f"{PREFIX}_gc_frozen_objects", "Objects the policy has frozen: the set when "
                                    "last made whole plus what was frozen since (deaths not subtracted)",
                                    value=c.frozen_after_reclaim + c.frozen_since)

    def _live(self, t: Tally) -> Iterator[Metric]:
        hub = self._hub
        streaming = {kind: max(0, t.streaming.get(kind, 0)) for kind in ("sse", "long-poll")}
        connections = GaugeMetricFamily(f"{PREFIX}_live_connections", "Open live connections by transport",
                                        labels=["transport"])
        connections.add_metric(["websocket"], max(0, hub.connection_count - sum(streaming.values())))
        for kind, n in streaming.items():
            connections.add_metric([kind], n)
        yield connections
        s = hub.stats
        yield CounterMetricFamily(f"{PREFIX}_live_messages_queued", "Messages queued to sockets", value=s.messages_queued)
        yield CounterMetricFamily(f"{PREFIX}_live_patches_encoded", "Patches encoded (once per view class)",
                                  value=s.patches_encoded)
        starts = CounterMetricFamily(f"{PREFIX}_live_starts", "Subscriptions started, by how: snapshot, "
                                     "resumed (from `since`), reset", labels=["outcome"])
        for outcome in ("snapshot", "resumed", "reset"):
            starts.add_metric([outcome], t.starts.get(outcome, 0))
        yield starts
        yield CounterMetricFamily(f"{PREFIX}_live_catch_ups", "Feed catch-ups from the change log", value=s.catch_ups)
        yield CounterMetricFamily(f"{PREFIX}_live_resets", "Subscribers reset to a fresh snapshot", value=s.resets)
        yield CounterMetricFamily(f"{PREFIX}_live_slow_consumer_closes", "Connections closed as too slow (3008): a queue of control messages alone overflowed",
                                  value=t.slow_closes)
        yield CounterMetricFamily(f"{PREFIX}_live_conflations", "Send queues that overflowed and were conflated "
                                  "into one patch or snapshot instead of closing", value=t.conflations)
        total, largest = hub.queued_bytes()
        yield GaugeMetricFamily(f"{PREFIX}_live_queued_bytes", "Bytes waiting in this process's send queues",
                                value=total)
        yield GaugeMetricFamily(f"{PREFIX}_live_largest_queue_bytes", "Bytes waiting in the fullest send queue",
                                value=largest)
        yield CounterMetricFamily(f"{PREFIX}_live_drains", "Drains (SIGTERM) started", value=t.drains)
        yield CounterMetricFamily(f"{PREFIX}_pubsub_reconnects", "Pub/sub connections lost and re-made",
                                  value=t.pubsub_reconnects)
        yield CounterMetricFamily(f"{PREFIX}_pubsub_dropped_publications", "Publications dropped by a full feed "
                                  "inbox (recovered by the position check)", value=s.dropped_publications)


# -- the sweep (app/sweep/, docs/twilio.md) ------------------------------------------------

def _sweep(t: Tally) -> Iterator[Metric]:
    """What this process's sweeper did (only the process holding an account's lease sweeps it)."""
    s = t.sweep
    yield CounterMetricFamily(f"{PREFIX}_sweep_passes", "Sweep passes run", value=s["passes"])
    yield CounterMetricFamily(f"{PREFIX}_sweep_swept", "Stuck sessions the sweep took up (asked Twilio "
                              "about, or marked stale)", value=s["asked"])
    yield CounterMetricFamily(f"{PREFIX}_sweep_fetches", "Calls fetched from Twilio's REST API", value=s["fetches"])
    yield CounterMetricFamily(f"{PREFIX}_sweep_confirmed", "Fetched calls whose status the session already had",
                              value=s["confirmed"])
    resolved = CounterMetricFamily(f"{PREFIX}_sweep_resolved", "Calls whose status the sweep learnt from Twilio "
                                   "and applied, by that status", labels=["status"])
    for name, n in sorted(s.items()):
        if name.startswith("resolved:"):
            resolved.add_metric([name.removeprefix("resolved:")], n)
    yield resolved
    yield CounterMetricFamily(f"{PREFIX}_sweep_lost", "Calls Twilio no longer knew (404), ended as lost",
                              value=s["lost"])
    yield CounterMetricFamily(f"{PREFIX}_sweep_marked_stale", "Sessions marked stale (no credentials, nothing to "
                              "ask about, or no answer)", value=s["stale"])
    yield CounterMetricFamily(f"{PREFIX}_sweep_errors", "Twilio requests that failed, and failed passes",
                              value=s["errors"])


class Metrics:
    """This process's registry: the service's counters, the process's (RSS, CPU, open fds) and its
    garbage collector's (prometheus_client's counts, our pause times)."""

    __slots__ = ("collector", "registry")

    def __init__(self, store: SessionStore, hub: Hub, *, gc_pauses: GcPauses | None = None,
                 gc_policy: GcPolicy | None = None) -> None:
        self.registry = CollectorRegistry()
        self.collector = ServiceCollector(store, hub, gc_pauses=gc_pauses, gc_policy=gc_policy)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)


async def metrics(request: Request) -> Response:
    svc = services(request)
    expected = svc.settings.metrics_token
    if expected and not api_key_matches(bearer_from_header(request.headers.get("authorization")), expected):
        raise ApiError(401, "Unauthorized", "Metrics need Authorization: Bearer <METRICS_TOKEN>")
    registry, collector = svc.metrics.registry, svc.metrics.collector
    s = svc.settings
    try:
        collector.dead_letters = await DeadLetters(svc.store.redis, s.dead_letter_max_len, 0).count()
    except (aioredis.RedisError, *REDIS_DOWN) as exc:
        log.warning("metrics: dead letter count unavailable: %s", exc)
        collector.dead_letters = None
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [Route("/metrics", metrics, methods=["GET"])]
