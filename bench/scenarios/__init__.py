"""The six scenarios of issue 5, in the order the issue lists them."""

from __future__ import annotations

ORDER = ("ingest", "push", "fanout", "snapshot", "memory", "resume")
