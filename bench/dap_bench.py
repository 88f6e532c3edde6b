"""Benchmarks of the DAP client: what making one report costs, and uploads to a loopback leader.

``dap.seal``: the median time of one ``make_report`` (Prio3 shard, then one HPKE seal per
aggregator, to X25519 configurations generated in this process), per VDAF, with its randomness
drawn from ``secrets.token_bytes`` inside the timing as ``seal_batch`` does. Beside it, in the same
run, the part of every report that is not Prio3: its random bytes and the two HPKE seals
(DHKEM(X25519) + HKDF + AES-128-GCM) of a Count report's real input shares. No DAP client can go
below that floor, whatever its VDAF, so the ratio is what the Prio3 sharding and its proof add.

``dap.upload``: one approved batch of Count measurements delivered by ``Forwarder.deliver_due()``
(fetch both HPKE configurations, make and store every report, PUT each to the leader and record
it) to a leader on 127.0.0.1: divviup-ts (tests/support/dap_aggregators.py) when node and its
packages are there, otherwise a minimal Python server in another process that serves an X25519
configuration and answers every ``PUT /tasks/…/reports`` 201. Beside it, in the same run, plain
``httpx`` PUTs of as many reports to the same leader. They cannot be the forwarder's very bytes:
divviup-ts refuses a report id it has seen before it decrypts anything, which would time a cheaper
path. So they are the same approved measurements sealed by the same ``seal_batch`` to the same
keys with fresh randomness (same sizes, same work for the leader), made before the timing.
Run this module (``python -m bench.dap_bench``) to start the Python leader by hand.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import perf_counter
from typing import Any

import httpx

from tests.support.dap_aggregators import DapAggregators, VdafSpec, node_dap_missing
from tests.support.processes import stop_process
from tray_app.core import Broker, Locations
from tray_app.core.dap_sealer import fetch_config
from tray_app.core.forwarder import Forwarder
from tray_app.core.platform.secrets import SecretStore
from tray_app.core.rules.dap_batch import FramedReport, seal_batch
from tray_app.core.rules.manifest import manifest_from_obj
from tray_app.core.rules.prio import (
    DAP_09_VDAF_08,
    HpkeConfig,
    Prio3,
    ReportRandomness,
    encode_task_id,
    hpke,
    make_report,
    optimal_chunk_length,
    prio3_count,
    prio3_histogram,
    prio3_sum,
    randomness_size,
    upload_url,
)
from tray_app.core.rules.prio.dap_report import (
    REPORT_ID_SIZE,
    encode_hpke_config_list,
    input_share_aad,
    input_share_info,
    plaintext_input_share,
)

from .core_bench import ROOT, BenchError
from .figures import Benchmark, Figure, Figures, Settings, best_of, temp_home

SHARD_CALLS = 300  # make_report calls per VDAF per round; the median of them is kept
UPLOADS = 500  # Count reports in the approved batch
COUNT_GOAL_MS = 1.0
HIST10_GOAL_MS = 5.0
APP_ID = "org.example.bench-dap"
TIME = 1_700_000_000
TIME_PRECISION = 3600
ROLE_LEADER, ROLE_HELPER = 0x02, 0x03
LEADER_ENV = "TELEMETRY_TRAY_BENCH_DAP_LEADER"  # "python": use the Python leader even if node is there


def _x25519_config(config_id: int) -> HpkeConfig:
    return HpkeConfig(config_id, hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES_128_GCM,
                      hpke.public_key_of(secrets.token_bytes(32)))  # fmt: skip


# -- dap.seal ------------------------------------------------------------------------------


def _median_per_call(calls: int, one: Callable[[], object]) -> float:
    """The median seconds of ``one()`` over ``calls`` calls, each timed on its own."""
    times = []
    for _ in range(calls):
        start = perf_counter()
        one()
        times.append(perf_counter() - start)
    return statistics.median(times)


def bench_seal(settings: Settings) -> Figures:
    leader, helper = _x25519_config(1), _x25519_config(2)
    task_id = secrets.token_bytes(32)
    vdafs: dict[str, tuple[Prio3, int]] = {
        "count": (prio3_count(), 1),
        "sum8": (prio3_sum(8), 200),
        "hist10": (prio3_histogram(10), 7),
    }
    sizes: dict[str, int] = {}

    def report_of(vdaf: Prio3, measurement: int) -> bytes:
        return make_report(
            task_id=task_id, vdaf=vdaf, measurement=measurement, time=TIME, time_precision=TIME_PRECISION,
            leader_config=leader, helper_config=helper,
            randomness=ReportRandomness.from_bytes(vdaf, secrets.token_bytes(randomness_size(vdaf))),
        ).encoded  # fmt: skip

    for name, (vdaf, measurement) in vdafs.items():
        sizes[name] = len(report_of(vdaf, measurement))  # also loads pycryptodome and cryptography

    # The baseline: a Count report's random bytes and its two seals, of its real input shares.
    count = prio3_count()
    rand = ReportRandomness.from_bytes(count, secrets.token_bytes(randomness_size(count)))
    shares = count.shard(1, rand.report_id, rand.vdaf_rand)
    aad = input_share_aad(task_id, rand.report_id, TIME, shares.public_share)
    plaintexts = [plaintext_input_share(share) for share in shares.input_shares]
    infos = [input_share_info(ROLE_LEADER), input_share_info(ROLE_HELPER)]

    def seals_alone() -> None:
        secrets.token_bytes(REPORT_ID_SIZE + 2 * hpke.X25519_KEY_SIZE)
        for config, info, plaintext in zip((leader, helper), infos, plaintexts, strict=True):
            hpke.seal_base(config.public_key, info, aad, plaintext, secrets.token_bytes(hpke.X25519_KEY_SIZE))

    def shard_trial(vdaf: Prio3, measurement: int) -> Callable[[], float]:
        return lambda: _median_per_call(SHARD_CALLS, lambda: report_of(vdaf, measurement))

    trials = {name: shard_trial(vdaf, m) for name, (vdaf, m) in vdafs.items()}
    trials["seals"] = lambda: _median_per_call(SHARD_CALLS, seals_alone)
    best = {name: seconds * 1000 for name, seconds in best_of(settings.repeat, trials).items()}

    how = (
        f"Median wall time of one `make_report` over {SHARD_CALLS} calls (the best median of the rounds): "
        "shard the measurement (encode, FLP proof, XOF), then seal the leader's and the helper's shares "
        "with HPKE to X25519 configurations generated in this process, with the report's randomness from "
        "`secrets.token_bytes` as `seal_batch` draws it."
    )
    base = "Beside `dap_hpke_seal_pair_ms`."
    figures = {
        "dap_shard_seal_ms_count": Figure(
            best["count"],
            "ms",
            f"Prio3Count, measurement 1, a {sizes['count']}-byte report. {how} {base}",
            goal_max=COUNT_GOAL_MS,
        ),
        "dap_shard_seal_ms_sum8": Figure(
            best["sum8"], "ms", f"Prio3Sum(bits = 8), measurement 200, a {sizes['sum8']}-byte report. {how} {base}"
        ),
        "dap_shard_seal_ms_hist10": Figure(
            best["hist10"],
            "ms",
            f"Prio3Histogram(length = 10, chunk_length = {optimal_chunk_length(10)}), bucket 7, a "
            f"{sizes['hist10']}-byte report. {how} {base}",
            goal_max=HIST10_GOAL_MS,
        ),
        "dap_hpke_seal_pair_ms": Figure(
            best["seals"],
            "ms",
            "The baseline: the part of every report that is not Prio3, the floor any DAP client pays whatever "
            f"its VDAF. Median of {SHARD_CALLS} calls of: the report's random bytes (`secrets.token_bytes`) "
            "and two `hpke.seal_base` (an X25519 key agreement, HKDF-SHA256 and AES-128-GCM each) of a Count "
            "report's real leader and helper input shares, with DAP-09's info and AAD, to the same two configurations.",
        ),
    }
    for name in vdafs:
        figures[f"dap_shard_seal_ratio_{name}"] = Figure(
            best[name] / best["seals"], "×", f"`dap_shard_seal_ms_{name}` ÷ `dap_hpke_seal_pair_ms`."
        )
    return figures


# -- the Python leader (when divviup-ts cannot run) ----------------------------------------


def serve_leader() -> None:
    """GET /hpke_config: an X25519 configuration of a key made now; PUT /tasks/…/reports: 201;
    GET /_count: how many reports it took."""
    configs = encode_hpke_config_list([_x25519_config(1)])
    taken = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real leader

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/hpke_config":
                self._answer(200, DAP_09_VDAF_08.hpke_config_list_media_type, configs)
            elif path == "/_count":
                self._answer(200, "application/json", json.dumps(taken[0]).encode())
            else:
                self._answer(404, "text/plain", b"no such path\n")

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = self.path.split("/")
            if len(parts) == 4 and parts[1] == "tasks" and parts[3] == "reports":
                taken[0] += 1
                self._answer(201, "text/plain", b"")
            else:
                self._answer(404, "text/plain", b"no such path\n")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"leader listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


class _PythonLeader:
    """The Python leader in its own process (a second one plays the helper: its configuration)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.dap_bench"], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait()
            raise BenchError(f"the Python leader did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0]

    def taken(self) -> int:
        conn = http.client.HTTPConnection(self.url.removeprefix("http://"), timeout=30)
        try:
            conn.request("GET", "/_count")
            return int(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- dap.upload ----------------------------------------------------------------------------


def _manifest_obj(leader: str, helper: str, task_id: bytes) -> dict[str, object]:
    return {
        "app_id": APP_ID,
        "name": "DAP bench",
        "version": 1,
        "vendor": "Example",
        "endpoint": leader,
        "privacy_policy": "https://example.org/privacy",
        "retention_days": 30,
        "purpose": "Benchmarking DAP uploads",
        "cadence": "daily",
        "fields": [{"name": "gpu", "type": "boolean", "description": "GPU on"}],
        "format": "dap",
        "dap": {
            "helper": helper,
            "leader_operator": "Example",
            "helper_operator": "Another",
            "time_precision": TIME_PRECISION,
            "min_batch_size": 10,
            "tasks": [{"task_id": encode_task_id(task_id), "field": "gpu", "vdaf": "count"}],
        },
    }


class _TimedForwarder(Forwarder):
    """The forwarder, with the seconds it spends making reports (configurations and seal) counted."""

    seal_s = 0.0

    def _seal(self, *args: Any, **kwargs: Any) -> list[FramedReport]:
        start = perf_counter()
        try:
            return super()._seal(*args, **kwargs)
        finally:
            self.seal_s += perf_counter() - start


def bench_upload(settings: Settings) -> Figures:
    task_id = secrets.token_bytes(32)
    measurements = [i % 3 == 0 for i in range(UPLOADS)]
    true_count = sum(measurements)
    use_node = node_dap_missing() is None and os.environ.get(LEADER_ENV) != "python"
    media = DAP_09_VDAF_08.report_media_type
    # The approved payload of the latest forwarder trial: what the plain PUTs seal again.
    approved: dict[str, Any] = {}
    seal_share: list[float] = []
    with temp_home() as tmp:
        pair: DapAggregators | None = None
        python_leader: _PythonLeader | None = None
        python_helper: _PythonLeader | None = None
        if use_node:
            pair = DapAggregators.start(
                task_id=task_id, vdaf=VdafSpec("count"), verify_key=secrets.token_bytes(16), log_dir=tmp / "dap-logs"
            )
            leader_url, helper_url = pair.leader.url, pair.helper.url
        else:
            python_leader, python_helper = _PythonLeader(), _PythonLeader()
            leader_url, helper_url = python_leader.url, python_helper.url
        taken_before = [0]

        def check_taken(who: str) -> None:
            """The leader took every report once, and (divviup-ts) they add up to the true count."""
            if pair is not None:
                collected = pair.collect()
                if (collected.report_count, collected.result) != (UPLOADS, true_count) or collected.rejected:
                    raise BenchError(
                        f"{who}: the leader collected {collected.report_count} reports summing to "
                        f"{collected.result} ({len(collected.rejected)} rejected), "
                        f"not {UPLOADS} summing to {true_count}"
                    )
            else:
                assert python_leader is not None
                taken = python_leader.taken()
                if taken - taken_before[0] != UPLOADS:
                    raise BenchError(f"{who}: the leader took {taken - taken_before[0]} reports, not {UPLOADS}")
                taken_before[0] = taken

        counter = itertools.count()
        try:

            def forwarder_trial() -> float:
                home = tmp / f"dap-{next(counter)}"
                broker = Broker.open(Locations.under(home))
                try:
                    manifest = manifest_from_obj(_manifest_obj(leader_url, helper_url, task_id))
                    broker.register(manifest)
                    broker.set_consent(APP_ID, True)
                    broker.ingest(APP_ID, [{"gpu": value} for value in measurements])
                    (closed,) = broker.close_batches(force=True)
                    batch_id = broker.approve(closed.batch_id).batch.batch_id
                    payload = broker.store.payload(batch_id)
                    if payload is None:
                        raise BenchError("the approved DAP batch has no stored payload")
                    forwarder = _TimedForwarder(broker.deliveries, SecretStore())
                    try:
                        start = perf_counter()
                        outcomes = forwarder.deliver_due()
                        elapsed = perf_counter() - start
                    finally:
                        forwarder.close()
                    if [o.outcome for o in outcomes] != ["delivered"]:
                        raise BenchError(f"the forwarder gave {outcomes}, not one delivered batch")
                    sealed = broker.store.dap_reports(batch_id)
                    if sealed is None or sealed.uploaded != UPLOADS or sealed.reports != UPLOADS:
                        raise BenchError(f"the stored reports are {sealed}, not {UPLOADS} all uploaded")
                    approved.clear()
                    approved.update(json.loads(payload))
                finally:
                    broker.close()
                shutil.rmtree(home)
                check_taken("forwarder")
                seal_share.append(forwarder.seal_s / elapsed)
                return elapsed

            def bare_trial() -> float:
                if not approved:
                    raise BenchError("the plain PUTs ran before the forwarder had an approved batch")
                with httpx.Client(trust_env=False) as client:
                    configs = {
                        task["task_id"]: (
                            fetch_config(client, leader_url, task_id, "leader"),
                            fetch_config(client, helper_url, task_id, "helper"),
                        )
                        for task in approved["tasks"]
                    }
                    reports = seal_batch(approved, configs=configs, random_bytes=secrets.token_bytes)
                    urls = [upload_url(leader_url, r.task_id) for r in reports]
                    headers = {"Content-Type": media}
                    start = perf_counter()
                    statuses = [
                        client.put(url, content=r.body, headers=headers).status_code
                        for url, r in zip(urls, reports, strict=True)
                    ]
                    elapsed = perf_counter() - start
                if statuses != [201] * UPLOADS:
                    raise BenchError(f"the plain PUTs got {sorted(set(statuses))}, not {UPLOADS} × 201")
                check_taken("plain PUTs")
                return elapsed

            best = best_of(settings.repeat, {"forwarder": forwarder_trial, "bare": bare_trial})
        finally:
            if pair is not None:
                pair.stop()
            for server in (python_leader, python_helper):
                if server is not None:
                    server.stop()

    which = (
        "the divviup-ts leader (tests/support/dap_aggregators.py, a Node process; it decrypts and decodes "
        "each report as it takes it, in JavaScript, and that work paces both figures) with its helper"
        if use_node
        else "a minimal Python leader (another process; it answers every PUT 201 without opening the report)"
    )
    forwarder_rate = UPLOADS / best["forwarder"]
    share = min(seal_share)
    return {
        "dap_uploads_per_s": Figure(
            forwarder_rate,
            "reports/s",
            f"One approved batch of {UPLOADS} Prio3Count measurements delivered by `Forwarder.deliver_due()` to "
            f"{which} on 127.0.0.1: fetch both HPKE configurations, make every report, store them, then PUT "
            "each to the leader and record after each how many it took. Making the reports (configurations "
            f"and seal) was {share:.0%} of the time or more. Checked: one delivered batch, {UPLOADS} reports "
            "stored and uploaded" + (", and the peer's collected count is the true count." if use_node else "."),
            baseline="dap_bare_put_per_s",
        ),
        "dap_bare_put_per_s": Figure(
            UPLOADS / best["bare"],
            "reports/s",
            f"{UPLOADS} reports PUT one after another with a plain `httpx.Client()` (keep-alive) to the same "
            "leader in the same run, as `application/dap-report`: the same approved measurements sealed by "
            "`seal_batch` to the same configurations with fresh randomness, made before the timing (the leader "
            "refuses a report id it has seen before opening it, so the forwarder's very bytes would time a "
            "cheaper path).",
        ),
    }


BENCHMARKS = (
    Benchmark(
        "dap.seal",
        "DAP report: shard and seal",
        "What making one DAP-09 report (Prio3 shard, two HPKE seals) costs, per VDAF, beside the two HPKE seals "
        f"alone. Goals: Count at most {COUNT_GOAL_MS:g} ms, Histogram with 10 buckets at most "
        f"{HIST10_GOAL_MS:g} ms.",
        bench_seal,
    ),
    Benchmark(
        "dap.upload",
        "DAP uploads to a loopback leader",
        f"An approved batch of {UPLOADS} Count measurements delivered by the forwarder (configurations, seal, "
        "store, one PUT per report) to a DAP leader on 127.0.0.1, beside plain `httpx` PUTs of as many reports "
        "to the same leader.",
        bench_upload,
    ),
)


if __name__ == "__main__":
    serve_leader()
