"""Receipts: the hash-chained record of every decision and delivery.

Each receipt holds the SHA-256 of the one before it and its own hash covers its
sequence number, time, batch, app, action, detail and that previous hash, so editing,
reordering or deleting a receipt in the middle of the chain is detectable by
:func:`verify`. (Cutting receipts off the *end* leaves a valid shorter chain; the
exported head hash is what a person keeps to detect that.) :func:`export_chain` is
what *History → Export* and ``history --export FILE`` write, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .canonical_json import canonical_bytes, canonical_json
from .payload import sha256_hex


class Action(StrEnum):
    """What a receipt records (its ``action``, hashed as this very string)."""

    APPROVED = "approved"  # a batch was approved (by the person or its policy): its bytes' digest
    DISCARDED = "discarded"  # a batch was discarded (or its approval withdrawn): its data deleted, nothing sent
    DELIVERED = "delivered"  # the vendor accepted the bytes (2xx)
    RETRYING = "retrying"  # a send did not get through or was refused for now; tried again later
    FAILED = "failed"  # the vendor refused the bytes for good
    EXPIRED = "expired"  # retention: a batch expired undecided, or a stored payload was purged

    @property
    def sends(self) -> bool:
        """Whether it records a send to the vendor (delivered, retrying, failed)."""
        return self in (Action.DELIVERED, Action.RETRYING, Action.FAILED)

    @property
    def decides(self) -> bool:
        """Whether it records a decision (approved, discarded)."""
        return self in (Action.APPROVED, Action.DISCARDED)


ACTIONS: tuple[Action, ...] = tuple(Action)
GENESIS = "0" * 64

# Every key a receipt's ``detail`` may hold (journal.py and rules/retry.py write them),
# with its label for a person, in the order they are shown.
DETAIL_LABELS: dict[str, str] = {
    "by": "Decided by",  # "person" or "policy" (approved, discarded)
    "reports": "Reports",  # how many reports the batch held (approved, discarded, expired)
    "scope": "Scope",  # the scope approved, as Scope.to_obj (approved)
    "endpoint": "Destination",  # where the bytes go (approved, sends)
    "manifest_version": "Manifest version",  # the manifest the batch was collected under (approved)
    "status": "Vendor answer",  # the HTTP status (sends); the batch status when a payload was purged
    "error": "Error",  # the vendor's answer or the network error, one line (sends)
    "request_id": "Request id",  # the vendor's request id header (delivered)
    "attempts": "Attempts",  # sends so far (sends)
    "elapsed_ms": "Took",  # how long the send took (delivered)
    "partial": "Partly refused",  # what an OTLP collector said it did not keep (delivered)
    "next_attempt_at": "Next attempt",  # when the next try is due (retrying)
    "payload_bytes": "Payload size",  # the approved bytes' length (approved, delivered)
    "payload_sha256": "Payload SHA-256",  # the approved bytes' digest (approved, delivered, expired)
    "reason": "Reason",  # why (discarded: "app blocked", "app removed", "withdrawn"; expired)
    "purged": "Purged",  # what retention deleted ("payload") (expired)
}
DETAIL_KEYS: tuple[str, ...] = tuple(DETAIL_LABELS)
# The keys a one-line listing shows (``history`` in the CLI), in this order.
BRIEF_DETAIL_KEYS: tuple[str, ...] = (
    "by", "reason", "reports", "payload_bytes", "purged", "status", "error", "partial",
)  # fmt: skip


@dataclass(frozen=True)
class Receipt:
    seq: int
    at: str
    batch_id: str
    app_id: str
    action: Action | str  # an Action once read back (a tampered row may hold another word)
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_obj(self) -> dict[str, Any]:
        """The shape of ``history --json``."""
        return {
            "at": self.at,
            "batch_id": self.batch_id,
            "app_id": self.app_id,
            "action": self.action,
            "detail": dict(self.detail),
        }

    def to_export(self) -> dict[str, Any]:
        return {**self.to_obj(), "seq": self.seq, "prev_hash": self.prev_hash, "hash": self.hash}

    @property
    def detail_json(self) -> str:
        return canonical_json(dict(self.detail))  # hashed: canonical JSON, byte for byte


def receipt_hash(
    seq: int, at: str, batch_id: str, app_id: str, action: str, detail: Mapping[str, Any], prev_hash: str
) -> str:
    return sha256_hex(
        canonical_bytes(
            {
                "seq": seq,
                "at": at,
                "batch_id": batch_id,
                "app_id": app_id,
                "action": action,
                "detail": dict(detail),
                "prev": prev_hash,
            }
        )
    )


def seal(
    prev: Receipt | None, at: str, batch_id: str, app_id: str, action: Action, detail: Mapping[str, Any]
) -> Receipt:
    """The next receipt after ``prev`` (``None`` for the first one)."""
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS if prev is None else prev.hash
    digest = receipt_hash(seq, at, batch_id, app_id, action, detail, prev_hash)
    return Receipt(seq, at, batch_id, app_id, action, dict(detail), prev_hash, digest)


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    count: int
    head: str
    problem: str = ""
    bad_seq: int | None = None


def verify_chain(receipts: Iterable[Receipt]) -> ChainCheck:
    """Walk the chain from the first receipt; report the first one that does not fit."""
    prev_hash = GENESIS
    expected_seq = 1
    count = 0
    for receipt in receipts:
        if receipt.seq != expected_seq:
            return ChainCheck(False, count, prev_hash, f"receipt {expected_seq} is missing", expected_seq)
        if receipt.action not in ACTIONS:
            return ChainCheck(False, count, prev_hash, f"receipt {receipt.seq} has an unknown action", receipt.seq)
        if receipt.prev_hash != prev_hash:
            return ChainCheck(
                False,
                count,
                prev_hash,
                f"receipt {receipt.seq} does not follow the one before it",
                receipt.seq,
            )
        recomputed = receipt_hash(
            receipt.seq,
            receipt.at,
            receipt.batch_id,
            receipt.app_id,
            receipt.action,
            receipt.detail,
            prev_hash,
        )
        if recomputed != receipt.hash:
            return ChainCheck(
                False,
                count,
                prev_hash,
                f"receipt {receipt.seq} was changed after it was written",
                receipt.seq,
            )
        prev_hash = receipt.hash
        expected_seq += 1
        count += 1
    return ChainCheck(True, count, prev_hash)


@dataclass(frozen=True)
class ChainExport:
    """A history export: its bytes, and what they say in numbers."""

    body: bytes
    count: int
    head: str
    verified: bool
    problem: str = ""


def chain_export(receipts: Sequence[Receipt], exported_at: str) -> ChainExport:
    """The history export, made at ``exported_at`` (ISO 8601): UTF-8 JSON, indented two
    spaces for a person to read, ending with a newline, holding in this order

    ``exported_at``, ``count`` (receipts), ``head`` (the last receipt's hash, or
    :data:`GENESIS`), ``verified`` (whether the chain verifies), ``receipts`` (each as
    :meth:`Receipt.to_export`: its fields, ``seq``, ``prev_hash`` and ``hash``), and
    ``problem`` (the first break) only when it does not verify."""
    check = verify_chain(receipts)
    head = receipts[-1].hash if receipts else GENESIS
    document: dict[str, Any] = {
        "exported_at": exported_at,
        "count": len(receipts),
        "head": head,
        "verified": check.ok,
        "receipts": [receipt.to_export() for receipt in receipts],
    }
    if not check.ok:
        document["problem"] = check.problem
    body = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return ChainExport(body, len(receipts), head, check.ok, check.problem)


def export_chain(receipts: Sequence[Receipt], exported_at: str) -> bytes:
    """The bytes of the history export (see :func:`chain_export`)."""
    return chain_export(receipts, exported_at).body
