"""Smoke test of a built bundle: the frozen program, not the source tree, does the whole flow.

    make package && .venv/bin/python tools/smoke_bundle.py [--keyring] [BUNDLE_PROGRAM]

In a temporary TELEMETRY_TRAY_HOME, with a vendor on 127.0.0.1: ``--version``; register an
example app, consent, submit, close the batch, review it (``pending``, ``show``), approve
it and ``deliver`` it, and check the vendor received exactly the previewed bytes (httpx,
h2 and truststore in the bundle); ``run --headless`` answering on its endpoint, its OTLP/HTTP
receiver decoding protobuf logs and metrics and answering in protobuf (opentelemetry-proto and
protobuf's C extension in the bundle), and stopping on SIGTERM; the tray (offscreen Qt)
starting and quitting on SIGTERM (on Windows, which has no SIGTERM, both are only
terminated). With
``--keyring`` (CI runs it inside tests/support/keyring_session.py) it also stores and clears a
vendor secret, which needs the bundled keyring backends. Standard library only; exits 1
with the reason on the first failure.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROGRAM = ROOT / "dist" / "telemetry-tray" / ("telemetry-tray.exe" if os.name == "nt" else "telemetry-tray")
APP = "org.example.photoedit"
WAIT_SECONDS = 30.0


class SmokeFailure(Exception):
    pass


class Vendor(http.server.ThreadingHTTPServer):
    """A vendor on 127.0.0.1 that keeps every body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _VendorHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/batches"


class _VendorHandler(http.server.BaseHTTPRequestHandler):
    server: Vendor

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Bundle:
    def __init__(self, program: Path, home: Path) -> None:
        self.program = program
        # Any free OTLP port, not 4318: the smoke test never meets a tray or a test on it.
        self.env = {
            **os.environ,
            "TELEMETRY_TRAY_HOME": str(home),
            "TELEMETRY_TRAY_PORT": "0",
            "TELEMETRY_TRAY_OTLP_PORT": "0",
        }
        self.home = home

    def run(self, *args: str, input: str | None = None, expect: int = 0) -> str:
        result = subprocess.run(  # noqa: S603 (the bundle we were asked to test)
            [str(self.program), *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
            check=False,
        )
        if result.returncode != expect:
            raise SmokeFailure(
                f"`telemetry-tray {' '.join(args)}` exited {result.returncode}, not {expect}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603 (the bundle we were asked to test)
            [str(self.program), *args],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_endpoint(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        path = self.home / "endpoint.json"
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SmokeFailure(f"exited {proc.returncode} before writing endpoint.json:\n{_output(proc)}")
            try:
                endpoint = json.loads(path.read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.1)
                continue
            if endpoint.get("pid") == proc.pid:
                return dict(endpoint)
            time.sleep(0.1)
        proc.kill()
        raise SmokeFailure(f"no endpoint.json within {WAIT_SECONDS:.0f} s:\n{_output(proc)}")

    def stop(self, proc: subprocess.Popen[str], what: str) -> str:
        if os.name == "nt":
            # Windows has no SIGTERM to send (send_signal would TerminateProcess): the
            # clean stop on a signal is checked on Linux and macOS only.
            proc.terminate()
            proc.wait(WAIT_SECONDS)
            return _output(proc)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SmokeFailure(f"{what} did not stop on SIGTERM:\n{_output(proc)}") from None
        output = _output(proc)
        if proc.returncode != 0:
            raise SmokeFailure(f"{what} exited {proc.returncode} on SIGTERM:\n{output}")
        if "Traceback" in output:
            raise SmokeFailure(f"{what} printed a traceback:\n{output}")
        if (self.home / "endpoint.json").exists():
            raise SmokeFailure(f"{what} left endpoint.json behind")
        return output


# -- OTLP/HTTP protobuf, by hand (standard library only) ------------------------------------
#
# The bundle's receiver must parse these with the bundled opentelemetry-proto and upb, and
# answer with a serialized Export...ServiceResponse. tests/shells/test_packaging.py checks
# these bytes against the stock opentelemetry-proto classes.

OTLP_SERVICE = "inkwell-notes"  # resources/manifests/otel-notes.toml [otlp] service_names
OTLP_FOREIGN = "smoke-other"  # a service.name that manifest does not list: refused, by name
OTLP_TIME_NANOS = 1_795_515_072_000_000_000  # 2026-11-24T10:11:12Z
PROTOBUF = "application/x-protobuf"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pb(number: int, payload: bytes | str | int, wire: int = 2) -> bytes:
    """One field: LEN (2) for bytes and text, VARINT (0) or I64 (1, little-endian) for an int."""
    tag = _varint(number << 3 | wire)
    if isinstance(payload, int):
        return tag + (_varint(payload) if wire == 0 else payload.to_bytes(8, "little", signed=True))
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return tag + _varint(len(data)) + data


def _resource(service_name: str) -> bytes:
    """A Resource whose one attribute (KeyValue, AnyValue.string_value) is its service.name."""
    return _pb(1, _pb(1, _pb(1, "service.name") + _pb(2, _pb(1, service_name))))


def otlp_logs_body() -> bytes:
    """An ExportLogsServiceRequest: a note.created INFO record from OTLP_SERVICE, and one from
    OTLP_FOREIGN."""
    record = _pb(1, OTLP_TIME_NANOS, wire=1) + _pb(2, 9, wire=0) + _pb(12, "note.created")
    return b"".join(_pb(1, _resource(name) + _pb(2, _pb(2, record))) for name in (OTLP_SERVICE, OTLP_FOREIGN))


def otlp_metrics_body() -> bytes:
    """An ExportMetricsServiceRequest: one delta Sum point of inkwell.sync.attempts (3) from
    OTLP_SERVICE, and the same from OTLP_FOREIGN."""
    point = _pb(3, OTLP_TIME_NANOS, wire=1) + _pb(6, 3, wire=1)  # time_unix_nano, as_int
    total = _pb(1, point) + _pb(2, 1, wire=0) + _pb(3, 1, wire=0)  # DELTA, monotonic
    metric = _pb(1, "inkwell.sync.attempts") + _pb(7, total)
    return b"".join(_pb(1, _resource(name) + _pb(2, _pb(2, metric))) for name in (OTLP_SERVICE, OTLP_FOREIGN))


def _pb_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """The fields of a message (VARINT as int, LEN as bytes; I64 and I32 as int)."""
    fields: dict[int, list[int | bytes]] = {}
    at = 0

    def varint() -> int:
        nonlocal at
        value = shift = 0
        while True:
            if at >= len(data):
                raise SmokeFailure(f"truncated protobuf: {data!r}")
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while at < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value = varint()
        elif wire == 2:
            size = varint()
            value, at = data[at : at + size], at + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = int.from_bytes(data[at : at + size], "little"), at + size
        else:
            raise SmokeFailure(f"protobuf wire type {wire} in {data!r}")
        fields.setdefault(number, []).append(value)
    return fields


def partial_success(answer: bytes) -> tuple[int, str]:
    """(rejected, error_message) of an Export{Logs,Metrics}ServiceResponse."""
    outer = _pb_fields(answer).get(1, [b""])[-1]
    inner = _pb_fields(outer if isinstance(outer, bytes) else b"")
    rejected = inner.get(1, [0])[-1]
    message = inner.get(2, [b""])[-1]
    return (
        rejected if isinstance(rejected, int) else -1,
        message.decode("utf-8", "replace") if isinstance(message, bytes) else "",
    )


def _post_otlp(url: str, body: bytes, token: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=body, headers={"Authorization": f"Bearer {token}", "Content-Type": PROTOBUF}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def _otlp_url(home: Path, pid: int) -> str:
    """Where the running instance's OTLP receiver listens (its otlp.json)."""
    try:
        receiver = json.loads((home / "otlp.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise SmokeFailure(f"no otlp.json beside endpoint.json: {exc}") from None
    _check(receiver.get("pid") == pid and receiver.get("url"), f"otlp.json: {receiver}")
    return str(receiver["url"])


def check_otlp_protobuf(program: Path, home: Path, pid: int, token: str) -> None:
    extension = [path for path in program.parent.rglob("_message*") if path.parent.name == "_upb"]
    _check(bool(extension), f"google/_upb/_message (protobuf's C extension) is not in {program.parent}")
    url = _otlp_url(home, pid)
    for signal_path, body in (("/v1/logs", otlp_logs_body()), ("/v1/metrics", otlp_metrics_body())):
        status, kind, answer = _post_otlp(url + signal_path, body, token)
        _check(
            status == 200 and kind == PROTOBUF,
            f"protobuf POST {signal_path} answered {status} {kind}: {answer[:300]!r}",
        )
        rejected, message = partial_success(answer)
        _check(
            rejected == 1 and f"service.name {OTLP_FOREIGN!r}" in message,
            f"POST {signal_path}: partial_success rejected {rejected}, said {message!r}; "
            f"expected the {OTLP_FOREIGN!r} record refused by name",
        )


def _output(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate() if proc.returncode is not None else ("", "")
    return (out or "") + (err or "")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def smoke(program: Path, keyring: bool) -> None:
    from tray_app import __version__  # the checkout the bundle was built from

    step("--version")
    with tempfile.TemporaryDirectory(prefix="tray-smoke-") as temp:
        bundle = Bundle(program, Path(temp) / "home")
        version = bundle.run("--version").strip()
        _check(version == f"telemetry-tray {__version__}", f"--version says {version!r}")

        vendor = Vendor()
        threading.Thread(target=vendor.serve_forever, daemon=True).start()
        try:
            step("register, consent, submit, close-batches")
            manifest = tomllib.loads((ROOT / "resources" / "manifests" / "photoedit.toml").read_text(encoding="utf-8"))
            manifest["endpoint"] = vendor.url
            manifest_file = Path(temp) / "photoedit.json"
            manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
            registered = bundle.run("register", str(manifest_file))
            _check("token" in registered.lower(), f"register printed no token:\n{registered}")
            token = registered.split()[-1]
            bundle.run("consent", APP, "allow")
            report = {"event": "crop", "ts": "2026-11-24T10:11:12Z", "app_version": "3.1.4"}
            bundle.run("submit", APP, "-", input=json.dumps(report))
            bundle.run("close-batches")

            step("pending, show, approve, deliver")
            pending = json.loads(bundle.run("pending", "--json"))
            _check(len(pending) == 1 and pending[0]["reports"] == 1, f"pending --json: {pending}")
            batch = pending[0]["batch_id"]
            shown = json.loads(bundle.run("show", batch, "--coarsen", "ts=day", "--json"))
            digest = shown["payload_sha256"]
            bundle.run("approve", batch, "--coarsen", "ts=day", "--sha256", digest)
            bundle.run("deliver", "--wait", "20")
            _check(len(vendor.bodies) == 1, f"the vendor got {len(vendor.bodies)} bodies, not 1")
            sent = hashlib.sha256(vendor.bodies[0]).hexdigest()
            _check(sent == digest, f"sent bytes hash to {sent}, the preview said {digest}")
            history = json.loads(bundle.run("history", "--json"))
            _check([entry["action"] for entry in history] == ["approved", "delivered"], f"history: {history}")

            otlp_app = "org.inkwell.notes"
            registered = bundle.run("register", str(ROOT / "resources" / "manifests" / "otel-notes.toml"))
            otlp_token = registered.split()[-1]

            if keyring:
                step("credentials set / clear (bundled keyring backends)")
                bundle.run("register", str(ROOT / "resources" / "manifests" / "notes-sync.json"))
                stored = bundle.run("credentials", "set", "net.notesync.desktop", input="smoke-secret\n")
                _check("OS keyring" in stored, f"credentials set said: {stored}")
                bundle.run("credentials", "clear", "net.notesync.desktop")

            step("run --headless: endpoint, health, a report, SIGTERM")
            proc = bundle.start("run", "--headless")
            endpoint = bundle.wait_for_endpoint(proc)
            _check(endpoint.get("version") == __version__, f"endpoint.json: {endpoint}")
            with urllib.request.urlopen(f"{endpoint['url']}/v1/health", timeout=10) as answer:  # noqa: S310 (loopback)
                health = json.loads(answer.read())
            _check(health == {"status": "ok", "version": __version__}, f"/v1/health: {health}")
            request = urllib.request.Request(  # noqa: S310 (loopback)
                f"{endpoint['url']}/v1/reports",
                data=json.dumps(report).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
                _check(answer.status == 202, f"POST /v1/reports answered {answer.status}")
            step("OTLP/HTTP: protobuf logs and metrics decoded, answered in protobuf (opentelemetry-proto, upb)")
            try:
                check_otlp_protobuf(program, bundle.home, proc.pid, otlp_token)
            except SmokeFailure:
                proc.kill()  # not left running when the check fails
                proc.wait(WAIT_SECONDS)
                raise
            bundle.stop(proc, "run --headless")
            held = {entry["app_id"]: entry["reports"] for entry in json.loads(bundle.run("pending", "--json"))}
            _check(held.get(otlp_app) == 2, f"the OTLP log record and data point were not stored: {held}")

            step("the tray (offscreen), SIGTERM")
            proc = bundle.start(QT_QPA_PLATFORM="offscreen")
            bundle.wait_for_endpoint(proc)
            time.sleep(2)  # let the windows and icons draw: a missing plugin or SVG shows up here
            output = bundle.stop(proc, "the tray")
            for sign in ("Could not load the Qt platform plugin", "Could not find the Qt platform plugin"):
                _check(sign not in output, f"the tray: {output}")
        finally:
            vendor.shutdown()
            vendor.server_close()


def step(text: str) -> None:
    print(f"smoke: {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", nargs="?", type=Path, default=DEFAULT_PROGRAM)
    parser.add_argument("--keyring", action="store_true", help="also store and clear a secret in the OS keyring")
    args = parser.parse_args()
    if not args.program.is_file():
        print(f"smoke: no bundle at {args.program}; run `make package` first", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        smoke(args.program.resolve(), args.keyring)
    except (SmokeFailure, subprocess.TimeoutExpired, OSError) as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"smoke: bundle OK in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
