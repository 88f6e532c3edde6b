"""The forwarder: send approved batches to their vendors, exactly the approved bytes.

One pooled httpx client (HTTP/1.1, and HTTP/2 where the vendor offers it), TLS always
verified against the operating system's trust store (truststore: the same roots the
browser trusts, including ones an organisation installed; see docs/forwarding.md),
no redirects (the person consented to one destination), and timeouts on every phase.
Which batches to send, and what an answer means, is the broker's business; this
module only claims, sends and reports back.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import truststore

from .. import __version__
from .broker import Broker, Claim, DeliveryOutcome
from .clock import from_iso, utc_now
from .errors import CredentialsError, InputError, TrayError
from .secrets import SecretStore

log = logging.getLogger(__name__)

TIMEOUT_ENV = "TELEMETRY_TRAY_SEND_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
SENDERS = 4
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-correlation-id")


def send_timeout(seconds: float = DEFAULT_TIMEOUT_S) -> httpx.Timeout:
    """Timeouts for one send: ``seconds`` to read the answer, at most 10 s to connect."""
    return httpx.Timeout(connect=min(10.0, seconds), read=seconds, write=seconds, pool=min(10.0, seconds))


def timeout_from_env(environ: Mapping[str, str] | None = None) -> httpx.Timeout:
    """``TELEMETRY_TRAY_SEND_TIMEOUT`` (seconds, for slow networks) or the default."""
    text = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not text:
        return send_timeout()
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 600:
        raise InputError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds from 0.1 to 600.")
    return send_timeout(seconds)


def system_tls() -> ssl.SSLContext:
    """Verification against the OS trust store; hostname checks on; nothing to turn off."""
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class Forwarder:
    def __init__(
        self,
        broker: Broker,
        secret_store: SecretStore | None = None,
        *,
        verify: ssl.SSLContext | None = None,
        timeout: httpx.Timeout | None = None,
        owner: str | None = None,
    ) -> None:
        self.broker = broker
        self.secrets = secret_store or SecretStore()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        timeout = timeout or send_timeout()
        # A claim must outlive the longest send it covers, or a slow send would be
        # taken over (and sent again) while still on the wire.
        phases = [timeout.connect, timeout.write, timeout.read, timeout.pool]
        self.lease_s = 2 * sum(p or DEFAULT_TIMEOUT_S for p in phases) + 10
        self._client = httpx.Client(
            http2=True,
            verify=verify if verify is not None else system_tls(),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # no proxies or netrc from the environment: data goes where it was approved
            headers={"User-Agent": f"telemetry-tray/{__version__}"},
            limits=httpx.Limits(max_connections=SENDERS * 2, max_keepalive_connections=SENDERS),
        )
        self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="sender")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def deliver_due(self) -> list[DeliveryOutcome]:
        """Claim what is due now and send it (a few at a time); return what happened."""
        outcomes: list[DeliveryOutcome] = []
        while claims := self.broker.claim_deliveries(self.owner, lease_s=self.lease_s):
            outcomes.extend(self._pool.map(self.send, claims))
        return outcomes

    def send(self, claim: Claim) -> DeliveryOutcome:
        headers = {"Content-Type": "application/json", "Idempotency-Key": claim.batch_id}
        if claim.auth != "none":
            try:
                headers.update(self.secrets.headers_for(claim.app_id, claim.auth))
            except CredentialsError as exc:
                return self.broker.wait_for_credentials(claim, exc.message)
        started = time.perf_counter()
        try:
            response = self._client.post(claim.endpoint, content=claim.payload, headers=headers)
        except httpx.TransportError as exc:
            # Refused, reset, timed out, or TLS that did not verify: retried, never weakened.
            return self._finish(claim, None, _describe(exc), None, None, started)
        request_id = next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)
        error = None if response.is_success else f"HTTP {response.status_code}: {_excerpt(response)}"
        return self._finish(
            claim, response.status_code, error, response.headers.get("retry-after"), request_id, started
        )

    def _finish(
        self,
        claim: Claim,
        status: int | None,
        error: str | None,
        retry_after: str | None,
        request_id: str | None,
        started: float,
    ) -> DeliveryOutcome:
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            return self.broker.finish_delivery(
                claim, status=status, error=error, retry_after=retry_after, request_id=request_id,
                elapsed_ms=elapsed_ms,
            )  # fmt: skip
        except TrayError as exc:
            # The lease runs out and another round resends with the same Idempotency-Key.
            log.warning("could not record the delivery of %s: %s", claim.batch_id, exc.message)
            return DeliveryOutcome(claim.batch_id, claim.app_id, "unrecorded", status, exc.message)


def _describe(exc: httpx.TransportError) -> str:
    kind = type(exc).__name__
    text = str(exc) or kind
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc.__context__, ssl.SSLError):
        return f"TLS verification failed: {text}"[:300]
    return f"{kind}: {text}"[:300]


def _excerpt(response: httpx.Response) -> str:
    return " ".join(response.text[:200].split())


class DeliveryLoop:
    """Sends as soon as something is approved, then sleeps until the next retry is due.

    Woken by the broker's approval signal (no polling); ``wake()`` is also what the
    endpoint calls when another process (the CLI) approved something.
    """

    def __init__(self, forwarder: Forwarder, clock: Callable[[], datetime] = utc_now) -> None:
        self.forwarder = forwarder
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        forwarder.broker.on_approved.append(self.wake)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.wake in self.forwarder.broker.on_approved:
            self.forwarder.broker.on_approved.remove(self.wake)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                for outcome in self.forwarder.deliver_due():
                    log.info("batch %s of %s: %s", outcome.batch_id, outcome.app_id, outcome.outcome)
                due = self.forwarder.broker.next_delivery_due()
            except TrayError as exc:
                log.warning("delivery round failed: %s", exc.message)
                due = None
            except Exception:
                log.exception("delivery round failed")
                due = None
            wait = 3600.0
            if due is not None:
                wait = min(wait, max(0.0, (from_iso(due) - self._clock()).total_seconds()) + 0.05)
            self._wake.wait(wait)
