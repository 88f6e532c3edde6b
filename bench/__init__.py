"""Benchmarks of Telemetry Tray (``make bench``, i.e. ``python -m bench``).

Not part of the test run. Each benchmark returns named figures; ``python -m bench``
merges them into ``bench/results.json`` and rewrites ``docs/benchmarks.md`` from it.
"""
