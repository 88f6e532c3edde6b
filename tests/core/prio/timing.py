"""How long one DAP-09 report takes to make (shard + two seals), per VDAF.

Not a test: ``python -m tests.core.prio.timing`` prints the median time per report (goals:
Count ≤ 1 ms, Histogram with 10 buckets ≤ 5 ms; docs/dap.md has the figures).
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable

from tray_app.core.rules.prio import (
    HpkeConfig,
    Prio3,
    ReportRandomness,
    make_report,
    prio3_count,
    prio3_histogram,
    prio3_sum,
    randomness_size,
)
from tray_app.core.rules.prio.hpke import public_key_of

TASK_ID = bytes(32)
CONFIG = HpkeConfig(1, 0x0020, 0x0001, 0x0001, public_key_of(bytes(range(32))))


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    cases: list[tuple[str, Prio3, int]] = [
        ("Prio3Count", prio3_count(), 1),
        ("Prio3Sum(bits=8)", prio3_sum(8), 200),
        ("Prio3Histogram(10)", prio3_histogram(10), 7),
        ("Prio3Histogram(100)", prio3_histogram(100), 42),
    ]
    prio3_count().shard(1, bytes(16), bytes(48))  # first use loads pycryptodome and cryptography
    print(f"{'VDAF':<22}{'chunk':>6}{'shard ms':>10}{'report ms':>11}{'bytes':>7}")
    for label, vdaf, measurement in cases:

        def shard(vdaf: Prio3 = vdaf, measurement: int = measurement) -> None:
            vdaf.shard(measurement, secrets.token_bytes(16), secrets.token_bytes(vdaf.rand_size))

        def report(vdaf: Prio3 = vdaf, measurement: int = measurement) -> bytes:
            rand = ReportRandomness.from_bytes(vdaf, secrets.token_bytes(randomness_size(vdaf)))
            return make_report(
                task_id=TASK_ID,
                vdaf=vdaf,
                measurement=measurement,
                time=int(time.time()),
                time_precision=3600,
                leader_config=CONFIG,
                helper_config=CONFIG,
                randomness=rand,
            ).encoded

        chunk = getattr(vdaf.circuit, "chunk_length", "-")
        repeat = 200 if "100" not in label else 50
        print(
            f"{label:<22}{chunk!s:>6}{_median_ms(shard, repeat):>10.3f}{_median_ms(report, repeat):>11.3f}"
            f"{len(report()):>7}"
        )


if __name__ == "__main__":
    main()
