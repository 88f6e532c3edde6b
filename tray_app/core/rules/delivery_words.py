"""A delivery that has not got through, in words: why, when it is tried next, what can be done.

Pure: from what the ledger keeps of a delivery (its last HTTP status or the forwarder's
one-line error, whether it waits for credentials, its attempts and next attempt time),
the words a person reads instead of ``ConnectError: [Errno 111] Connection refused`` or
``2026-11-24T10:30:05.123456Z``, and the things they can do about it. The shells show
these words and offer the actions with their own buttons; the raw error stays in the
receipts (and in :attr:`DeliveryWords.detail`, for a tooltip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .clock import from_iso

__all__ = [
    "DeliveryAction",
    "DeliveryStage",
    "DeliveryWords",
    "credentials_problem",
    "delivery_words",
    "error_words",
    "status_words",
    "wait_words",
]


class DeliveryStage(StrEnum):
    """Where an approved, undelivered batch stands."""

    SENDING = "sending"  # due, or being sent now: nothing is wrong (yet)
    RETRYING = "retrying"  # tried and did not get through; tried again later
    WAITING_FOR_CREDENTIALS = "waiting_for_credentials"  # held, no attempt spent, until a secret can be read


class DeliveryAction(StrEnum):
    """What a person can do about a delivery (each shell names it its own way)."""

    SET_CREDENTIALS = "set_credentials"  # store the vendor's secret for the app
    RETRY_NOW = "retry_now"  # make it due now and wake the sender
    WITHDRAW = "withdraw"  # take the approval back: the batch is discarded, nothing is sent


@dataclass(frozen=True)
class DeliveryWords:
    """One undelivered batch in words.

    ``short`` fits a menu line ("cannot reach t.example.org"); ``reason`` is the sentence
    saying why; ``progress`` how far it got and when it is tried next ("tried 3 times; next
    try in 4 minutes"); ``detail`` the last error as the forwarder recorded it (the
    vendor's own words included: a shell shows it escaped, never obeys it); ``actions``
    what can be done now, in the order to offer them."""

    stage: DeliveryStage
    short: str
    reason: str
    progress: str
    detail: str
    actions: tuple[DeliveryAction, ...]

    @property
    def stuck(self) -> bool:
        """Whether it needs the person's attention (it is not simply on its way)."""
        return self.stage != DeliveryStage.SENDING

    @property
    def sentence(self) -> str:
        """``reason`` and ``progress`` as one text: "Nothing answers at …. Tried 3 times; …"."""
        reason = _capitalised(self.reason)
        return f"{reason}. {_capitalised(self.progress)}." if self.progress else f"{reason}."


# HTTP reason phrases for the answers a vendor gives (rules/ imports no http module).
_PHRASES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 410: "Gone", 413: "Content Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
    301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect", 308: "Permanent Redirect",
}  # fmt: skip

# The forwarder's network errors (``<httpx class>: <text>``), by what they mean. The first
# pattern that matches wins; each gives (short, reason) with {host}.
_NETWORK: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), short, reason)
    for pattern, short, reason in (
        (r"^TLS verification failed|CERTIFICATE_VERIFY_FAILED|\bSSL\b|\bTLS\b", "{host}'s certificate is not trusted",
         "{host}'s TLS certificate could not be verified, so nothing was sent to it"),
        (r"errno (-2|-3|-5|11001|11004|8)\]|name or service not known|nodename nor servname|getaddrinfo|"
         r"name resolution|no address associated", "{host} cannot be found",
         "the name {host} could not be looked up: the computer may be offline, or the address is wrong"),
        (r"errno (111|61|10061)\]|connection refused", "nothing answers at {host}",
         "{host} refused the connection: the vendor's server is down or nothing listens at that address"),
        (r"errno (101|113|51|65|10051|10065)\]|network is unreachable|no route to host", "no network to {host}",
         "there is no network route to {host}: the computer may be offline"),
        (r"^(Connect|Read|Write|Pool)?Timeout|timed out", "{host} does not answer in time",
         "{host} did not answer in time"),
        (r"errno (104|54|10054|32)\]|connection reset|broken pipe|RemoteProtocolError|disconnected|ReadError|"
         r"WriteError", "{host} cut the connection", "the connection to {host} was cut off before it answered"),
        (r"^keyring:", "the keyring is locked", "the OS keyring could not be read (it may be locked)"),
        (r"^cannot send at all", "cannot send at all",
         "Telemetry Tray cannot send at all: its network libraries failed to load"),
    )
)  # fmt: skip


def status_words(status: int) -> str:
    """``HTTP 503 Service Unavailable``."""
    phrase = _PHRASES.get(status)
    return f"HTTP {status} {phrase}" if phrase else f"HTTP {status}"


def _http(status: int, host: str) -> tuple[str, str]:
    said = status_words(status)
    if status in (502, 503, 504):
        return f"{host} is unavailable", f"{host} is unavailable for now ({said})"
    if status == 429:
        return f"{host} asks to wait", f"{host} asked to slow down ({said})"
    if status == 408:
        return f"{host} timed out", f"{host} timed out waiting for the batch ({said})"
    if status in (401, 403):
        return f"{host} refuses the credentials", f"{host} refused the credentials ({said})"
    if 300 <= status < 400:
        return f"{host} redirects", f"{host} answered with a redirect ({said}), which is never followed"
    return f"{host} refuses it", f"{host} refused the batch ({said})"


def error_words(status: int | None, error: str | None, host: str) -> tuple[str, str]:
    """A send's last answer as (short, reason) words: an HTTP ``status``, or the forwarder's
    one-line network ``error`` (``status`` None). Never the raw text."""
    if status is not None:
        return _http(status, host)
    text = (error or "").strip()
    for pattern, short, reason in _NETWORK:
        if pattern.search(text):
            return short.format(host=host), reason.format(host=host)
    return f"cannot reach {host}", f"the batch did not get through to {host}"


def _credentials_words(error: str | None, app_name: str) -> tuple[str, str]:
    text = (error or "").casefold()
    if "no os keyring" in text or "keyring is available" in text:
        return "waiting for a keyring", (
            f"{app_name}'s vendor needs a secret, and no OS keyring is available to hold it"
        )
    if "cannot be sent" in text:
        return "waiting for credentials", f"the secret stored for {app_name} cannot be sent in a header"
    return "waiting for credentials", f"{app_name}'s vendor needs a secret, and none is stored"


def wait_words(seconds: float) -> str:
    """How long until something, rounded as a person says it: "in 45 seconds", "in 4
    minutes", "in about 2 hours", "now"."""
    if seconds < 1:
        return "now"
    if seconds < 60:
        n = int(seconds)
        return f"in {n} second{'s' if n != 1 else ''}"
    if seconds < 3600:
        n = round(seconds / 60)
        return "in about an hour" if n == 60 else f"in {n} minute{'s' if n != 1 else ''}"
    n = round(seconds / 3600)
    if n < 48:
        return f"in about {n} hour{'s' if n != 1 else ''}"
    return f"in about {round(seconds / 86400)} days"


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def delivery_words(
    *,
    app_name: str,
    host: str,
    attempts: int,
    last_status: int | None,
    last_error: str | None,
    waiting_for: str | None,
    next_attempt_at: str,
    in_flight: bool,
    now: datetime,
    paused: bool = False,
) -> DeliveryWords:
    """The words for one undelivered batch of ``app_name`` to ``host``, at ``now``."""
    held = "; nothing is sent while Pause all is on" if paused else ""
    if waiting_for == "credentials":
        short, reason = _credentials_words(last_error, app_name)
        return DeliveryWords(
            DeliveryStage.WAITING_FOR_CREDENTIALS, short, reason, "not tried: it waits until the secret is set" + held,
            last_error or "", (DeliveryAction.SET_CREDENTIALS, DeliveryAction.RETRY_NOW, DeliveryAction.WITHDRAW),
        )  # fmt: skip
    if in_flight:
        return DeliveryWords(DeliveryStage.SENDING, f"sending to {host}", f"it is being sent to {host} right now",
                             "", last_error or "", ())  # fmt: skip
    if attempts <= 0:
        return DeliveryWords(DeliveryStage.SENDING, f"about to go to {host}", f"it is about to be sent to {host}",
                             held.removeprefix("; "), "", (DeliveryAction.WITHDRAW,))  # fmt: skip
    short, reason = error_words(last_status, last_error, host)
    try:
        seconds = (from_iso(next_attempt_at) - now).total_seconds()
        when = "next try " + wait_words(seconds) if seconds >= 1 else "trying again now"
    except ValueError:
        when = "tried again later"
    return DeliveryWords(
        DeliveryStage.RETRYING, short, reason, f"tried {_times(attempts)}; {when}{held}", last_error or "",
        (DeliveryAction.RETRY_NOW, DeliveryAction.WITHDRAW),
    )  # fmt: skip


def credentials_problem(
    *,
    app_name: str,
    vendor: str,
    needs_secret: bool,
    keyring_available: bool,
    secret_stored: bool | None,
    keyring_why: str = "",
) -> str:
    """What stands between an approval and its delivery for want of a secret, said before
    the person approves ("" when nothing does). ``secret_stored`` is None when the keyring
    could not be asked (locked)."""
    if not needs_secret:
        return ""
    if not keyring_available:
        why = f" ({keyring_why.strip().rstrip('.')})" if keyring_why.strip() else ""
        return (
            f"{vendor} needs a secret to receive {app_name}'s batches, and no OS keyring is available to hold "
            f"it{why}. An approved batch waits, unsent, until the secret can be stored; it is never kept anywhere "
            "else."
        )
    if secret_stored is None:
        return (
            f"{vendor} needs a secret to receive {app_name}'s batches, and the OS keyring could not be read (it "
            "may be locked). An approved batch waits until the secret can be read."
        )
    if not secret_stored:
        return (
            f"{vendor} needs a secret to receive {app_name}'s batches, and none is stored yet. An approved batch "
            "waits, unsent, until it is set."
        )
    return ""


def _capitalised(text: str) -> str:
    """The first letter upper case, unless the text starts with a name (a host: "t.example.org")."""
    first = text.split(" ", 1)[0]
    return text if any(c in first for c in ".:/'") else text[:1].upper() + text[1:]
