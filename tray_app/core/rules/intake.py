"""Decoding a body of reports, with the same limits for every way in (HTTP, CLI).

A body is one report object, a list of them, or ``{"reports": [...]}``. The limits
are far above what an honest app sends and well below what would hurt us.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from ..errors import MalformedError, TooLargeError

MAX_BODY_BYTES = 1024 * 1024
MAX_REPORTS = 10_000


def decode_reports(body: bytes) -> list[object]:
    if len(body) > MAX_BODY_BYTES:
        raise TooLargeError(
            f"The body is {len(body)} bytes; at most {MAX_BODY_BYTES} (1 MiB) are accepted. "
            "Send fewer reports at a time."
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"The body is not UTF-8 (bad byte at position {exc.start}).") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise MalformedError(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise MalformedError(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise MalformedError("The body is nested too deeply; a report is a flat object.") from None
    reports: Any
    if isinstance(obj, dict) and set(obj) == {"reports"}:
        reports = obj["reports"]
        if not isinstance(reports, list):
            raise MalformedError('"reports" must be a list of report objects.')
    elif isinstance(obj, dict):
        reports = [obj]
    elif isinstance(obj, list):
        reports = obj
    else:
        raise MalformedError('Send one report object, or {"reports": [...]}.')
    if not reports:
        raise MalformedError("There are no reports in the body.")
    if len(reports) > MAX_REPORTS:
        raise TooLargeError(f"{len(reports)} reports in one request; at most {MAX_REPORTS} are accepted.")
    return list(reports)


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses a key given twice: which value counts is
    ambiguous, and a reviewer could be shown one and the vendor another."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedError(f"The key {key[:64]!r} appears twice in one object; give it once.")
            seen.add(key)
    return obj


def _no_constant(name: str) -> NoReturn:
    raise MalformedError(f"{name} is not valid JSON; send finite numbers only.")
