"""The network half of a DAP batch's delivery: the aggregators' HPKE configurations, fetched and
cached, and what a DAP leader's problem document says.

``GET {aggregator}/hpke_config?task_id=…`` answers an ``HpkeConfigList`` as
``application/dap-hpke-config-list`` (DAP-09, "HPKE Configuration Request"). A configuration is
kept for :data:`CONFIG_TTL_S` per aggregator and task, and dropped at once when the leader
answers ``outdatedConfig`` (the aggregator rotated its key). Every problem is a
:class:`ConfigProblem` in words, and says whether a retry may mend it (a network error, 408,
429, 5xx: the retry rules of every vendor) or not (another status, the wrong media type, a list
that does not parse or offers no suite we can encrypt to: DAP-09 tells the client to abort).

The sealing itself is pure (rules/dap_batch.py); the forwarder calls it on its first claim of a
DAP batch and stores the sealed bytes before any upload (docs/dap.md, "When the reports are made").
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import MalformedError
from .rules.prio import DAP_09_VDAF_08, HpkeConfig, encode_task_id, select_hpke_config
from .rules.retry import Verdict, verdict

if TYPE_CHECKING:
    import httpx

CONFIG_TTL_S = 3600.0
CONFIG_LIMIT = 64 * 1024  # bytes of an HpkeConfigList read (a real one is under 100)
PROBLEM_LIMIT = 8 * 1024
DAP_PROBLEM = "urn:ietf:params:ppm:dap:error:"


class ConfigProblem(Exception):
    """An aggregator's HPKE configuration could not be had: ``message`` in words, the HTTP
    ``status`` if it answered, and whether it is ``refused`` for good (no retry mends it)."""

    def __init__(self, message: str, *, status: int | None = None, refused: bool, retry_after: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.refused = refused
        self.retry_after = retry_after


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem document of a DAP aggregator (its ``type`` without the DAP prefix)."""

    type: str
    title: str
    detail: str

    @property
    def words(self) -> str:
        said = ": ".join(part for part in (self.title, self.detail) if part)
        return f"{said} ({self.type})" if self.type else said


PROBLEM_BYTES = 64 * 1024  # of an error answer read as a problem document


def read_problem(body: bytes) -> Problem:
    """The problem document in ``body``; an empty one when it is not one."""
    try:
        obj = json.loads(body[:PROBLEM_BYTES].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # an aggregator's answer: anything may come
        return Problem("", "", " ".join(body.decode("utf-8", "replace").split())[:200])
    if not isinstance(obj, dict):
        return Problem("", "", "")

    def text(key: str) -> str:
        value = obj.get(key)
        return " ".join(value.split())[:200] if isinstance(value, str) else ""

    kind = text("type")
    return Problem(kind.removeprefix(DAP_PROBLEM), text("title"), text("detail"))


class HpkeConfigs:
    """The aggregators' HPKE configurations, by aggregator base URL and task, cached."""

    def __init__(self, ttl_s: float = CONFIG_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._kept: dict[tuple[str, str], tuple[HpkeConfig, float]] = {}
        self._lock = threading.Lock()

    def forget(self, aggregator: str) -> None:
        """Drop what is kept of ``aggregator`` (it answered ``outdatedConfig``)."""
        with self._lock:
            for key in [key for key in self._kept if key[0] == aggregator]:
                del self._kept[key]

    def get(self, client: httpx.Client, aggregator: str, task_id: bytes, role: str) -> HpkeConfig:
        key = (aggregator, encode_task_id(task_id))
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept[1] < self._ttl_s:
                return kept[0]
        config = fetch_config(client, aggregator, task_id, role)
        with self._lock:
            self._kept[key] = (config, time.monotonic())
        return config

    def pair(self, client: httpx.Client, approved: Mapping[str, Any], task_id: bytes) -> tuple[HpkeConfig, HpkeConfig]:
        """The leader's and the helper's configurations for one task of an approved payload."""
        return (
            self.get(client, approved["leader"]["url"], task_id, "leader"),
            self.get(client, approved["helper"]["url"], task_id, "helper"),
        )


def config_url(aggregator: str, task_id: bytes) -> str:
    return f"{aggregator.rstrip('/')}/{DAP_09_VDAF_08.hpke_config_path}?task_id={encode_task_id(task_id)}"


def fetch_config(client: httpx.Client, aggregator: str, task_id: bytes, role: str) -> HpkeConfig:
    """``GET {aggregator}/hpke_config``, checked: ConfigProblem says what is wrong."""
    import httpx

    media = DAP_09_VDAF_08.hpke_config_list_media_type
    who = f"The {role} aggregator ({aggregator})"
    try:
        with client.stream("GET", config_url(aggregator, task_id), headers={"Accept": media}) as response:
            status = response.status_code
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > CONFIG_LIMIT:
                    break
            content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            retry_after = response.headers.get("retry-after")
    except httpx.HTTPError as exc:
        raise ConfigProblem(
            f"{who} could not be reached for its HPKE configuration: {type(exc).__name__}: {exc}"[:300],
            refused=False,
        ) from None
    if not 200 <= status < 300:
        excerpt = read_problem(body[:PROBLEM_LIMIT]).words
        raise ConfigProblem(
            f"{who} answered HTTP {status} for its HPKE configuration{': ' + excerpt if excerpt else ''}"[:300],
            status=status,
            refused=verdict(status) == Verdict.FAILED,
            retry_after=retry_after,
        )
    if content_type != media:
        raise ConfigProblem(
            f"{who} answered its HPKE configuration as '{content_type or 'no media type'}', not {media}; "
            "nothing was sent",
            refused=True,
        )
    if len(body) > CONFIG_LIMIT:
        raise ConfigProblem(f"{who} answered an HPKE configuration of more than {CONFIG_LIMIT} bytes", refused=True)
    try:
        return select_hpke_config(body, who)
    except MalformedError as exc:
        said = (
            exc.message
            if who in exc.message
            else f"{who} served an HPKE configuration list we cannot use. {exc.message}"
        )
        raise ConfigProblem(f"{said.rstrip('.')}; nothing was sent"[:300], refused=True) from None
