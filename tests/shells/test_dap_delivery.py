"""A ``format = "dap"`` app end to end, against divviup-ts playing both aggregators
(tests/support/dap_aggregators.py): registered with a manifest whose ``endpoint`` is the peer's
leader and whose ``[dap] helper`` is its helper, reports ingested, the batch approved (through the
broker, and once through the CLI), delivered by the Forwarder, and then the peer's collected
result is the true count, sum or histogram of the approved measurements.

Also: the stored sealed bytes are exactly what the leader received; a leader answering 503 and
then 201 is resumed without re-sending what it has; a report the leader already has (a pass that
did not hear its answer) does not fail the batch; a leader answering ``outdatedConfig`` gets the
reports it has not taken made again to its new configuration, stored first; another problem type
fails it in words; bad HPKE configurations (wrong media type, truncated, no supported suite) are
clear errors and send nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.core.test_forwarder import NoKeyring
from tests.support.builders import ROOT, allowed, tiny
from tests.support.dap_aggregators import DapAggregators, VdafSpec, node_dap_missing, request
from tray_app.core import Broker, ConflictError
from tray_app.core.forwarder import Forwarder, SendTimeout
from tray_app.core.rules.dap_batch import frame_reports, unframe_reports
from tray_app.core.rules.payload import sha256_hex
from tray_app.core.rules.prio import encode_task_id, optimal_chunk_length
from tray_app.core.rules.prio.dap_report import HpkeConfig, encode_hpke_config_list
from tray_app.core.rules.prio.hpke import public_key_of
from tray_app.core.rules.retry import Outcome

_MISSING = node_dap_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

APP = "org.example.tiny"
FORMATS = ["png", "jpeg", "webp", "gif"]
FIELDS: list[dict[str, Any]] = [
    {"name": "gpu", "type": "boolean", "description": "GPU on"},
    {"name": "exports", "type": "integer", "description": "how many exports"},
    {"name": "fmt", "type": "enum", "values": FORMATS, "description": "last format"},
    {"name": "who", "type": "string", "description": "the user", "sensitivity": "identifying"},
]
REPORTS = [
    {"gpu": True, "exports": 3, "fmt": "png", "who": "ann"},
    {"gpu": False, "exports": 300, "fmt": "gif", "who": "ann"},  # 300 is clamped to 255
    {"gpu": True, "exports": 0, "fmt": "png", "who": "ann"},
    {"gpu": True, "fmt": "webp", "who": "ann"},  # no exports: no sum report for it
    {"gpu": False, "exports": 17, "fmt": "jpeg", "who": "ann"},
]
SPECS = {
    "count": ("gpu", VdafSpec("count"), 3),
    "sum": ("exports", VdafSpec("sum", bits=8), 3 + 255 + 0 + 17),
    "histogram": (
        "fmt",
        VdafSpec("histogram", length=4, chunk_length=optimal_chunk_length(4)),
        [2, 1, 1, 1],  # png, jpeg, webp, gif
    ),
}
PROBLEM = "urn:ietf:params:ppm:dap:error:"


@pytest.fixture
def forwarder(broker: Broker) -> Iterator[Forwarder]:
    forwarder = Forwarder(broker.deliveries, secret_store=NoKeyring())
    yield forwarder
    forwarder.close()


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Callable[[str], DapAggregators]]:
    started: list[DapAggregators] = []

    def _start(vdaf: str) -> DapAggregators:
        pair = DapAggregators.start(
            task_id=secrets.token_bytes(32), vdaf=SPECS[vdaf][1], verify_key=secrets.token_bytes(16),
            log_dir=tmp_path / f"dap-{len(started)}",
        )  # fmt: skip
        started.append(pair)
        return pair

    yield _start
    for pair in started:
        pair.stop()


def dap_manifest(vdaf: str, leader: str, helper: str, task_id: bytes, **dap: Any) -> dict[str, Any]:
    name, spec, _ = SPECS[vdaf]
    task: dict[str, Any] = {"task_id": encode_task_id(task_id), "field": name, "vdaf": vdaf}
    if spec.bits is not None:
        task["bits"] = spec.bits
    table = {
        "helper": helper, "leader_operator": "Example", "helper_operator": "ISRG Divvi Up",
        "time_precision": 3600, "min_batch_size": 10, "tasks": [task], **dap,
    }  # fmt: skip
    return {"endpoint": leader, "fields": FIELDS, "format": "dap", "dap": table}


def _approved(broker: Broker, manifest: dict[str, Any], reports: list[dict[str, Any]] = REPORTS) -> str:
    allowed(broker, tiny(**manifest))
    broker.ingest(APP, reports)
    (closed,) = broker.close_batches(force=True)
    return broker.approve(closed.batch_id).batch.batch_id


def _received_report_ids(pair: DapAggregators) -> set[str]:
    return set(pair.shares("leader"))


@pytest.mark.parametrize("vdaf", ["count", "sum", "histogram"])
def test_an_approved_dap_batch_aggregates_to_the_true_total_at_an_independent_peer(
    broker: Broker, forwarder: Forwarder, peers: Callable[[str], DapAggregators], vdaf: str
) -> None:
    pair = peers(vdaf)
    batch = _approved(broker, dap_manifest(vdaf, pair.leader.url, pair.helper.url, pair.task_id))
    view = broker.view(batch)
    assert view.payload is not None
    approved = json.loads(view.payload.body)
    field_name = SPECS[vdaf][0]
    assert [m["field"] for m in approved["measurements"]] == [field_name] * len(approved["measurements"])
    assert "who" not in view.payload.body.decode()  # identifying and without a task: never sent
    [outcome] = forwarder.deliver_due()
    assert outcome.outcome == Outcome.DELIVERED, outcome
    collected = pair.collect()
    assert collected.result == SPECS[vdaf][2]
    assert collected.report_count == len(approved["measurements"])
    assert collected.rejected == [] and collected.refused_at_upload == []
    # the stored sealed bytes are what the leader took: the same report ids, one each
    sealed = broker.store.dap_reports(batch)
    assert sealed is not None and sealed.uploaded == sealed.reports == len(approved["measurements"])
    ids = {r.body[:16].hex() for r in unframe_reports(sealed.body)}
    assert ids == _received_report_ids(pair)
    # the receipt holds both digests: the measurements the person saw and the sealed reports
    delivered = [r for r in broker.history(APP) if r.action == "delivered"]
    assert delivered[-1].detail["payload_sha256"] == view.payload.sha256
    assert delivered[-1].detail["reports_sha256"] == sha256_hex(sealed.body) == sealed.sha256


def test_a_dap_batch_approved_and_delivered_through_the_cli(
    tmp_path: Path, peers: Callable[[str], DapAggregators]
) -> None:
    pair = peers("histogram")
    obj = tiny(**dap_manifest("histogram", pair.leader.url, pair.helper.url, pair.task_id)).to_obj()
    manifest = tmp_path / "dap.json"
    manifest.write_text(json.dumps(obj))
    env = {**os.environ, "TELEMETRY_TRAY_HOME": str(tmp_path / "home")}

    def tt(*args: str, input: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tray_app", *args], input=input, capture_output=True, text=True, env=env,
            cwd=ROOT, check=False, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    tt("register", str(manifest))
    tt("consent", APP, "allow")
    tt("submit", APP, "-", input=json.dumps({"reports": REPORTS}))
    tt("close-batches")
    [pending] = json.loads(tt("pending", "--json"))
    shown = json.loads(tt("show", pending["batch_id"], "--json"))
    assert shown["payload"]["min_batch_size"] == 10
    assert [m["bucket"] for m in shown["payload"]["measurements"]] == [r["fmt"] for r in REPORTS]
    tt("approve", pending["batch_id"])
    tt("deliver", "--wait", "20")
    collected = pair.collect()
    assert collected.result == SPECS["histogram"][2]
    history = json.loads(tt("history", "--json"))
    assert [h["action"] for h in history if h["batch_id"] == pending["batch_id"]][-1] == "delivered"


# ---------------------------------------------------------------------------------------------
# a leader in front of the peer's, answering as a test script says


@dataclass
class Front:
    """An HTTP server that passes requests to the peer's leader, except for the answers its
    ``script`` gives (one per PUT, in order; None: pass it on). It records every PUT it passed."""

    target: str
    script: list[tuple[int, dict[str, str]] | None] = field(default_factory=list)
    config: tuple[str, bytes] | None = None  # (media type, body) to answer GET /hpke_config with
    passed: list[bytes] = field(default_factory=list)
    puts: int = 0
    cut_after_passing: set[int] = field(default_factory=set)  # PUT numbers passed on, then the connection cut
    on_put: Callable[[int, bytes], None] | None = None  # called with each PUT's number and body, before its answer
    config_gets: int = 0  # GET /hpke_config requests

    def __post_init__(self) -> None:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] == "/hpke_config":
                    front.config_gets += 1
                if front.config is not None:
                    self._answer(200, front.config[0], front.config[1])
                    return
                got = request("GET", front.target + self.path)
                self._answer(got.status, got.content_type, got.body)

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                number = front.puts
                front.puts += 1
                if front.on_put is not None:
                    front.on_put(number, body)
                scripted = front.script.pop(0) if front.script else None
                if scripted is not None:
                    status, problem = scripted
                    self._answer(status, "application/problem+json", json.dumps(problem).encode())
                    return
                got = request("PUT", front.target + self.path, body, self.headers["Content-Type"])
                if 200 <= got.status < 300:
                    front.passed.append(body)
                if number in front.cut_after_passing:
                    self.connection.close()  # the leader has it; we never hear so
                    return
                self._answer(got.status, got.content_type, got.body)

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front() -> Iterator[Callable[..., Front]]:
    made: list[Front] = []

    def _make(target: str, **kwargs: Any) -> Front:
        made.append(Front(target, **kwargs))
        return made[-1]

    yield _make
    for f in made:
        f.close()


def _due_now(broker: Broker, batch: str) -> None:
    broker.deliveries.retry_now(batch)


def test_a_leader_answering_503_then_201_is_resumed_without_resending_what_it_has(
    broker: Broker, forwarder: Forwarder, peers: Callable[[str], DapAggregators], front: Callable[..., Front]
) -> None:
    pair = peers("count")
    leader = front(pair.leader.url, script=[None, None, (503, {"type": PROBLEM + "x", "title": "busy"})])
    batch = _approved(broker, dap_manifest("count", leader.url, pair.helper.url, pair.task_id))
    sealed_before = None
    [first] = forwarder.deliver_due()
    assert first.outcome == Outcome.RETRYING and "report 3 of 5" in (first.error or "")
    sealed_before = broker.store.dap_reports(batch)
    assert sealed_before is not None and sealed_before.uploaded == 2
    # Two reports are at the leader: a "withdrawn, nothing sent" receipt would be untrue.
    with pytest.raises(ConflictError, match=r"2 of the 5 reports .* are already at the leader"):
        broker.withdraw(batch)
    assert broker.view(batch).batch.status == "approved" and broker.store.dap_reports(batch) is not None
    _due_now(broker, batch)
    [second] = forwarder.deliver_due()
    assert second.outcome == Outcome.DELIVERED, second
    sealed = broker.store.dap_reports(batch)
    assert sealed is not None and sealed.body == sealed_before.body  # the same bytes, not made again
    # every stored report went exactly once, and those are the leader's
    assert leader.passed == [r.body for r in unframe_reports(sealed.body)]
    assert leader.puts == 6  # 2 taken, 1 refused with 503, then 3 more
    assert pair.collect().result == 3


def test_a_report_the_leader_already_has_does_not_fail_the_batch(
    broker: Broker, forwarder: Forwarder, peers: Callable[[str], DapAggregators], front: Callable[..., Front]
) -> None:
    pair = peers("count")
    leader = front(pair.leader.url, cut_after_passing={1})  # report 2 reaches the leader; its answer is lost
    batch = _approved(broker, dap_manifest("count", leader.url, pair.helper.url, pair.task_id))
    [first] = forwarder.deliver_due()
    assert first.outcome == Outcome.RETRYING
    _due_now(broker, batch)
    [second] = forwarder.deliver_due()  # report 2 again: the leader says reportRejected (a repeat)
    assert second.outcome == Outcome.DELIVERED, second
    result = pair.collect()
    assert result.result == 3 and result.report_count == 5


def test_a_report_in_doubt_made_again_for_a_new_configuration_keeps_its_report_id(
    broker: Broker, forwarder: Forwarder, peers: Callable[[str], DapAggregators], front: Callable[..., Front]
) -> None:
    # Report 1 reaches the leader but its answer is lost; when it goes again the leader says
    # outdatedConfig. Made again with a new id, the leader would count it twice.
    pair = peers("count")
    outdated = (400, {"type": PROBLEM + "outdatedConfig", "title": "The report was encrypted with an old key"})
    leader = front(pair.leader.url, cut_after_passing={0}, script=[None, outdated])
    batch = _approved(broker, dap_manifest("count", leader.url, pair.helper.url, pair.task_id))
    [first] = forwarder.deliver_due()
    assert first.outcome == Outcome.RETRYING
    before = broker.store.dap_reports(batch)
    assert before is not None and before.uploaded == 0
    _due_now(broker, batch)
    [second] = forwarder.deliver_due()
    assert second.outcome == Outcome.DELIVERED, second
    after = broker.store.dap_reports(batch)
    assert after is not None and after.body != before.body  # made again for the configuration
    old_first, new_first = unframe_reports(before.body)[0].body, unframe_reports(after.body)[0].body
    assert new_first[:16] == old_first[:16] and new_first != old_first  # same id, new shares
    result = pair.collect()
    assert result.report_count == 5 and result.result == 3  # report 1 counted once


def _leader_config_id(report: bytes) -> int:
    """The config id of a report's leader ciphertext: after the 16-byte id, the u64 time and
    the u32-prefixed public share."""
    public_share = int.from_bytes(report[24:28], "big")
    return report[28 + public_share]


@pytest.mark.parametrize("taken_first", [0, 2])
def test_a_leader_answering_outdated_config_gets_the_rest_made_again_to_its_new_configuration(
    broker: Broker, forwarder: Forwarder, peers: Callable[[str], DapAggregators], front: Callable[..., Front],
    monkeypatch: pytest.MonkeyPatch, taken_first: int,
) -> None:  # fmt: skip
    pair = peers("count")
    events: list[tuple[str, bytes]] = []  # ("stored", framed reports) and ("put", report), in order
    outdated = {"type": PROBLEM + "outdatedConfig", "title": "outdatedConfig", "detail": "unknown config id"}
    helper = front(pair.helper.url)  # passes everything on; counts the configuration requests
    leader = front(pair.leader.url, script=[None] * taken_first + [(400, outdated)])
    if taken_first == 0:
        # The leader served a key it has since rotated away (config id 9); its first upload is
        # refused, and from then on it serves its key now (the peer's own, config id 3).
        stale = HpkeConfig(9, 0x0020, 1, 1, public_key_of(secrets.token_bytes(32)))
        leader.config = ("application/dap-hpke-config-list", encode_hpke_config_list([stale]))

    def on_put(number: int, body: bytes) -> None:
        events.append(("put", body))
        if number == taken_first:
            leader.config = None  # the new configuration: GET /hpke_config goes to the peer's leader

    leader.on_put = on_put
    store_sealed = broker.deliveries.store_sealed

    def spy(*args: Any, **kwargs: Any) -> Any:
        events.append(("stored", args[1]))
        return store_sealed(*args, **kwargs)

    monkeypatch.setattr(broker.deliveries, "store_sealed", spy)
    batch = _approved(broker, dap_manifest("count", leader.url, helper.url, pair.task_id))
    [outcome] = forwarder.deliver_due()  # one pass: refused, configurations fetched again, re-made, sent
    assert outcome.outcome == Outcome.DELIVERED, outcome
    # both configurations were fetched again after the refusal (the cache was dropped)
    assert (leader.config_gets, helper.config_gets) == (2, 2)
    # sealed and stored, then uploaded until refused; re-made and stored again, then the rest uploaded
    k = taken_first
    assert [kind for kind, _ in events] == ["stored"] + ["put"] * (k + 1) + ["stored"] + ["put"] * (5 - k)
    first, second = (unframe_reports(body) for kind, body in events if kind == "stored")
    puts = [body for kind, body in events if kind == "put"]
    assert puts == [r.body for r in first[: k + 1]] + [r.body for r in second[k:]]
    # the reports taken stay as they were; the others are new, with new report ids
    assert second[:k] == first[:k] and len(second) == len(first) == 5
    assert all(old.body != new.body for old, new in zip(first[k:], second[k:], strict=True))
    assert {r.body[:16] for r in first[k:]}.isdisjoint(r.body[:16] for r in second[k:])
    if taken_first == 0:
        assert {_leader_config_id(r.body) for r in first} == {9}
    assert {_leader_config_id(r.body) for r in second} == {pair.leader.config_id}
    # the second seal is what is stored and what the leader took, every report once
    sealed = broker.store.dap_reports(batch)
    assert sealed is not None and sealed.body == frame_reports(second)
    assert sealed.uploaded == sealed.reports == 5
    assert leader.passed == [r.body for r in second]
    assert _received_report_ids(pair) == {r.body[:16].hex() for r in second}
    delivered = [r for r in broker.history(APP) if r.action == "delivered"]
    assert delivered[-1].detail["reports_sha256"] == sealed.sha256 == sha256_hex(sealed.body)
    assert delivered[-1].detail["reports_uploaded"] == 5
    # made again from the same measurements: the true count
    collected = pair.collect()
    assert (collected.result, collected.report_count) == (3, 5)
    assert collected.rejected == [] and collected.refused_at_upload == []


def test_a_leader_refusing_with_another_problem_fails_the_batch_in_words(
    broker: Broker, forwarder: Forwarder, peers: Callable[[str], DapAggregators], front: Callable[..., Front]
) -> None:
    pair = peers("count")
    problem = {"type": PROBLEM + "unrecognizedTask", "title": "An endpoint received a message with an unknown task ID.",
               "detail": "no such task"}  # fmt: skip
    leader = front(pair.leader.url, script=[(400, problem)])
    batch = _approved(broker, dap_manifest("count", leader.url, pair.helper.url, pair.task_id))
    [outcome] = forwarder.deliver_due()
    assert outcome.outcome == Outcome.FAILED
    assert "unknown task ID" in (outcome.error or "") and "unrecognizedTask" in (outcome.error or "")
    assert "report 1 of 5" in (outcome.error or "")
    assert broker.batch_summary(batch).status == "failed"
    assert leader.passed == []


def _bad_lists() -> dict[str, tuple[str, bytes, str]]:
    good = encode_hpke_config_list([HpkeConfig(1, 0x0020, 1, 1, secrets.token_bytes(32))])
    p256 = encode_hpke_config_list([HpkeConfig(1, 0x0010, 1, 1, secrets.token_bytes(65))])
    return {
        "wrong media type": ("application/json", good, "not application/dap-hpke-config-list"),
        "truncated": ("application/dap-hpke-config-list", good[:-3], "malformed"),
        "no supported suite": ("application/dap-hpke-config-list", p256, "offers no HPKE configuration"),
    }


@pytest.mark.parametrize("case", list(_bad_lists()))
def test_a_bad_hpke_configuration_is_a_clear_error_and_sends_nothing(
    broker: Broker, forwarder: Forwarder, peers: Callable[[str], DapAggregators], front: Callable[..., Front],
    case: str,
) -> None:  # fmt: skip
    media, body, words = _bad_lists()[case]
    pair = peers("count")
    helper = front(pair.helper.url, config=(media, body))
    leader = front(pair.leader.url)
    batch = _approved(broker, dap_manifest("count", leader.url, helper.url, pair.task_id))
    [outcome] = forwarder.deliver_due()
    assert outcome.outcome == Outcome.FAILED, outcome
    assert words in (outcome.error or "") and "helper" in (outcome.error or "")
    assert leader.puts == 0 and broker.store.dap_reports(batch) is None
    assert _received_report_ids(pair) == set()


def test_a_slow_leader_times_out_and_the_retry_sends_only_the_rest(
    broker: Broker, peers: Callable[[str], DapAggregators], front: Callable[..., Front]
) -> None:
    pair = peers("count")

    def slow(number: int, body: bytes) -> None:
        if number == 1:  # the second report's answer comes after the sender gave up
            time.sleep(1.5)

    leader = front(pair.leader.url, on_put=slow)
    batch = _approved(broker, dap_manifest("count", leader.url, pair.helper.url, pair.task_id))
    forwarder = Forwarder(
        broker.deliveries, secret_store=NoKeyring(), timeout=SendTimeout(connect=2.0, read=0.5, write=2.0, pool=2.0)
    )
    try:
        [first] = forwarder.deliver_due()
        assert first.outcome == Outcome.RETRYING and "report 2 of 5" in (first.error or ""), first
        assert "Timeout" in (first.error or "") or "timed out" in (first.error or "").lower()
        sealed = broker.store.dap_reports(batch)
        assert sealed is not None and sealed.uploaded == 1  # what went is kept; nothing is lost
        _due_now(broker, batch)
        time.sleep(1.2)  # the slow answer has gone by: the leader took report 2 after all
        [second] = forwarder.deliver_due()
    finally:
        forwarder.close()
    assert second.outcome == Outcome.DELIVERED, second
    after = broker.store.dap_reports(batch)
    assert after is not None and after.body == sealed.body and after.uploaded == 5  # the same bytes
    assert pair.collect().result == 3  # report 2 counted once, though it went twice
