"""Two DAP-09 aggregators that nobody here wrote: divviup-ts (``@divviup/prio3``, VDAF-08) with
``@hpke/core``, in two Node processes on 127.0.0.1 (tests/support/node_dap/aggregator.mjs), and
what a test says to them over HTTP.

``DapAggregators.start(...)`` starts the helper, then the leader pointed at it; ``stop()`` (or
leaving the ``with`` block) ends both. Each process's log goes to a file in ``log_dir``, and a
failure to start quotes it. The endpoints under ``/internal/`` are test-only (docs/dap.md, "The
independent peer"): the collection and what each server alone holds.
"""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.builders import ROOT
from tests.support.processes import stop_process
from tray_app.core.rules.prio import encode_task_id

NODE_DAP = ROOT / "tests" / "support" / "node_dap"
AGGREGATOR_SCRIPT = NODE_DAP / "aggregator.mjs"
SHARD_SCRIPT = NODE_DAP / "shard.mjs"
NODE = shutil.which("node")
HOW = (
    "the DAP peer tests need node and npm (Debian: apt-get install nodejs npm; .ci/run does it) "
    "and the packages of tests/support/node_dap/package-lock.json (make install runs npm ci there)"
)


def node_dap_missing() -> str | None:
    """Why the Node aggregators cannot run here, or None when they can."""
    if NODE is None:
        return f"node is not installed: {HOW}"
    for package in ("@divviup/prio3", "@hpke/core", "@hpke/dhkem-x25519"):
        if not (NODE_DAP / "node_modules" / package / "package.json").is_file():
            return f"tests/support/node_dap/node_modules/{package} is missing: {HOW}"
    return None


@dataclass(frozen=True)
class VdafSpec:
    """A VDAF and its parameters, as aggregator.mjs takes them on its command line."""

    name: str  # count, sum or histogram
    bits: int | None = None
    length: int | None = None
    chunk_length: int | None = None

    def argv(self) -> list[str]:
        out = ["--vdaf", self.name]
        for option, value in (("--bits", self.bits), ("--length", self.length), ("--chunk-length", self.chunk_length)):
            if value is not None:
                out += [option, str(value)]
        return out

    def shard_request(self) -> dict[str, Any]:
        return {"vdaf": self.name, "bits": self.bits, "length": self.length, "chunk_length": self.chunk_length}


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def request(method: str, url: str, body: bytes | None = None, content_type: str | None = None) -> Response:
    """One HTTP request with urllib; an error status is a Response too, not an exception."""
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return Response(resp.status, resp.headers.get_content_type(), resp.read(), dict(resp.headers))
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers.get_content_type(), error.read(), dict(error.headers))


@dataclass(frozen=True)
class ServerShares:
    """What one aggregator alone holds for one report: its measurement share (field elements,
    decoded from its input share; the helper's expanded from its seed) and its output share."""

    report_id: str  # hex
    status: str  # uploaded, finished or rejected
    error: str | None
    measurement_share: list[int] | None
    output_share: list[int] | None


@dataclass(frozen=True)
class Collected:
    """What the leader's test-only collection returns."""

    report_count: int
    result: int | list[int]
    leader_aggregate_share: list[int]
    helper_aggregate_share: list[int]
    rejected: list[dict[str, str]]  # {report_id, by, error}: refused during preparation
    refused_at_upload: list[dict[str, str]]  # {report_id, error, detail}


@dataclass
class Aggregator:
    role: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    config_id: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class DapAggregators:
    """A leader and a helper for one task, each a Node process running divviup-ts."""

    task_id: bytes
    vdaf: VdafSpec
    verify_key: bytes
    leader: Aggregator
    helper: Aggregator
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        *,
        task_id: bytes,
        vdaf: VdafSpec,
        verify_key: bytes,
        log_dir: Path,
        unsupported_first: bool = True,
        timeout: float = 20.0,
    ) -> DapAggregators:
        """The helper, then the leader, each ready once it printed its port. With
        ``unsupported_first`` the leader lists a DHKEM(P-256) configuration before its X25519 one."""
        missing = node_dap_missing()
        if missing:
            raise RuntimeError(missing)
        # "--task-id=…" in one argument: a task id may start with "-", which node's parseArgs
        # would otherwise take for an option (one run in 64)
        common = [f"--task-id={encode_task_id(task_id)}", *vdaf.argv(), "--verify-key", verify_key.hex()]
        helper = _spawn("helper", [*common, "--config-id", "7"], log_dir, timeout)
        try:
            extra = ["--unsupported-first"] if unsupported_first else []
            leader = _spawn("leader", [*common, "--config-id", "3", "--helper", helper.url, *extra], log_dir, timeout)
        except BaseException:
            stop_process(helper.process, timeout=5)
            raise
        return cls(task_id, vdaf, verify_key, leader, helper)

    def __enter__(self) -> DapAggregators:
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            for aggregator in (self.leader, self.helper):
                stop_process(aggregator.process, timeout=5)

    # -- what a client does

    def hpke_config_list(self, role: str) -> Response:
        return request("GET", f"{self._server(role).url}/hpke_config?task_id={encode_task_id(self.task_id)}")

    def upload(self, url: str, report: bytes, content_type: str = "application/dap-report") -> Response:
        return request("PUT", url, report, content_type)

    # -- test-only

    def collect(self) -> Collected:
        """Aggregates every report the leader took and has not collected yet: an aggregation
        job with the helper, then both aggregate shares, unsharded by the leader."""
        response = request("POST", f"{self.leader.url}/internal/collect", b"", "application/json")
        if response.status != 200:
            raise AssertionError(f"collect: {response.status} {response.body!r}\n{self.logs()}")
        data = response.json()
        result = data["result"]
        return Collected(
            report_count=data["report_count"],
            result=[int(x) for x in result] if isinstance(result, list) else int(result),
            leader_aggregate_share=[int(x) for x in data["leader_aggregate_share"]],
            helper_aggregate_share=[int(x) for x in data["helper_aggregate_share"]],
            rejected=data["rejected"],
            refused_at_upload=data["refused_at_upload"],
        )

    def shares(self, role: str) -> dict[str, ServerShares]:
        """What ``role`` alone holds, by report id (hex)."""
        response = request("GET", f"{self._server(role).url}/internal/shares")
        assert response.status == 200, response
        return {
            entry["report_id"]: ServerShares(
                report_id=entry["report_id"],
                status=entry["status"],
                error=entry["error"],
                measurement_share=_ints(entry["measurement_share"]),
                output_share=_ints(entry["output_share"]),
            )
            for entry in response.json()["reports"]
        }

    def logs(self) -> str:
        return "\n".join(f"--- {a.role} log\n{_tail(a.log)}" for a in (self.leader, self.helper))

    def _server(self, role: str) -> Aggregator:
        return {"leader": self.leader, "helper": self.helper}[role]


def shard_with_divviup(vdaf: VdafSpec, cases: list[dict[str, Any]], timeout: float = 20.0) -> list[dict[str, Any]]:
    """divviup-ts's sharding of ``cases`` ({measurement, nonce, rand} with hex bytes):
    [{public_share, input_shares}] in hex (tests/support/node_dap/shard.mjs)."""
    missing = node_dap_missing()
    if missing:
        raise RuntimeError(missing)
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(SHARD_SCRIPT)], input=json.dumps({**vdaf.shard_request(), "cases": cases}),
        capture_output=True, text=True, timeout=timeout, check=False, cwd=NODE_DAP,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"shard.mjs exited {done.returncode}: {done.stderr}")
    out: list[dict[str, Any]] = json.loads(done.stdout)
    return out


def _ints(values: list[str] | None) -> list[int] | None:
    return None if values is None else [int(v) for v in values]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(role: str, argv: list[str], log_dir: Path, timeout: float) -> Aggregator:
    assert NODE is not None
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"dap-{role}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [NODE, str(AGGREGATOR_SCRIPT), "--role", role, *argv],
            cwd=NODE_DAP, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
        )  # fmt: skip
    aggregator = Aggregator(role, process, log)
    try:
        ready = _ready_line(process, timeout)
    except BaseException:
        stop_process(process, timeout=5)
        raise
    finally:
        assert process.stdout is not None
        process.stdout.close()  # it prints nothing after its ready line
    if ready is None:
        code = process.poll()
        stop_process(process, timeout=5)
        raise RuntimeError(f"the DAP {role} did not start (exit code {code}):\n{_tail(log)}")
    aggregator.port = int(ready["port"])
    aggregator.config_id = int(ready["config_id"])
    return aggregator


def _ready_line(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any] | None:
    """The JSON line the aggregator prints once it listens, or None if it exits or times out."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffered = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffered:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None
            chunk = process.stdout.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                return None
            buffered += chunk
    value: dict[str, Any] = json.loads(buffered.split(b"\n", 1)[0])
    return value
