"""The journal: the receipts of decisions and deliveries, and discards, written inside
the caller's transaction.

It never starts a transaction: the broker (the only place one starts) calls it inside
its own write, so a decision and its receipt commit together or not at all. What each
receipt says (its ``detail``) is decided here, in one place per action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .rules.clock import to_iso
from .rules.consent import APPROVED, DISCARDED, EXPIRED, UNDECIDED
from .rules.manifest import Manifest
from .rules.payload import Payload
from .rules.receipts import Action, seal
from .rules.scope import Scope
from .rules.vendor_body import destination
from .storage.store import BatchRecord, Store


class Journal:
    """Receipts and discards, for a caller that holds the write transaction.

    ``delete_reports`` deletes a batch's reports and returns how many there were (the
    broker's, which also lets go of any decoded copy it keeps for previews).
    """

    def __init__(self, store: Store, now: Callable[[], datetime], delete_reports: Callable[[str], int]) -> None:
        self._store = store
        self._now = now
        self._delete_reports = delete_reports

    def _inside(self) -> None:
        if not self._store.in_write:
            raise RuntimeError("the journal writes only inside the broker's write transaction")

    def record(self, batch: BatchRecord, action: Action, detail: Mapping[str, Any]) -> None:
        """Seal a receipt onto the chain."""
        self._inside()
        receipt = seal(self._store.last_receipt(), to_iso(self._now()), batch.batch_id, batch.app_id, action, detail)
        self._store.insert_receipt(receipt)

    def approved(
        self, batch: BatchRecord, *, by: str, reports: int, payload: Payload, scope: Scope, manifest: Manifest
    ) -> None:
        """The receipt of an approval: who, how many reports, and the exact bytes' digest."""
        self.record(
            batch,
            Action.APPROVED,
            {
                "by": by,
                "reports": reports,
                "payload_sha256": payload.sha256,
                "payload_bytes": payload.size,
                "scope": scope.to_obj(),
                "endpoint": destination(manifest, scope),
                "manifest_version": manifest.version,
            },
        )

    def discard(self, batch: BatchRecord, *, by: str, reason: str | None = None) -> None:
        """Discard a batch: its reports and payload go, its status is discarded, with a receipt."""
        self._inside()
        count = self._delete_reports(batch.batch_id)
        at = to_iso(self._now())
        self._store.update_batch(
            batch.batch_id,
            status=DISCARDED,
            closed_at=batch.closed_at or at,
            decided_at=at,
            decided_by=by,
            payload=None,
        )
        detail: dict[str, Any] = {"by": by, "reports": count}
        if reason:
            detail["reason"] = reason
        self.record(batch, Action.DISCARDED, detail)

    def expire(self, batch: BatchRecord, *, days: int) -> None:
        """Expire a batch not decided (or not delivered) within ``days``: its reports and
        payload go, with a receipt."""
        self._inside()
        count = self.reports_in(batch)
        self._delete_reports(batch.batch_id)
        self._store.update_batch(batch.batch_id, status=EXPIRED, payload=None)
        what = "delivered" if batch.status == APPROVED else "decided"
        self.record(batch, Action.EXPIRED, {"reason": f"not {what} within {days} days", "reports": count})

    def purge(self, batch: BatchRecord) -> None:
        """Purge a finished batch's stored payload (retention), with a receipt."""
        self._inside()
        self._store.update_batch(batch.batch_id, payload=None)
        self.record(
            batch, Action.EXPIRED, {"purged": "payload", "payload_sha256": batch.payload_sha256, "status": batch.status}
        )

    def reports_in(self, batch: BatchRecord) -> int:
        """How many reports the batch holds, or held when it was decided."""
        if batch.status in UNDECIDED:
            return self._store.report_count(batch.batch_id)
        # Decided batches keep no reports; the decision's receipt says how many there were.
        for receipt in self._store.receipts(batch_id=batch.batch_id):
            if receipt.action in (Action.APPROVED, Action.DISCARDED):
                return int(receipt.detail.get("reports", 0))
        return 0
