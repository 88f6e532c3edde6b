"""Canonical JSON: the one spelling of a value that is hashed, compared or sent.

``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` (DESIGN.md,
"Payload sent to the vendor"): keys sorted, no spaces, text as UTF-8 rather than
``\\uXXXX`` escapes. The payload's bytes, a receipt's detail (a hash input), a manifest's
comparison text and the stored reports and scopes are all written by it, so changing it
changes every digest ever recorded: it must not change.
"""

from __future__ import annotations

import json
from typing import Final

# One encoder for every call (json.dumps with options builds a new one per call), shared
# by the fast renderer too. Encoding keeps no state in the encoder, so threads may share it.
CANONICAL_ENCODER: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: object) -> str:
    """``obj`` as canonical JSON text."""
    return CANONICAL_ENCODER.encode(obj)


def canonical_bytes(obj: object) -> bytes:
    """``obj`` as canonical JSON, UTF-8 encoded: the bytes that are hashed and sent."""
    return CANONICAL_ENCODER.encode(obj).encode("utf-8")
