"""The command-line shell: parse arguments, call the broker, print the answer.

Exit codes: 0 ok, 1 runtime failure, 2 usage or bad input, always with a one-line
reason on stderr. ``--json`` output shapes are a contract (DESIGN.md, "CLI").
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from .core import (
    BRIEF_DETAIL_KEYS,
    MAX_BODY_BYTES,
    MODES,
    AppStatus,
    BatchView,
    Broker,
    ConsentAnswer,
    Disclosure,
    InputError,
    Locations,
    Outcome,
    Policy,
    Remedy,
    Scope,
    TrayError,
    decode_reports,
    load_manifest,
    plain_text,
    repair_permissions,
    running_endpoint,
    running_otlp_receiver,
    scope_fields_in_words,
    stop_instance,
    value_label,
    wake_instance,
)

PROG = "telemetry-tray"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that cannot be run; argparse's own errors are routed here."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(args_list)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    handler: Callable[[argparse.Namespace], int] = getattr(args, "handler", _start_tray)
    try:
        return handler(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except TrayError as exc:
        return _fail(explain(exc), EXIT_USAGE if isinstance(exc, InputError) else EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


# What the CLI tells a person to do about each remedy, with its own commands.
_REMEDIES: dict[Remedy, Callable[[str], str]] = {
    Remedy.ALLOW_APP: lambda app: f"Allow it first: {PROG} consent {app} allow",
    Remedy.PERSON_ALLOWS: lambda app: f"Only they can allow it again ({PROG} consent APP allow).",
    Remedy.ANSWER_WAITING_APPS: lambda app: f"Allow or block some first ({PROG} apps; {PROG} consent APP allow|block).",
    Remedy.CLOSE_BATCHES: lambda app: (
        f"Close it first ({PROG} close-batches), or approve with the --sha256 that show printed."
    ),
    Remedy.SET_CREDENTIALS: lambda app: (
        f"Set it with: {PROG} credentials set {app} (the secret is read from standard input)."
    ),
    Remedy.SEE_APPS: lambda app: f"See the registered apps with: {PROG} apps",
    Remedy.SEE_PENDING: lambda app: f"See waiting batches with: {PROG} pending",
}


def explain(exc: TrayError) -> str:
    """An error as the CLI says it: the problem, and its remedy as this CLI's commands."""
    if exc.remedy is None:
        return exc.message
    return exc.message_with(_REMEDIES[exc.remedy](exc.app_id or "APP"))


def _fail(message: str, code: int) -> int:
    _note(message)
    return code


def _note(message: str) -> None:
    """One line on stderr: a failure's reason, or a word beside output that must stay clean."""
    print(f"{PROG}: {plain_text(' '.join(message.split()))}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Review and limit the telemetry your programs send.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    verbs = parser.add_subparsers(title="verbs", metavar="VERB", parser_class=_Parser)

    def verb(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    run = verb("run", _run, "start the running instance (the tray, or --headless without a UI)")
    run.add_argument("--headless", action="store_true", help="no UI: only the local endpoint and schedules")

    _json_flag(verb("status", _status, "show the state of Telemetry Tray"))
    _json_flag(verb("apps", _apps, "list registered apps"))

    register = verb("register", _register, "register an app from its manifest and print its token once")
    register.add_argument("file", type=Path, metavar="FILE", help="the manifest (.toml or .json)")
    _json_flag(register)

    consent = verb("consent", _consent, "allow an app to send telemetry, or block it")
    consent.add_argument("app", metavar="APP")
    consent.add_argument("choice", choices=[c.value for c in ConsentAnswer])

    policy = verb("policy", _policy, "set an app's standing consent default")
    policy.add_argument("app", metavar="APP")
    policy.add_argument("policy", choices=[p.value for p in Policy])

    submit = verb("submit", _submit, "submit reports for an app (JSON from FILE or stdin)")
    submit.add_argument("app", metavar="APP")
    submit.add_argument("file", nargs="?", default="-", metavar="FILE", help="JSON reports; - or nothing for stdin")
    _json_flag(submit)

    _json_flag(verb("close-batches", _close_batches, "close the open collection windows now"))
    _json_flag(verb("pending", _pending, "list batches waiting for a decision"))

    show = verb("show", _show, "show a batch and the exact payload it would send")
    show.add_argument("batch", metavar="BATCH")
    _scope_options(show)
    _json_flag(show)

    approve = verb("approve", _approve, "approve a batch, optionally with a narrower scope")
    approve.add_argument("batch", metavar="BATCH")
    _scope_options(approve)
    approve.add_argument("--remember", action="store_true", help="save this scope for the app and approve its batches")
    approve.add_argument(
        "--sha256", metavar="HEX", help="approve only if the payload still has this digest (from show)"
    )
    _json_flag(approve)

    discard = verb("discard", _discard, "discard a batch: nothing is sent")
    discard.add_argument("batch", metavar="BATCH")
    _json_flag(discard)

    withdraw = verb("withdraw", _withdraw, "take back an approved batch not sent yet: it is discarded, nothing is sent")
    withdraw.add_argument("batch", metavar="BATCH")
    _json_flag(withdraw)

    deliver = verb("deliver", _deliver, "send approved batches now")
    deliver.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="keep retrying for up to SECONDS until all are sent"
    )
    _json_flag(deliver)

    history = verb("history", _history, "list every decision and delivery")
    history.add_argument("--app", metavar="APP", help="only this app")
    history.add_argument("--verify", action="store_true", help="check the hash chain of the receipts")
    history.add_argument(
        "--export", metavar="FILE", help="write every receipt and the chain's head hash to FILE as JSON"
    )
    _json_flag(history)

    credentials = verb(
        "credentials",
        _credentials,
        "set (secret read from stdin) or clear an app's vendor credentials in the OS keyring",
    )
    credentials.add_argument("action", choices=("set", "clear"))
    credentials.add_argument("app", metavar="APP")

    connect = verb(
        "connect",
        _connect,
        "print the environment lines that point an app's OpenTelemetry SDK at the tray, with a working token",
    )
    connect.add_argument("app", metavar="APP")
    _json_flag(connect)

    remove = verb(
        "remove",
        _remove,
        "forget an app: its undelivered batches are discarded and its credentials cleared (receipts stay)",
    )
    remove.add_argument("app", metavar="APP")

    quit_ = verb("quit", _quit, "stop the running instance of this home (the tray or run --headless)")
    quit_.add_argument(
        "--wait", type=float, default=30.0, metavar="SECONDS", help="how long to wait for it to stop (default 30)"
    )
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (a stable shape) instead of text")


def _scope_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exclude", action="append", default=[], metavar="FIELD", help="leave FIELD out")
    parser.add_argument(
        "--include", action="append", default=[], metavar="FIELD", help="send FIELD (e.g. an identifying one)"
    )
    parser.add_argument(
        "--coarsen", action="append", default=[], metavar="FIELD=LEVEL", help="coarsen FIELD (e.g. ts=day)"
    )
    parser.add_argument(
        "--noise",
        action="append",
        default=[],
        metavar="FIELD=EPSILON",
        help="add noise to FIELD where its app offers it (e.g. gpu_accelerated=1); FIELD=off removes it",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--aggregate", action="store_true", help="send only counts per value")
    mode.add_argument("--records", action="store_true", help="send the individual records")


# -- verbs -----------------------------------------------------------------------------


def _broker() -> Broker:
    locations = Locations.from_env()
    for problem in repair_permissions(locations.prepare()):
        print(f"{PROG}: warning: {problem}", file=sys.stderr)
    broker = Broker.open(locations)
    closed, sweep = broker.tidy()
    if closed or sweep.expired or sweep.purged:
        # Even a verb that only reads may have closed (and, by policy, approved) a batch:
        # the running instance sends it now instead of at its next scheduled look.
        wake_instance(locations)
    return broker


def _start_tray(args: argparse.Namespace) -> int:
    import os

    if (
        sys.platform.startswith("linux")
        and not os.environ.get("QT_QPA_PLATFORM")
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    ):
        return _fail(f"no graphical display here; `{PROG} run --headless` runs everything but the window", 1)
    try:
        from .ui.application import run_tray
    except ImportError as exc:
        return _fail(f"the tray needs PySide6 ({exc}); `{PROG} run --headless` runs without it", EXIT_FAILURE)
    return run_tray(Locations.from_env())


def _run(args: argparse.Namespace) -> int:
    if not args.headless:
        return _start_tray(args)
    from .core import AlreadyRunning, port_from_env
    from .ingest.instance import run_headless

    try:
        run_headless(Locations.from_env(), port_from_env())
    except AlreadyRunning as exc:
        return _fail(exc.message, EXIT_FAILURE)
    except OSError as exc:
        return _fail(f"cannot listen on 127.0.0.1: {exc.strerror or exc}; set TELEMETRY_TRAY_PORT to a free port", 1)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    locations = Locations.from_env()
    overview = _broker().overview()
    endpoint = running_endpoint(locations)
    otlp = running_otlp_receiver(locations, endpoint) if endpoint else None
    obj = {
        "version": __version__,
        "running": endpoint is not None,
        "url": endpoint.url if endpoint else None,
        "pid": endpoint.pid if endpoint else None,
        "otlp_url": otlp.url if otlp else None,
        "otlp_problem": otlp.problem if otlp else None,
        "database": str(locations.database),
        "apps": overview.apps,
        "awaiting_consent": overview.awaiting_consent,
        "open": overview.open,
        "held": overview.held,
        "pending": overview.pending,
        "approved": overview.approved,
        "paused_all": overview.paused_all,
        "retention_days": overview.retention_days,
        "spool_dropped": overview.spool_dropped,
    }
    if args.json:
        return _print_json(obj)
    state = f"running at {endpoint.url} (pid {endpoint.pid})" if endpoint else "not running"
    _out(f"Telemetry Tray {__version__}: {state}")
    if otlp is not None and otlp.url:
        _out(f"OpenTelemetry apps send to: {otlp.url} (OTEL_EXPORTER_OTLP_ENDPOINT)")
    elif otlp is not None and otlp.problem:
        _out(f"OpenTelemetry receiver: not serving. {otlp.problem}")
    _out(f"Database: {locations.database}")
    _out(f"Apps: {overview.apps} ({overview.awaiting_consent} awaiting your consent)")
    _out(
        f"Batches: {overview.pending} waiting for you, {overview.held} held, "
        f"{overview.open} collecting, {overview.approved} approved and not yet sent"
    )
    _out(f"Pause all: {'on' if overview.paused_all else 'off'}; local retention: {overview.retention_days} days")
    if overview.spool_dropped:
        _out(f"Reports lost because an app's spool was full while no instance ran: {overview.spool_dropped}")
    return EXIT_OK


def _apps(args: argparse.Namespace) -> int:
    apps = _broker().apps()
    if args.json:
        return _print_json([app.to_obj() for app in apps])
    if not apps:
        _out(f"No apps registered. Register one with: {PROG} register MANIFEST")
        return EXIT_OK
    _table(
        ["APP", "NAME", "VENDOR", "STATUS", "POLICY", "SENDS TO"],
        [[a.app_id, a.name, a.vendor, a.status, a.policy, a.manifest.endpoint_host] for a in apps],
    )
    return EXIT_OK


def _register(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.file)
    result = _broker().register(manifest, new_token=True)
    wake_instance(Locations.from_env())
    if args.json:
        return _print_json({"app_id": result.app_id, "token": result.token, "status": result.status})
    if result.created:
        _out(f"Registered {manifest.name} ({result.app_id}); it waits for your consent:")
        _out(f"  {PROG} consent {result.app_id} allow")
    elif result.change is None:
        _out(f"{manifest.name} ({result.app_id}) is already registered with this manifest; nothing changed in it.")
        _out("A new token was issued; the old one no longer works.")
    else:
        change = result.change
        _out(
            f"Updated {manifest.name} ({result.app_id}) to manifest version {manifest.version}; status {result.status}."
        )
        if change.excluded_until_reviewed:
            _out(f"New or changed fields, excluded until you include them: {', '.join(change.excluded_until_reviewed)}")
        if change.reconsent and result.status == AppStatus.AWAITING_CONSENT:
            _out(f"It needs your consent again: {'; '.join(change.reconsent)}.")
        _out("A new token was issued; the old one no longer works.")
    _out("The app's token (shown only this once; give it to the app):")
    _out(result.token)
    return EXIT_OK


def _consent(args: argparse.Namespace) -> int:
    allow = args.choice == ConsentAnswer.ALLOW
    app = _broker().set_consent(args.app, allow)
    wake_instance(Locations.from_env())
    if allow:
        _out(f"{app.name} may now send telemetry to {app.manifest.endpoint_host}, batch by batch as you decide.")
    else:
        _out(f"{app.name} is blocked: its waiting reports were deleted and nothing more is accepted from it.")
    return EXIT_OK


def _policy(args: argparse.Namespace) -> int:
    app = _broker().set_policy(args.app, args.policy)
    wake_instance(Locations.from_env())
    _out(f"{app.name}: policy {app.policy} ({app.policy.describe()}).")
    return EXIT_OK


def _submit(args: argparse.Namespace) -> int:
    body = _read_input(args.file)
    result = _broker().ingest(args.app, decode_reports(body))
    wake_instance(Locations.from_env())
    if args.json:
        _print_json(result.to_obj())
    else:
        _out(f"Accepted {result.accepted} report(s), rejected {len(result.rejected)}.")
        for index, error in result.rejected:
            _out(f"  report {index}: {error}")
        if result.dropped_fields:
            _out(f"Dropped undeclared fields: {', '.join(result.dropped_fields)}")
    if not result.accepted:
        return _fail("no report was accepted; fix the reports listed above and submit again", EXIT_USAGE)
    return EXIT_OK


def _read_input(name: str) -> bytes:
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
        else:
            with open(name, "rb") as handle:
                data = handle.read(MAX_BODY_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    return data


def _close_batches(args: argparse.Namespace) -> int:
    closed = _broker().close_batches(force=True)
    wake_instance(Locations.from_env())
    if args.json:
        return _print_json([{"batch_id": c.batch_id, "app_id": c.app_id, "status": c.status} for c in closed])
    if not closed:
        _out("No open batches.")
    for c in closed:
        _out(f"{c.batch_id}  {c.app_id}  -> {c.status}")
    return EXIT_OK


def _pending(args: argparse.Namespace) -> int:
    batches = _broker().pending()
    if args.json:
        return _print_json([b.to_obj() for b in batches])
    if not batches:
        _out("Nothing is waiting for you.")
        return EXIT_OK
    _table(
        ["BATCH", "APP", "STATUS", "REPORTS", "WINDOW"],
        [[b.batch_id, b.app_id, b.status, str(b.reports), f"{b.window_start} .. {b.window_end}"] for b in batches],
    )
    return EXIT_OK


def _edited_scope(broker: Broker, args: argparse.Namespace) -> Scope | None:
    if not (args.exclude or args.include or args.coarsen or args.noise or args.aggregate or args.records):
        return None
    coarsen = {}
    for item in args.coarsen:
        field, sep, level = item.partition("=")
        if not sep or not field or not level:
            raise UsageError(f"--coarsen takes FIELD=LEVEL (like ts=day), not '{item}'")
        coarsen[field] = level
    noise = dict(map(_noise_option, args.noise))
    mode = MODES[1] if args.aggregate else MODES[0] if args.records else None
    return broker.edited_scope(
        args.batch, include=args.include, exclude=args.exclude, coarsen=coarsen, mode=mode, noise=noise
    )


def _noise_option(item: str) -> tuple[str, float | None]:
    """``--noise FIELD=EPSILON`` (or ``FIELD=off``, no noise); the scope checks the rest."""
    field, sep, epsilon = item.partition("=")
    if sep and field and epsilon == "off":
        return field, None
    try:
        if sep and field:
            return field, float(epsilon)
    except ValueError:
        pass
    raise UsageError(f"--noise takes FIELD=EPSILON (like gpu_accelerated=1) or FIELD=off, not '{item}'")


def _show(args: argparse.Namespace) -> int:
    broker = _broker()
    view = broker.view(args.batch, _edited_scope(broker, args))
    if args.json:
        return _print_json(view.to_obj())
    _describe(view)
    return EXIT_OK


def _approve(args: argparse.Namespace) -> int:
    broker = _broker()
    view = broker.approve(args.batch, _edited_scope(broker, args), expected_sha256=args.sha256, remember=args.remember)
    wake_instance(Locations.from_env())
    if args.json:
        return _print_json(view.to_obj())
    assert view.payload is not None
    _out(f"Approved {view.batch.batch_id}: {view.payload.size} bytes, sha256 {view.payload.sha256}.")
    _out(f"They will be sent to {view.destination} exactly as shown by: {PROG} show {view.batch.batch_id}")
    if args.remember:
        _out(f"{view.app.name}'s next batches will be approved with this scope (policy approve).")
    return EXIT_OK


def _discard(args: argparse.Namespace) -> int:
    view = _broker().discard(args.batch)
    wake_instance(Locations.from_env())
    if args.json:
        return _print_json(view.to_obj())
    _out(f"Discarded {view.batch.batch_id}: its {view.reports} report(s) were deleted and nothing was sent.")
    return EXIT_OK


def _withdraw(args: argparse.Namespace) -> int:
    view = _broker().withdraw(args.batch)
    wake_instance(Locations.from_env())  # the running tray shows it gone at once
    if args.json:
        return _print_json(view.to_obj())
    _out(f"Withdrew {view.batch.batch_id}: its approval was taken back, its bytes deleted, and nothing was sent.")
    return EXIT_OK


def _deliver(args: argparse.Namespace) -> int:
    from .core import Forwarder, SecretStore, timeout_from_env

    if not 0 <= args.wait <= 86400:
        raise UsageError("--wait takes 0 to 86400 seconds")
    broker = _broker()
    if broker.paused_all:
        return _fail("Pause all is on, so nothing is sent; turn it off first", EXIT_FAILURE)
    forwarder = Forwarder(broker.deliveries, SecretStore(), timeout=timeout_from_env())
    try:
        outcomes, remaining = forwarder.deliver_all(args.wait)
    finally:
        forwarder.close()
    if args.json:
        _print_json(
            {
                "outcomes": [o.to_obj() for o in outcomes],
                "undelivered": [{"batch_id": d.batch_id, "next_attempt_at": d.next_attempt_at,
                                 "waiting_for": d.waiting_for, "last_error": d.last_error} for d in remaining],
            }
        )  # fmt: skip
    else:
        for o in outcomes:
            extra = f" (HTTP {o.status})" if o.status else ""
            extra += f": {o.error}" if o.error else ""  # for a delivery: what a collector refused
            extra += f"; next try {o.next_attempt_at}" if o.next_attempt_at else ""
            _out(f"{o.batch_id}  {o.app_id}  {o.text}{extra}")
        if not outcomes and not remaining:
            _out("Nothing to send.")
        for d in remaining:
            why = "waiting for credentials" if d.waiting_for else f"next try {d.next_attempt_at}"
            _out(f"{d.batch_id}  not delivered yet: {why}")
    failed = [o for o in outcomes if o.outcome == Outcome.FAILED]
    if remaining or failed:
        return _fail(f"{len(remaining)} batch(es) not delivered yet, {len(failed)} failed for good", EXIT_FAILURE)
    return EXIT_OK


def _credentials(args: argparse.Namespace) -> int:
    from .core import Credentials, SecretStore

    store = SecretStore()
    credentials = Credentials(_broker(), store)
    if args.action == "clear":
        app = credentials.broker.app(args.app)
        removed = credentials.clear(app.app_id)
        _out(
            f"{app.name}: credentials removed from {store.status()}." if removed else f"{app.name} had no credentials."
        )
        return EXIT_OK
    app = credentials.app_needing_secret(args.app)
    if sys.stdin.isatty():
        secret = getpass.getpass(f"Secret for {app.name} ({app.manifest.vendor}): ")
    else:
        secret = sys.stdin.read(64 * 1024)
    held = credentials.set(app.app_id, secret)
    wake_instance(Locations.from_env())
    _out(f"{app.name}: credentials stored in the OS keyring.")
    if held:
        _out(f"{held} batch(es) that waited for them will be sent now.")
    return EXIT_OK


def _connect(args: argparse.Namespace) -> int:
    from .core import Credentials, SecretStore

    locations = Locations.from_env()
    broker = _broker()
    app = broker.app(args.app)
    url, problem = _otlp_address(locations)
    if url is None:
        return _fail(problem, EXIT_FAILURE)
    connection = Credentials(broker, SecretStore()).connect(app.app_id, otlp_url=url)
    # stdout holds the lines alone (to source, or to pipe into a file); the rest is said on stderr.
    if args.json:
        _print_json(connection.to_obj())
    else:
        for line in connection.lines():
            _out(line)
    if connection.replaced:
        before = "by register or an earlier connect"
        _note(f"a new token was issued for {app.name}; the token given out before ({before}) no longer works.")
    if not connection.kept:
        _note(f"warning: the token is shown only this once and stored nowhere else. {connection.no_keyring}")
    if problem:
        _note(f"warning: {problem}")
    allow = f"{PROG} consent {app.app_id} allow"
    if app.status == AppStatus.AWAITING_CONSENT:
        _note(f"{app.name} waits for your consent; what it sends is held until you allow it: {allow}")
    elif app.status == AppStatus.BLOCKED:
        _note(f"{app.name} is blocked, so what it sends is refused until you allow it: {allow}")
    return EXIT_OK


def _otlp_address(locations: Locations) -> tuple[str | None, str]:
    """Where OpenTelemetry apps send (the running instance's receiver, else the port it
    will take) and what stands in the way; no address when the instance picks its port."""
    from .ingest.instance import otlp_port_from_env

    endpoint = running_endpoint(locations)
    receiver = running_otlp_receiver(locations, endpoint) if endpoint else None
    if receiver is not None and receiver.url:
        return receiver.url, ""
    port = otlp_port_from_env()
    if receiver is not None and receiver.problem:
        problem = receiver.problem
    elif endpoint is None:
        problem = f"Telemetry Tray is not running for this home; start it ({PROG}, or {PROG} run --headless) first."
    else:
        problem = ""
    if port == 0:
        return None, (
            "TELEMETRY_TRAY_OTLP_PORT=0 leaves the OpenTelemetry port to the running instance, and no receiver "
            f"runs for this home: start it first ({PROG} run --headless), or set a port"
        )
    return f"http://127.0.0.1:{port}", problem


def _remove(args: argparse.Namespace) -> int:
    from .core import Credentials, SecretStore

    removed = Credentials(_broker(), SecretStore()).remove_app(args.app)
    wake_instance(Locations.from_env())
    _out(f"Removed {removed.name} ({removed.app_id}): its manifest, settings and saved scope are gone.")
    if removed.discarded:
        _out(f"{removed.discarded} batch(es) not sent yet were discarded; nothing of them was sent.")
    if removed.secret_cleared:
        _out("Its vendor credentials were removed from the OS keyring.")
    if removed.token_cleared:
        _out("The token connect kept for it was removed from the OS keyring.")
    _out(f"The history keeps its receipts. To send again it must register again: {PROG} register MANIFEST")
    if removed.problem:
        return _fail(removed.problem, EXIT_FAILURE)
    return EXIT_OK


def _quit(args: argparse.Namespace) -> int:
    if not 0 <= args.wait <= 3600:
        raise UsageError("--wait takes 0 to 3600 seconds")
    pid = stop_instance(Locations.from_env(), timeout=args.wait)
    if pid is None:
        _out("Telemetry Tray is not running for this home; nothing to stop.")
    else:
        _out(f"Stopped Telemetry Tray (pid {pid}).")
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    broker = _broker()
    if args.export is not None:
        if args.app or args.verify or args.json:
            raise UsageError("--export writes the whole chain; it takes no --app, --verify or --json")
        try:
            exported = broker.export_history(args.export)
        except OSError as exc:
            raise UsageError(f"cannot write {args.export}: {exc.strerror or exc}") from None
        if not exported.verified:
            return _fail(
                f"exported {exported.count} receipt(s) to {args.export}, but the chain does not verify: "
                f"{exported.problem}",
                EXIT_FAILURE,
            )
        _out(f"Exported {exported.count} receipt(s) to {args.export}; the chain is intact, head {exported.head}.")
        return EXIT_OK
    if args.verify:
        check = broker.verify_history()
        if not check.ok:
            return _fail(f"the history was altered: {check.problem}", EXIT_FAILURE)
        _out(f"History intact: {check.count} receipt(s), head {check.head}.")
        return EXIT_OK
    receipts = broker.history(args.app)
    if args.json:
        return _print_json([r.to_obj() for r in receipts])
    if not receipts:
        _out("No decisions yet.")
        return EXIT_OK
    _table(
        ["AT", "ACTION", "APP", "BATCH", "DETAIL"],
        [[r.at, r.action, r.app_id, r.batch_id[:12], _detail_text(r.detail)] for r in receipts],
    )
    return EXIT_OK


def _detail_text(detail: Any) -> str:
    parts = []
    for key in BRIEF_DETAIL_KEYS:
        if key in detail:
            parts.append(f"{key}={detail[key]}")
    return " ".join(parts)


# -- output ------------------------------------------------------------------------------


def _describe(view: BatchView) -> None:
    app, manifest = view.app, view.manifest
    _out(f"Batch {view.batch.batch_id} ({view.batch.status})")
    _out(f"From:      {app.name} ({app.app_id}) by {manifest.vendor}")
    _out(f"Sends to:  {manifest.endpoint_host}  ({view.destination})")
    _out(f"Purpose:   {manifest.purpose}")
    _out(f"Window:    {view.batch.window_start} .. {view.batch.window_end}")
    _out(f"Reports:   {view.reports}")
    _out(f"Vendor keeps it {manifest.retention_days} days; privacy policy: {manifest.privacy_policy}")
    if view.change is not None:
        _out(
            f"Changed since your last approval (manifest v{view.change.old_version} -> v{view.change.new_version}): "
            f"new {', '.join(view.change.added) or 'none'}; changed {', '.join(view.change.changed) or 'none'}"
        )
    if view.dropped:
        dropped = ", ".join(f"{name} ({count})" for name, count in view.dropped.items())
        _out(f"Dropped at ingest (not declared by the app): {dropped}")
    if view.scope is not None:
        _out("Fields:")
        for line in scope_fields_in_words(view.scope, manifest):
            _out(f"  {line}")
        _out(f"Mode: {view.scope.mode}")
    if view.payload is None:
        _out("Payload: none (nothing was or will be sent)")
        return
    if view.summary is not None:
        _summary(view.summary)
    _out(f"Payload: {view.payload.size} bytes, sha256 {view.payload.sha256}")
    _out(json.dumps(view.payload.obj(), indent=2, sort_keys=True, ensure_ascii=False))


def _summary(summary: Disclosure) -> None:
    """What the batch says, short: a line per included field, then the findings' sentences."""
    compared = summary.compared_batches
    against = f", compared with {compared} earlier delivered batch(es)" if compared else ""
    _out(f"What this batch says ({summary.reports} reports{against}):")
    width = max((len(f.name) for f in summary.fields), default=0)
    for f in summary.fields:
        tops = [f"{value_label(f.type, value, mode=summary.mode)} ({n})" for value, n in f.top]
        if f.other:
            tops.append(f"others ({f.other})")
        values = "value" if f.distinct == 1 else "values"
        _out(f"  {f.name.ljust(width)}  {f.distinct} {values} in {f.reports} reports: {', '.join(tops) or 'none'}")
    for finding in summary.findings:
        _out(f"  * {finding.text}")


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        _out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())


def _print_json(obj: object) -> int:
    _out(json.dumps(obj, indent=2, ensure_ascii=False))
    return EXIT_OK


def _out(text: str, stream: TextIO | None = None) -> None:
    """Print for a person: every character that would not print as itself (a bidi
    override in a report value, an escape sequence in a vendor's answer) is shown as its
    escape, line by line, as the review window shows it. JSON stays JSON that decodes to
    the same values (its own escapes already cover the ASCII controls)."""
    print("\n".join(map(plain_text, text.split("\n"))), file=stream or sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
