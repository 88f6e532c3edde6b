"""Many apps reporting at once: ``python -m bench.load_clients URL TOKEN CLIENTS SECONDS PER_REQUEST``.

Runs in its own process (so the clients do not share a GIL with the tray they load),
one thread per client, each with its own keep-alive connection, POSTing PER_REQUEST
PhotoEdit reports per request until SECONDS have passed. Prints one JSON summary line:
requests, reports accepted, answers by status, latency percentiles, transport errors.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

REPORT = {"event": "crop", "app_version": "3.1.4", "duration_ms": 120, "os_version": "Debian 12"}


def main(argv: list[str]) -> int:
    url, token, clients, seconds, per_request = argv[0], argv[1], int(argv[2]), float(argv[3]), int(argv[4])
    parts = urlsplit(url)
    body = json.dumps({"reports": [REPORT] * per_request}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    accepted = [0]
    start = time.monotonic()
    deadline = start + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        mine: list[float] = []
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            try:
                conn.request("POST", "/v1/reports", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
                continue
            mine.append(time.perf_counter() - sent)
            with lock:
                statuses[response.status] += 1
                if response.status == 202:
                    accepted[0] += int(json.loads(answer)["accepted"])
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    print(
        json.dumps(
            {
                "requests": sum(statuses.values()),
                "accepted": accepted[0],
                "statuses": {str(k): v for k, v in statuses.items()},
                "errors": dict(errors),
                "elapsed_s": elapsed,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
                "max_ms": latencies[-1] * 1000 if latencies else 0.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
