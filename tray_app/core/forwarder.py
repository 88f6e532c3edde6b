"""The forwarder: send approved batches to their vendors, exactly the approved bytes.

One pooled httpx client (HTTP/1.1, and HTTP/2 where the vendor offers it), TLS always
verified against the operating system's trust store (truststore: the same roots the
browser trusts, including ones an organisation installed; see docs/forwarding.md),
no redirects (the person consented to one destination), and timeouts on every phase.
Which batches to send, and what an answer means, is the deliveries ledger's business
(:mod:`tray_app.core.deliveries`, in the broker's transactions); this module only
claims, sends and reports back to it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import __version__
from .dap_sealer import PROBLEM_LIMIT, ConfigProblem, HpkeConfigs, read_problem
from .deliveries import Deliveries
from .errors import CredentialsError, TrayError
from .platform.paths import number_from_env
from .platform.secrets import SecretStore, auth_headers, needs_secret
from .rules.clock import from_iso
from .rules.dap_batch import FramedReport, frame_reports, seal_batch, unframe_reports
from .rules.manifest import WireFormat
from .rules.otlp_answer import PartialSuccess, read_partial_success
from .rules.payload import sha256_hex
from .rules.prio import DAP_09_VDAF_08, decode_task_id, encode_task_id, upload_url
from .rules.prio.dap_report import REPORT_ID_SIZE
from .rules.retry import Outcome
from .rules.vendor_body import OTLP_METRICS_PATH
from .storage.store import DeliveryRecord
from .views import Claim, DeliveryOutcome

if TYPE_CHECKING:
    # httpx, h2, ssl and truststore are imported when the first batch is sent: a tray
    # that idles with nothing approved does without them (several MiB).
    import ssl

    import httpx

log = logging.getLogger(__name__)

TIMEOUT_ENV = "TELEMETRY_TRAY_SEND_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
SENDERS = 4
ANSWER_LIMIT = 64 * 1024  # bytes of an OTLP collector's answer read for its partial_success
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-correlation-id")


@dataclass(frozen=True)
class SendTimeout:
    """Seconds allowed for each phase of one send."""

    connect: float
    read: float
    write: float
    pool: float


def send_timeout(seconds: float = DEFAULT_TIMEOUT_S) -> SendTimeout:
    """Timeouts for one send: ``seconds`` to read the answer, at most 10 s to connect."""
    return SendTimeout(connect=min(10.0, seconds), read=seconds, write=seconds, pool=min(10.0, seconds))


def timeout_from_env(environ: Mapping[str, str] | None = None) -> SendTimeout:
    """``TELEMETRY_TRAY_SEND_TIMEOUT`` (seconds, for slow networks) or the default."""
    seconds = number_from_env(
        TIMEOUT_ENV, float, DEFAULT_TIMEOUT_S, 0.1, 600.0, what="a number of seconds from 0.1 to 600.", environ=environ
    )
    return send_timeout(seconds)


def system_tls() -> ssl.SSLContext:
    """Verification against the OS trust store; hostname checks on; nothing to turn off."""
    import ssl

    import truststore

    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class Forwarder:
    """Sends what the deliveries ledger has due (``broker.deliveries``); it depends on the
    ledger alone."""

    def __init__(
        self,
        deliveries: Deliveries,
        secret_store: SecretStore | None = None,
        *,
        verify: ssl.SSLContext | None = None,
        timeout: SendTimeout | None = None,
        owner: str | None = None,
    ) -> None:
        self.deliveries = deliveries
        self.secrets = secret_store or SecretStore()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.timeout = timeout or send_timeout()
        # A claim must outlive the longest send it covers, or a slow send would be
        # taken over (and sent again) while still on the wire.
        phases = [self.timeout.connect, self.timeout.write, self.timeout.read, self.timeout.pool]
        self.lease_s = 2 * sum(p or DEFAULT_TIMEOUT_S for p in phases) + 10
        self._verify = verify
        self._client: httpx.Client | None = None  # made for the first send
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="sender")
        self._closing = threading.Event()
        self.hpke_configs = HpkeConfigs()  # the DAP aggregators' HPKE configurations, cached

    def close(self) -> None:
        """Stop without waiting on a vendor: sends in progress are cut off; their claims
        run out and the batches go again later with the same Idempotency-Key."""
        self._closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._client_lock:
            if self._client is not None:
                self._client.close()

    def _http(self) -> httpx.Client | None:
        """The pooled client (made on first use); None once closing."""
        with self._client_lock:
            if self._closing.is_set():
                return None
            if self._client is None:
                import httpx

                t = self.timeout
                self._client = httpx.Client(
                    http2=True,
                    verify=self._verify if self._verify is not None else system_tls(),
                    timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
                    follow_redirects=False,
                    trust_env=False,  # no proxies or netrc from the environment: data goes where it was approved
                    headers={"User-Agent": f"telemetry-tray/{__version__}"},
                    limits=httpx.Limits(max_connections=SENDERS * 2, max_keepalive_connections=SENDERS),
                )
            return self._client

    def deliver_due(self) -> list[DeliveryOutcome]:
        """Claim what is due now, as many as can be sent at once, and send them."""
        outcomes: list[DeliveryOutcome] = []
        while not self._closing.is_set():
            claims = self.deliveries.claim(self.owner, limit=SENDERS, lease_s=self.lease_s)
            if not claims:
                break
            with self._renewing(claims):
                outcomes.extend(self._pool.map(self.send, claims))
        return outcomes

    def deliver_all(self, wait_s: float) -> tuple[list[DeliveryOutcome], list[DeliveryRecord]]:
        """Send what is due, and keep at it for up to ``wait_s`` seconds while batches are
        scheduled for a retry (sleeping until the next is due). Returns the outcomes of
        every send and the deliveries still open at the end (retrying, or waiting for
        credentials, which no waiting here can bring)."""
        deadline = time.monotonic() + wait_s
        outcomes: list[DeliveryOutcome] = []
        while True:
            outcomes.extend(self.deliver_due())
            waiting = [d for d in self.deliveries.open_deliveries() if d.waiting_for is None]
            left = deadline - time.monotonic()
            if not waiting or left <= 0 or self._closing.is_set():
                break
            due = self.deliveries.next_delivery_due()
            pause = (from_iso(due) - self.deliveries.now()).total_seconds() if due else left
            self._closing.wait(min(left, max(0.05, pause)))
        return outcomes, self.deliveries.open_deliveries()

    @contextmanager
    def _renewing(self, claims: list[Claim]) -> Iterator[None]:
        """Keep the claims alive while their sends are in progress."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_s / 3):
                try:
                    self.deliveries.renew(claims, self.lease_s)
                except TrayError as exc:
                    log.warning("could not renew delivery claims: %s", exc.message)

        renewer = threading.Thread(target=renew, name="lease-renewer", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()

    def send(self, claim: Claim) -> DeliveryOutcome:
        headers = {"Content-Type": "application/json", "Idempotency-Key": claim.batch_id}
        secret: str | None = None
        if needs_secret(claim.auth):
            if not self.secrets.available():
                # No OS keyring at all: held (no attempt spent) until credentials can be set.
                return self.deliveries.wait_for_credentials(claim, self.secrets.status())
            try:
                secret = self.secrets.get(claim.app_id)
            except CredentialsError as exc:
                # The keyring is there but locked or failing: try again later, like a network error.
                return self._finish(claim, None, f"keyring: {exc.message}", None, None, time.perf_counter())
            if secret is None:
                return self.deliveries.wait_for_credentials(claim, "no credentials stored for this app")
            try:
                headers.update(auth_headers(claim.auth, secret, app_id=claim.app_id))
            except CredentialsError as exc:
                return self.deliveries.wait_for_credentials(claim, exc.message)
        if not self.deliveries.still_claimed(claim):
            # Discarded, blocked, paused or taken over since it was claimed: nothing goes out.
            return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.NO_LONGER_DUE)
        import httpx

        started = time.perf_counter()
        try:
            client = self._http()
        except Exception as exc:  # no HTTP stack (a broken install, no TLS roots): say so, try later
            log.warning("cannot make the HTTP client: %s", exc)
            return self._finish(
                claim, None, f"cannot send at all: {type(exc).__name__}: {exc}"[:300], None, None, started
            )
        if client is None:  # shutting down: the claim runs out and a later round sends it
            return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.SHUTTING_DOWN)
        if claim.format == WireFormat.DAP:
            return self._send_dap(claim, client, started)
        status: int | None = None
        response_headers: httpx.Headers | None = None
        answer = b""  # an OTLP collector's 2xx body: its partial_success
        try:
            with client.stream("POST", claim.endpoint, content=claim.payload, headers=headers) as response:
                status, response_headers = response.status_code, response.headers
                excerpt = "" if response.is_success else _read_excerpt(response)
                if response.is_success and claim.format == WireFormat.OTLP:
                    answer = _read_answer(response, ANSWER_LIMIT)
        except httpx.HTTPError as exc:
            if status is None:
                # Refused, reset, timed out, or TLS that did not verify: retried, never weakened.
                return self._finish(claim, None, _for_receipt(_describe(exc), secret), None, None, started)
            excerpt = f"(the answer's body could not be read: {type(exc).__name__})"
        assert response_headers is not None
        request_id = next((response_headers[h] for h in REQUEST_ID_HEADERS if h in response_headers), None)
        error = None if 200 <= status < 300 else _for_receipt(f"HTTP {status}: {excerpt}", secret)
        retry_after = response_headers.get("retry-after")
        partial = None
        if answer:
            what = "data points" if claim.endpoint.split("?", 1)[0].endswith(OTLP_METRICS_PATH) else "log records"
            try:
                found = read_partial_success(answer, response_headers.get("content-type", ""), what)
            except Exception as exc:  # the 2xx is what counts: an odd answer never undoes a delivery
                log.warning("could not read the collector's answer for %s: %s", claim.batch_id, exc)
                found = None
            if found is not None:
                partial = replace(found, message=_for_receipt(found.message, secret))
        return self._finish(claim, status, error, retry_after, _redact(request_id, secret), started, partial)

    # -- DAP: seal on the first claim, then one PUT per report ------------------------------

    def _seal(
        self,
        claim: Claim,
        client: httpx.Client,
        approved: dict[str, Any],
        start: int,
        old: list[FramedReport],
        keep_id: bytes | None = None,
    ) -> list[FramedReport]:
        """The reports of an approved DAP payload: those before ``start`` as they are in
        ``old``, the rest made now from the approved measurements (ConfigProblem if the
        aggregators' configurations cannot be had). ``keep_id``: the report id the first one
        made keeps (a report the leader may hold already stays one report)."""
        configs = {}
        for task in approved["tasks"]:
            configs[task["task_id"]] = self.hpke_configs.pair(client, approved, decode_task_id(task["task_id"]))
        kept = [keep_id]

        def randomness(size: int) -> bytes:
            data = secrets.token_bytes(size)
            first, kept[0] = kept[0], None
            return data if first is None else first + data[len(first) :]  # the id leads the randomness

        return old[:start] + seal_batch(approved, configs=configs, random_bytes=randomness, start=start)

    def _send_dap(self, claim: Claim, client: httpx.Client, started: float) -> DeliveryOutcome:
        """A DAP batch: its sealed reports (made and stored now if this is its first claim,
        before anything is uploaded), then each one not yet taken PUT to the leader. The
        approved payload is the measurements; the reports are made from exactly it."""
        import httpx

        approved: dict[str, Any] = json.loads(claim.payload)
        sealed = self.deliveries.sealed_reports(claim)
        # A report a pass before this one sent without hearing the answer (a reset, a crash)
        # may be on the leader already: if the leader says it has that report id, it does.
        in_doubt = sealed is not None
        if sealed is None:
            try:
                made = self._seal(claim, client, approved, 0, [])
            except ConfigProblem as config:
                return self._finish(
                    claim, config.status, config.message, config.retry_after, None, started, refused=config.refused
                )
            body = frame_reports(made)
            sealed = self.deliveries.store_sealed(claim, body, sha256_hex(body), len(made))
            if sealed is None:
                return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.NO_LONGER_DUE)
        reports = unframe_reports(sealed.body)
        done, total, refreshed = sealed.uploaded, len(reports), False
        media = DAP_09_VDAF_08.report_media_type
        leader = approved["leader"]["url"]
        fields = {task["task_id"]: task["field"] for task in approved["tasks"]}

        def receipt() -> dict[str, object]:
            assert sealed is not None
            return {
                "reports": total,
                "reports_uploaded": done,
                "reports_sha256": sealed.sha256,
                "reports_bytes": len(sealed.body),
            }

        status: int | None = None
        while done < total:
            if self._closing.is_set():
                return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.SHUTTING_DOWN)
            if done and not self.deliveries.still_claimed(claim):
                # Paused, blocked, withdrawn or taken over between two reports: the rest waits
                # (what went is recorded: dap_uploaded after each one).
                return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.NO_LONGER_DUE)
            report = reports[done]
            which = f"report {done + 1} of {total} ({fields.get(encode_task_id(report.task_id), 'a task')})"
            try:
                url = upload_url(leader, report.task_id)
                with client.stream("PUT", url, content=report.body, headers={"Content-Type": media}) as response:
                    ok = response.is_success
                    answer = b"" if ok else _read_start(response, PROBLEM_LIMIT)  # bounded: any server may answer
            except httpx.HTTPError as exc:
                error = _for_receipt(f"{which}: {_describe(exc)}", None)
                return self._finish(claim, None, error, None, None, started, detail=receipt())
            status = response.status_code
            if ok:
                done += 1
                in_doubt = False
                if not self.deliveries.dap_uploaded(claim, done):
                    return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.TAKEN_OVER)
                continue
            problem = read_problem(answer)
            if status == 400 and problem.type == "reportRejected" and in_doubt:
                done += 1  # the leader has it: sent by a pass that did not hear the answer
                in_doubt = False
                if not self.deliveries.dap_uploaded(claim, done):
                    return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.TAKEN_OVER)
                continue
            if status == 400 and problem.type == "outdatedConfig" and not refreshed:
                # The leader rotated its key: the reports not taken yet are made again, from the
                # same approved measurements, sealed to its configuration now, and stored first.
                refreshed = True
                self.hpke_configs.forget(leader)
                self.hpke_configs.forget(approved["helper"]["url"])
                # A report sent before without an answer may be at the leader already: made
                # again, it keeps its report id, so the leader can tell it is the same report.
                keep = reports[done].body[:REPORT_ID_SIZE] if in_doubt else None
                try:
                    again = self._seal(claim, client, approved, done, reports, keep_id=keep)
                except ConfigProblem as config:
                    return self._finish(
                        claim, config.status, config.message, config.retry_after, None, started,
                        refused=config.refused, detail=receipt(),
                    )  # fmt: skip
                body = frame_reports(again)
                stored = self.deliveries.store_sealed(claim, body, sha256_hex(body), len(again), again=True)
                if stored is None:
                    return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.NO_LONGER_DUE)
                sealed, reports = stored, again
                continue
            said = problem.words or f"HTTP {status}"
            error = _for_receipt(f"the leader refused {which}: HTTP {status}: {said}", None)
            retry_after = response.headers.get("retry-after")
            return self._finish(claim, status, error, retry_after, None, started, detail=receipt())
        return self._finish(claim, status or 201, None, None, None, started, detail=receipt())

    def _finish(
        self,
        claim: Claim,
        status: int | None,
        error: str | None,
        retry_after: str | None,
        request_id: str | None,
        started: float,
        partial: PartialSuccess | None = None,
        *,
        refused: bool = False,
        detail: dict[str, object] | None = None,
    ) -> DeliveryOutcome:
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            return self.deliveries.finish(
                claim, status=status, error=error, retry_after=retry_after, request_id=request_id,
                elapsed_ms=elapsed_ms, partial=partial, refused=refused, detail=detail,
            )  # fmt: skip
        except TrayError as exc:
            # The lease runs out and another round resends with the same Idempotency-Key.
            log.warning("could not record the delivery of %s: %s", claim.batch_id, exc.message)
            return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.UNRECORDED, status, exc.message)


def _describe(exc: httpx.HTTPError) -> str:
    import ssl

    kind = type(exc).__name__
    text = str(exc) or kind
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc.__context__, ssl.SSLError):
        return f"TLS verification failed: {text}"
    return f"{kind}: {text}"


def _read_excerpt(response: httpx.Response, limit: int = 4096) -> str:
    """The start of an error answer, for the receipt; never more than ``limit`` bytes read."""
    return _read_start(response, limit).decode("utf-8", "replace")


def _read_start(response: httpx.Response, limit: int) -> bytes:
    """The first ``limit`` bytes of an answer as they came (raw: a small compressed answer
    cannot make us decompress gigabytes); never more read."""
    data = b""
    for chunk in response.iter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]


def _read_answer(response: httpx.Response, limit: int) -> bytes:
    """A collector's answer, gunzipped or inflated if it came so, at most ``limit`` bytes
    either way; an encoding we cannot read gives nothing (the 2xx is what counts)."""
    raw = _read_start(response, limit)
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "deflate"):
        return b""
    import zlib

    try:
        return zlib.decompressobj(wbits=47).decompress(raw, limit)  # 47: gzip or zlib, told by its header
    except zlib.error:
        return b""


def _for_receipt(text: str, secret: str | None) -> str:
    """An error as a receipt keeps it: the secret taken out of the whole text first (cut
    first, a long echoed secret would survive in part), then one line of 300 characters."""
    return " ".join((_redact(text, secret) or "").split())[:300]


def _redact(text: str | None, secret: str | None) -> str | None:
    """A vendor may echo the credential back: it must not reach a receipt or the screen."""
    if text is None or not secret:
        return text
    return text.replace(secret, "[secret]")


class DeliveryLoop:
    """Sends as soon as something is approved, then sleeps until the next retry is due.

    Woken by the broker's approval signal (no polling); ``wake()`` is also what the
    endpoint calls when another process (the CLI) approved something. The thread is a
    :class:`~tray_app.core.loop.BackgroundLoop`; after a round that failed it waits for
    the next wake, or an hour.
    """

    def __init__(
        self,
        forwarder: Forwarder,
        clock: Callable[[], datetime] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        from .loop import LONGEST_SLEEP_S, BackgroundLoop

        self.forwarder = forwarder
        # The ledger's clock by default: the one its next_delivery_due is in.
        self._clock = clock or forwarder.deliveries.now
        self.on_change = on_change
        self._loop = BackgroundLoop(
            "delivery", self._step, error_wait_s=LONGEST_SLEEP_S, logger=log, doing="delivery round"
        )
        forwarder.deliveries.on_approved.append(self.wake)

    @property
    def running(self) -> bool:
        """Whether its thread is alive (it goes on after a round that failed)."""
        return self._loop.running

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)
        if self.wake in self.forwarder.deliveries.on_approved:
            self.forwarder.deliveries.on_approved.remove(self.wake)

    def _step(self, woken: bool) -> float | None:
        """Send what is due; sleep until the next retry is due (or until woken)."""
        outcomes = self.forwarder.deliver_due()
        for outcome in outcomes:
            log.info("batch %s of %s: %s", outcome.batch_id, outcome.app_id, outcome.text)
        if outcomes and self.on_change is not None:
            self.on_change()
        due = self.forwarder.deliveries.next_delivery_due()
        if due is None:
            return None
        return max(0.0, (from_iso(due) - self._clock()).total_seconds()) + 0.05
