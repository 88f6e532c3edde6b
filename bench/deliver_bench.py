"""Benchmark of the forwarder: approved batches delivered to a vendor on 127.0.0.1.

1,000 small approved batches go out through ``Forwarder.deliver_due()`` (claim under a
lease, POST the stored bytes, record the answer and a receipt), beside a bare ``httpx``
loop POSTing the same bodies with the same headers to the same vendor in the same run:
one request at a time, and four at a time (as many as the forwarder sends at once).

The vendor is a minimal HTTP/1.1 server (asyncio, keep-alive) in its own process, so
its work does not compete with the sender for this process's GIL; it answers every
POST 200 and logs each request's ``Idempotency-Key`` and the SHA-256 of its body, which
the benchmark reads back (``GET /_log``) to check that every batch arrived exactly once.
Run this module (``python -m bench.deliver_bench``) to start such a vendor by hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import itertools
import json
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

import httpx

from tests.support.processes import stop_process
from tray_app import __version__
from tray_app.core import Broker, Locations
from tray_app.core.forwarder import SENDERS, Forwarder
from tray_app.core.platform.secrets import SecretStore
from tray_app.core.rules.manifest import manifest_from_obj

from .core_bench import ROOT, BenchError
from .figures import Benchmark, Figure, Figures, Settings, best_of, temp_home

BATCHES = 1_000
APP_ID = "org.example.bench-deliver"
LOG_PATH = "/_log"

# One batch = one ingest call of these reports, closed and approved on its own.
REPORTS_PER_BATCH = (
    {"event": "open", "n": 1},
    {"event": "export", "n": 2},
    {"event": "close", "n": 3},
)

# (key, body SHA-256) per request the vendor received.
Logged = list[tuple[str, str]]
# (batch id, payload bytes) per approved batch.
Sent = list[tuple[str, bytes]]


def _manifest_obj(endpoint: str) -> dict[str, object]:
    return {
        "app_id": APP_ID,
        "name": "Deliver bench",
        "version": 1,
        "vendor": "Example",
        "endpoint": endpoint,
        "privacy_policy": "https://example.org/privacy",
        "retention_days": 30,
        "purpose": "Benchmarking delivery",
        "cadence": "daily",
        "auth": "none",
        "fields": [
            {"name": "event", "type": "string", "description": "what happened", "required": True},
            {"name": "n", "type": "integer", "description": "a number"},
        ],
    }


# -- the vendor ------------------------------------------------------------------------


class _VendorProtocol(asyncio.Protocol):
    """HTTP/1.1 with Content-Length bodies, keep-alive, one request after another."""

    def __init__(self, log: Logged) -> None:
        self.log = log
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "transfer-encoding" in headers:
                self._answer(411, b'{"error":"send a Content-Length"}', close=True)
                return
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            if method == "GET" and target == LOG_PATH:
                answer = json.dumps(self.log).encode()
                self.log.clear()
                self._answer(200, answer)
            elif method == "POST":
                self.log.append((headers.get("idempotency-key", ""), hashlib.sha256(body).hexdigest()))
                self._answer(200, b'{"ok":true}', request_id=f"req-{len(self.log)}")
            else:
                self._answer(405, b'{"error":"POST only"}')

    def _answer(self, status: int, body: bytes, *, request_id: str | None = None, close: bool = False) -> None:
        assert self.transport is not None
        head = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}"]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        if request_id:
            head.append(f"X-Request-Id: {request_id}")
        if close:
            head.append("Connection: close")
        self.transport.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)
        if close:
            self.transport.close()
            self.transport = None


async def _serve_vendor() -> None:
    log: Logged = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _VendorProtocol(log), "127.0.0.1", 0, backlog=128)
    port = server.sockets[0].getsockname()[1]
    print(f"vendor listening on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def serve_vendor() -> None:
    asyncio.run(_serve_vendor())


class _Vendor:
    """The vendor in its own process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.deliver_bench"], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait()
            raise BenchError(f"the vendor did not start: {line!r}")
        self.base = line.split("listening on ")[1].split()[0]
        self.port = int(self.base.rsplit(":", 1)[1])
        self.url = f"{self.base}/v1/batches"

    def drain(self) -> Logged:
        """What the vendor received since the last drain (and forget it)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", LOG_PATH)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise BenchError(f"the vendor's log answered HTTP {response.status}")
        return [(str(key), str(digest)) for key, digest in json.loads(body)]

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _check_received(logged: Logged, sent: Sent, who: str) -> None:
    """Every batch arrived exactly once, with its own key and its approved bytes."""
    keys = Counter(key for key, _ in logged)
    twice = [key for key, count in keys.items() if count > 1]
    if len(logged) != len(sent) or twice:
        raise BenchError(
            f"{who}: the vendor received {len(logged)} requests with {len(keys)} distinct Idempotency-Keys "
            f"({len(twice)} sent more than once), not {len(sent)}"
        )
    expected = {batch_id: hashlib.sha256(body).hexdigest() for batch_id, body in sent}
    if dict(logged) != expected:
        raise BenchError(f"{who}: the vendor received other keys or bodies than the approved batches")


# -- set-up ----------------------------------------------------------------------------


def _approved_batches(broker: Broker, endpoint: str, count: int) -> Sent:
    """Register and allow the app; ``count`` approved batches; their ids and stored bytes."""
    manifest = manifest_from_obj(_manifest_obj(endpoint))
    broker.register(manifest)
    broker.set_consent(manifest.app_id, True)
    reports = list(REPORTS_PER_BATCH)
    ids = []
    for _ in range(count):
        batch_id = broker.ingest(manifest.app_id, reports).batch_id
        closed = broker.close_batches(force=True)
        if batch_id is None or [(c.batch_id, c.status) for c in closed] != [(batch_id, "pending")]:
            raise BenchError(f"closing batch {batch_id} gave {closed}, not it alone, pending")
        ids.append(broker.approve(batch_id).batch.batch_id)
    sent = []
    for batch_id in ids:
        body = broker.store.payload(batch_id)
        if body is None:
            raise BenchError(f"approved batch {batch_id} has no stored payload")
        sent.append((batch_id, body))
    if len(broker.deliveries.open_deliveries()) != count:
        raise BenchError(f"{len(broker.deliveries.open_deliveries())} deliveries are open, not {count}")
    return sent


def _check_delivered(broker: Broker, sent: Sent) -> None:
    """The history holds one delivered receipt per batch, and no batch is left open."""
    delivered = Counter(r.batch_id for r in broker.history(APP_ID) if r.action == "delivered")
    if (
        len(delivered) != len(sent)
        or set(delivered) != {batch_id for batch_id, _ in sent}
        or max(delivered.values()) != 1
    ):
        raise BenchError(
            f"the history has {sum(delivered.values())} delivered receipts for {len(delivered)} batches, "
            f"not one for each of {len(sent)}"
        )
    if broker.deliveries.open_deliveries():
        raise BenchError(f"{len(broker.deliveries.open_deliveries())} deliveries are still open after delivering")


# -- the benchmark ---------------------------------------------------------------------


def bench_deliver(settings: Settings) -> Figures:
    user_agent = f"telemetry-tray/{__version__}"
    vendor = _Vendor()
    # The bodies (and batch ids) of the latest forwarder trial: what the bare loops send.
    sent: Sent = []
    sizes: list[int] = []
    try:
        with temp_home() as tmp:
            counter = itertools.count()

            def deliver_trial() -> float:
                home = tmp / f"deliver-{next(counter)}"
                broker = Broker.open(Locations.under(home))
                try:
                    batches = _approved_batches(broker, vendor.url, BATCHES)
                    vendor.drain()
                    forwarder = Forwarder(broker.deliveries, SecretStore())
                    try:
                        delivered = 0
                        start = perf_counter()
                        while delivered < BATCHES:
                            outcomes = forwarder.deliver_due()
                            if not outcomes or any(o.outcome != "delivered" for o in outcomes):
                                raise BenchError(
                                    f"after {delivered} deliveries the forwarder gave "
                                    f"{Counter(o.outcome for o in outcomes) or 'nothing'}"
                                )
                            delivered += len(outcomes)
                        elapsed = perf_counter() - start
                    finally:
                        forwarder.close()
                    _check_received(vendor.drain(), batches, "forwarder")
                    _check_delivered(broker, batches)
                finally:
                    broker.close()
                shutil.rmtree(home)
                sent[:] = batches
                sizes[:] = [len(body) for _, body in batches]
                return elapsed

            def bare_trial(workers: int) -> float:
                if len(sent) != BATCHES:
                    raise BenchError("the bare loop ran before the forwarder had approved batches to copy")
                vendor.drain()
                requests = [
                    (
                        body,
                        {"Content-Type": "application/json", "Idempotency-Key": batch_id, "User-Agent": user_agent},
                    )
                    for batch_id, body in sent
                ]
                statuses: list[int] = []
                with httpx.Client() as client, ThreadPoolExecutor(max_workers=workers) as pool:

                    def post(request: tuple[bytes, dict[str, str]]) -> int:
                        body, headers = request
                        return client.post(vendor.url, content=body, headers=headers).status_code

                    start = perf_counter()
                    if workers == 1:
                        statuses = [post(request) for request in requests]
                    else:
                        statuses = list(pool.map(post, requests))
                    elapsed = perf_counter() - start
                if statuses != [200] * BATCHES:
                    raise BenchError(f"the bare loop got {Counter(statuses)}, not {BATCHES} × 200")
                _check_received(vendor.drain(), sent, f"bare httpx ({workers} at a time)")
                return elapsed

            best = best_of(
                settings.repeat,
                {
                    "deliver": deliver_trial,
                    "bare": lambda: bare_trial(1),
                    "bare_4": lambda: bare_trial(SENDERS),
                },
            )
    finally:
        vendor.stop()

    deliver = BATCHES / best["deliver"]
    bare = BATCHES / best["bare"]
    bare_4 = BATCHES / best["bare_4"]
    mean_bytes = sum(sizes) / len(sizes)
    n = f"{BATCHES:,}"
    where = "a minimal HTTP/1.1 vendor on 127.0.0.1 (another process) that answers every POST 200 at once"
    return {
        "deliver_batches_per_s": Figure(
            deliver,
            "batches/s",
            f"{n} approved batches ({len(REPORTS_PER_BATCH)} reports each, {mean_bytes:,.0f}-byte payloads "
            f"on average) delivered by `Forwarder.deliver_due()` to {where}: claim under a lease "
            f"({SENDERS} senders, keep-alive), POST the stored bytes with an Idempotency-Key, record the answer "
            f"and a delivered receipt. Checked: the vendor got each batch's key and bytes once, and the "
            f"history holds {n} delivered receipts.",
            baseline="bare_httpx_4_batches_per_s",
        ),
        "bare_httpx_batches_per_s": Figure(
            bare,
            "batches/s",
            f"The same {n} payload bodies POSTed with a bare `httpx.Client()` loop, one at a time, with the "
            "same headers (Content-Type, Idempotency-Key, User-Agent), to the same vendor, in the same run.",
        ),
        "bare_httpx_4_batches_per_s": Figure(
            bare_4,
            "batches/s",
            f"As `bare_httpx_batches_per_s`, but {SENDERS} at a time (a `ThreadPoolExecutor` of {SENDERS} "
            "workers sharing the client), as many as the forwarder sends at once.",
        ),
        "deliver_ratio": Figure(
            deliver / bare_4,
            "×",
            "`deliver_batches_per_s` ÷ `bare_httpx_4_batches_per_s`.",
        ),
    }


BENCHMARKS = (
    Benchmark(
        "deliver.forward",
        "Delivery to a vendor",
        f"{BATCHES:,} small approved batches through the forwarder to a vendor on 127.0.0.1, beside a bare "
        "`httpx` loop POSTing the same bodies to the same vendor (one and four at a time).",
        bench_deliver,
    ),
)


if __name__ == "__main__":
    serve_vendor()
