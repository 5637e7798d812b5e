"""Benchmarks that print numbers: one JSON line of results and a readable table each.

Run them all (short versions) with ``make bench`` or ``python -m eval.bench``; one at a time with
``python -m eval.bench engine`` (see ``--help``). Speed targets are checked here, never in tests.
"""
