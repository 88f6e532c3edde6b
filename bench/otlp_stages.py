"""Where the time of an OTLP request goes: ``python -m bench.otlp_stages [--profile]``.

Not a benchmark of ``python -m bench`` (it writes no figures): it feeds ``http.otlp``'s
requests to the receiver's stages in this process, one after the other, and prints the
seconds of each over all of them:

* ``decode``: ``decode_logs`` (protobuf parse and the walk into ``OtlpLogRecord``s);
* ``to_report``: the receiver's records-to-reports step (``to_report`` for each record, and
  the undeclared names it hands on);
* ``ingest``: ``Broker.ingest`` with the request's key (check, encode, one transaction);
* ``answer``: the protobuf ``ExportLogsServiceResponse``;

and, inside ``ingest``, the share of ``check_reports`` and of the undeclared names it counts
(the same reports checked again with and without them); then the same requests through the
whole WSGI application (``OtlpApp``, no socket), and raw ``sqlite3`` inserting the same rows.
``--profile`` adds a cProfile of the WSGI run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from tray_app.core import Broker, Locations, decode_logs, load_manifest
from tray_app.core.rules.reports import check_reports
from tray_app.ingest.otlp_routes import OtlpApp, _Outcome, _protobuf_response, _request_key

from .core_bench import Row, chunks, raw_insert_seconds, report_body
from .figures import temp_home
from .otlp_bench import OTEL_NOTES, PROTOBUF, RECORDS_PER_REQUEST, REPORTS, make_requests


def _broker(home: Path) -> tuple[Broker, str, str]:
    broker = Broker.open(Locations.under(home))
    manifest = load_manifest(OTEL_NOTES)
    token = broker.register(manifest).token
    return broker, manifest.app_id, token


def stages(bodies: list[bytes], home: Path) -> dict[str, float]:
    broker, app_id, token = _broker(home)
    try:
        app = OtlpApp(broker)
        manifest = broker.authenticate(token).manifest
        spent = dict.fromkeys(("decode", "to_report", "ingest", "answer"), 0.0)
        calls: list[list[dict[str, Any]]] = []
        for body in bodies:
            t0 = perf_counter()
            records = decode_logs(body, PROTOBUF).records
            t1 = perf_counter()
            outcome = _Outcome("logs", app_id, manifest.otlp_service_names)
            reports = app._reports(manifest, records, outcome)
            t2 = perf_counter()
            calls.append(reports)
            broker.ingest(app_id, reports, key=_request_key(app_id, "logs", body))
            t3 = perf_counter()
            _protobuf_response("logs", 0, "")
            t4 = perf_counter()
            for name, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[name] += seconds
        today = broker.now().date()
        declared = [[{k: v for k, v in r.items() if v is not None} for r in call] for call in calls]
        t0 = perf_counter()
        for call in calls:
            check_reports(manifest, call, today)
        t1 = perf_counter()
        for call in declared:
            check_reports(manifest, call, today)
        t2 = perf_counter()
        spent["ingest.check_reports"] = t1 - t0
        spent["ingest.undeclared_names"] = (t1 - t0) - (t2 - t1)
        return spent
    finally:
        broker.close()


def wsgi_seconds(bodies: list[bytes], home: Path, profile: cProfile.Profile | None = None) -> float:
    broker, _, token = _broker(home)
    try:
        app = OtlpApp(broker)

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            if not status.startswith("200"):
                raise RuntimeError(status)
            return lambda data: None

        environs = [_environ(body, token) for body in bodies]
        if profile is not None:
            profile.enable()
        start = perf_counter()
        for environ in environs:
            _drain(app(environ, start_response))
        seconds = perf_counter() - start
        if profile is not None:
            profile.disable()
        return seconds
    finally:
        broker.close()


def _drain(answer: Iterable[bytes]) -> None:
    for _ in answer:
        pass


def _environ(body: bytes, token: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/logs",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "4318",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:4318",
        "CONTENT_TYPE": PROTOBUF,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "REQUEST_URI": "/v1/logs",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_stages", description=__doc__)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the WSGI run")
    args = parser.parse_args(argv)
    bodies, reports = make_requests(REPORTS, RECORDS_PER_REQUEST)
    rows: list[Row] = [("0" * 32, "2026-11-24T10:30:00Z", report_body(r)) for r in reports]
    with temp_home() as tmp:
        spent = stages(bodies, tmp / "stages")
        profile = cProfile.Profile() if args.profile else None
        wsgi = wsgi_seconds(bodies, tmp / "wsgi", profile)
        raw = raw_insert_seconds(tmp / "raw.sqlite3", chunks(rows, RECORDS_PER_REQUEST))
    total = sum(seconds for name, seconds in spent.items() if "." not in name)
    print(f"{REPORTS:,} records in {len(bodies):,} protobuf requests, one thread, in this process:")
    for name, seconds in spent.items():
        label = f"  of which {name.split('.')[1]}" if "." in name else name
        print(f"  {label:26} {seconds:8.3f} s  {seconds / total:6.1%}  {REPORTS / seconds:>12,.0f} records/s")
    print(f"  {'all stages':26} {total:8.3f} s          {REPORTS / total:>12,.0f} records/s")
    print(f"  {'wsgi app (no socket)':26} {wsgi:8.3f} s          {REPORTS / wsgi:>12,.0f} records/s")
    print(f"  {'raw sqlite':26} {raw:8.3f} s          {REPORTS / raw:>12,.0f} rows/s")
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
