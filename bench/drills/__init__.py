"""Reliability drills: the service, its own redis-server(s) and clients on loopback,
each drill bounded in processes and time, each printing its figures.

`python -m bench.drills` runs the long versions (`--quick` the short ones the test suite
runs, `--only NAME` one drill). docs/reliability.md has the figures and what they mean.
(Like all of bench/, this package does not import tests/: its processes are `processes.py`, on bench/servers.py.)"""
