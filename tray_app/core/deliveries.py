"""The deliveries ledger: claims, leases and outcomes of approved batches.

An approved batch has one delivery row. A sender claims due rows under a lease (so no
other sender takes them until it expires), renews the lease while its sends are in
progress, checks its claim just before the bytes go out, and records the answer; what
an answer means is the pure rule :func:`tray_app.core.rules.retry.settle`, applied here
with one write path.

Design: the broker builds the ledger (``broker.deliveries``) and hands it its own
``writing``/``reading`` context managers, its clock, its manifest cache and its wake
signal. So transactions still start only in the broker (its ``_writing`` is also where
listeners hear, after the commit, that something became due), while the ledger holds
everything about delivery rows, and the forwarder depends on this ledger alone, not
on every decision the broker can take.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta

from .errors import ConflictError
from .journal import Journal
from .rules import retry
from .rules.clock import to_iso
from .rules.consent import APPROVED, DELIVERED, DISCARDED, FAILED, UNDECIDED, AppStatus
from .rules.manifest import Manifest
from .rules.otlp_answer import PartialSuccess
from .rules.receipts import Action
from .rules.retry import Outcome
from .storage.store import BatchRecord, DapReportsRecord, DeliveryRecord, Store
from .views import Claim, DeliveryOutcome, OpenDelivery

LEASE_S = 120.0  # longer than a send can take (connect + read timeouts), so a live send keeps its claim

Transaction = Callable[[], AbstractContextManager[None]]


class Deliveries:
    """The ledger of deliveries; every method runs in a transaction of the broker."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        writing: Transaction,
        reading: Transaction,
        now: Callable[[], datetime],
        manifest: Callable[[str, int], Manifest],
        paused: Callable[[], bool],
        due_now: Callable[[], None],
        on_approved: list[Callable[[], None]],
    ) -> None:
        self._store = store
        self._journal = journal
        self._writing = writing
        self._reading = reading
        self._now = now
        self._manifest = manifest
        self._paused = paused
        self._due_now = due_now  # listeners hear, once the write commits, that something is due
        # The broker's listeners (called after a write that made something due commits).
        self.on_approved = on_approved

    def now(self) -> datetime:
        """The time by the broker's clock (whole seconds, like every time in the ledger), so
        a sender measures how long until :meth:`next_delivery_due` on the same clock."""
        return self._now()

    def claim(self, owner: str, *, limit: int = 16, lease_s: float = LEASE_S) -> list[Claim]:
        """Claim due deliveries for ``owner`` under a lease, so no other sender takes
        them until the lease expires (a sender that died is replaced then, and sends the
        same bytes with the same Idempotency-Key). Nothing is claimed while paused."""
        now = self._now()
        claims = []
        with self._writing():
            if self._paused():
                return []
            expires = to_iso(now + timedelta(seconds=lease_s))
            for due in self._store.due_deliveries(to_iso(now), limit):
                batch = self._store.batch(due.batch_id)
                body = self._store.payload(due.batch_id)
                if batch is None or body is None or batch.endpoint is None or batch.payload_sha256 is None:
                    continue
                if self._blocked(batch.app_id):
                    # Blocked while this batch was being sent and then retried: stop here.
                    self._journal.discard(batch, by="person", reason="app blocked")
                    continue
                self._store.update_delivery(due.batch_id, lease_owner=owner, lease_expires_at=expires)
                manifest = self._manifest(batch.app_id, batch.manifest_version)
                claims.append(
                    Claim(
                        batch.batch_id, batch.app_id, batch.endpoint, manifest.auth, body, batch.payload_sha256,
                        owner, manifest.format,
                    )
                )  # fmt: skip
        return claims

    def finish(
        self,
        claim: Claim,
        *,
        status: int | None,
        error: str | None = None,
        retry_after: str | None = None,
        request_id: str | None = None,
        elapsed_ms: float | None = None,
        partial: PartialSuccess | None = None,
        refused: bool = False,
        detail: Mapping[str, object] | None = None,
    ) -> DeliveryOutcome:
        """Record what the vendor answered (``status``, its ``Retry-After`` header, an OTLP
        collector's ``partial`` success) or the network error (``status=None``), with a receipt.
        ``refused`` fails it for good whatever the status (retry.settle); ``detail`` adds to the
        receipt (a DAP batch's sealed reports: their digest and how many the leader has)."""
        now = self._now()
        with self._writing():
            batch = self._store.batch(claim.batch_id)
            current = self._store.delivery(claim.batch_id)
            if batch is None or current is None or batch.status != APPROVED:
                return DeliveryOutcome(
                    claim.batch_id, claim.app_id, Outcome.ALREADY, batch_status=batch.status if batch else None
                )
            if current.lease_owner != claim.owner:
                # Our lease ran out and another sender took the batch; it will record the
                # outcome of its own send (same bytes, same Idempotency-Key).
                return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.TAKEN_OVER)
            settled = retry.settle(
                status=status, error=error, retry_after=retry_after, attempts=current.attempts + 1, now=now,
                app_blocked=self._blocked(batch.app_id), endpoint=claim.endpoint,
                payload_sha256=claim.payload_sha256, payload_bytes=len(claim.payload), request_id=request_id,
                elapsed_ms=elapsed_ms, partial=partial, refused=refused,
            )  # fmt: skip
            self._store.update_delivery(claim.batch_id, **settled.delivery)
            if detail:
                settled = replace(settled, detail={**settled.detail, **detail})
            if settled.discard:
                self._journal.discard(batch, by="person", reason="app blocked")
            else:
                if settled.batch_status is not None:
                    self._store.update_batch(claim.batch_id, status=settled.batch_status)
                assert settled.action is not None
                self._journal.record(batch, settled.action, settled.detail)
            return DeliveryOutcome(
                claim.batch_id, claim.app_id, settled.outcome, status, settled.error, settled.next_attempt_at
            )

    # -- a DAP batch's sealed reports (core/dap_sealer.py makes them, the forwarder uploads them)

    def sealed_reports(self, claim: Claim) -> DapReportsRecord | None:
        """The sealed reports of a claimed DAP batch, if they were made."""
        with self._reading():
            return self._store.dap_reports(claim.batch_id)

    def store_sealed(
        self, claim: Claim, body: bytes, sha256: str, reports: int, *, again: bool = False
    ) -> DapReportsRecord | None:
        """Keep the sealed reports made for ``claim`` before any of them is uploaded: only while
        the batch is approved and the claim is ours. Reports made already are kept as they are
        (and returned) unless ``again`` (the leader refused them as sealed to an outdated
        configuration: those from the first not uploaded on are made again). None: not ours."""
        with self._writing():
            batch = self._store.batch(claim.batch_id)
            current = self._store.delivery(claim.batch_id)
            if batch is None or batch.status != APPROVED or current is None or current.lease_owner != claim.owner:
                return None
            existing = self._store.dap_reports(claim.batch_id)
            if existing is not None and not again:
                return existing
            uploaded = existing.uploaded if existing is not None else 0
            record = DapReportsRecord(claim.batch_id, body, sha256, reports, uploaded, to_iso(self._now()))
            self._store.put_dap_reports(record)
            return record

    def dap_uploaded(self, claim: Claim, uploaded: int) -> bool:
        """Record that the leader has the first ``uploaded`` reports (so a retry, or a restart,
        sends only the rest). False when the claim is no longer ours: stop sending."""
        with self._writing():
            current = self._store.delivery(claim.batch_id)
            if current is None or current.lease_owner != claim.owner:
                return False
            self._store.set_dap_uploaded(claim.batch_id, uploaded)
            return True

    def renew(self, claims: Sequence[Claim], lease_s: float) -> None:
        """Extend the leases of sends still in progress (a slow vendor is not a dead sender)."""
        expires = to_iso(self._now() + timedelta(seconds=lease_s))
        with self._writing():
            for claim in claims:
                current = self._store.delivery(claim.batch_id)
                if current is not None and current.lease_owner == claim.owner:
                    self._store.update_delivery(claim.batch_id, lease_expires_at=expires)

    def still_claimed(self, claim: Claim) -> bool:
        """Checked just before the bytes go out: still approved, app not blocked, lease ours."""
        with self._reading():
            batch = self._store.batch(claim.batch_id)
            current = self._store.delivery(claim.batch_id)
            app = self._store.app(claim.app_id)
            return bool(
                batch is not None
                and batch.status == APPROVED
                and current is not None
                and current.lease_owner == claim.owner
                and (current.lease_expires_at or "") > to_iso(self._now())
                and app is not None
                and app.status != AppStatus.BLOCKED
                and not self._paused()
            )

    def in_flight(self, batch: BatchRecord) -> bool:
        """Whether a sender holds a live lease on the batch (its bytes may be on the wire)."""
        current = self._store.delivery(batch.batch_id) if batch.status == APPROVED else None
        return bool(current and current.lease_expires_at and current.lease_expires_at > to_iso(self._now()))

    def wait_for_credentials(self, claim: Claim, reason: str) -> DeliveryOutcome:
        """Hold a claimed batch until its app has credentials in the keyring (no send, no attempt)."""
        with self._writing():
            current = self._store.delivery(claim.batch_id)
            if current is not None and current.lease_owner == claim.owner:
                self._store.update_delivery(
                    claim.batch_id, waiting_for="credentials", lease_owner=None, lease_expires_at=None,
                    last_error=reason,
                )  # fmt: skip
        return DeliveryOutcome(claim.batch_id, claim.app_id, Outcome.WAITING_FOR_CREDENTIALS, error=reason)

    def credentials_changed(self, app_id: str) -> int:
        """An app's credentials were set: its held deliveries are due again. Returns how many."""
        now = to_iso(self._now())
        count = 0
        with self._writing():
            for waiting in self._store.open_deliveries(app_id):
                if waiting.waiting_for == "credentials":
                    self._store.update_delivery(waiting.batch_id, waiting_for=None, next_attempt_at=now)
                    count += 1
            if count:
                self._due_now()  # wakes the forwarder like an approval
        return count

    def retry_now(self, batch_id: str) -> bool:
        """Make an approved batch's delivery due now (a retry scheduled later, or one held
        for credentials: the keyring is asked again) and wake the sender. False when a
        sender holds it right now (it is being sent; nothing to do). Refused for a batch
        that is not approved, and while Pause all is on (nothing is sent then)."""
        with self._writing():
            batch = self._store.batch(batch_id)
            if batch is None or batch.status != APPROVED or self._store.delivery(batch_id) is None:
                status = batch.status if batch is not None else "gone"
                raise ConflictError(f"Batch {batch_id} is {status}, not waiting to be sent; there is nothing to retry.")
            if self._paused():
                raise ConflictError("Pause all is on, so nothing is sent. Turn it off first.")
            if self.in_flight(batch):
                return False
            self._store.update_delivery(batch_id, next_attempt_at=to_iso(self._now()), waiting_for=None)
            self._due_now()  # wakes the forwarder like an approval
            return True

    def withdraw(self, batch_id: str) -> None:
        """Take an approval back before the batch is sent: it is discarded (its stored bytes
        deleted, nothing sent, not even a notice), with a receipt (``discarded``, reason
        ``withdrawn``). Refused while a sender holds a live lease on it (its bytes may be on
        the wire), and for a batch that is not approved (delivered, failed, undecided…). A
        sender holding an older claim sends nothing afterwards: it checks that the batch is
        still approved just before the bytes go out, and records nothing after."""
        with self._writing():
            batch = self._store.batch(batch_id)
            if batch is None:
                raise ConflictError(f"Batch {batch_id} is gone; there is nothing to withdraw.")
            if batch.status != APPROVED:
                raise ConflictError(_not_withdrawable(batch))
            if self.in_flight(batch):
                raise ConflictError(
                    f"Batch {batch_id} is being sent right now, so its bytes may already be on the wire; it "
                    "cannot be withdrawn. If the vendor does not take it, it can be withdrawn in a minute.",
                    title="Being sent",
                )
            sealed = self._store.dap_reports(batch_id)
            if sealed is not None and sealed.uploaded > 0:
                # Those reports are at the leader: a "withdrawn, nothing sent" receipt would be untrue.
                raise ConflictError(
                    f"{sealed.uploaded} of the {sealed.reports} reports of batch {batch_id} are already at the "
                    "leader aggregator, so it cannot be withdrawn: the rest goes with the next delivery round.",
                    title="Partly sent",
                )
            reports = self._journal.reports_in(batch)
            at = to_iso(self._now())
            self._store.update_batch(batch_id, status=DISCARDED, decided_at=at, decided_by="person", payload=None)
            self._store.update_delivery(batch_id, lease_owner=None, lease_expires_at=None, waiting_for=None)
            detail = {"by": "person", "reports": reports, "reason": "withdrawn", "payload_sha256": batch.payload_sha256}
            self._journal.record(batch, Action.DISCARDED, detail)

    def undelivered(self) -> list[OpenDelivery]:
        """Approved batches not delivered yet, with their app's name and destination, in
        one read (what the tray and History show of deliveries)."""
        now = to_iso(self._now())
        found = []
        with self._reading():
            names = {app.app_id: app.name for app in self._store.apps()}
            for d in self._store.open_deliveries():
                batch = self._store.batch(d.batch_id)
                if batch is None:
                    continue
                found.append(
                    OpenDelivery(
                        d.batch_id, batch.app_id, names.get(batch.app_id, batch.app_id), batch.endpoint or "",
                        d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.waiting_for,
                        bool(d.lease_expires_at and d.lease_expires_at > now), batch.decided_at, batch.payload_bytes,
                        batch.window_start, batch.window_end,
                    )
                )  # fmt: skip
        return found

    def open_deliveries(self) -> list[DeliveryRecord]:
        """Approved batches not yet delivered: due, scheduled, in flight or waiting."""
        return self._store.open_deliveries()

    def next_delivery_due(self) -> str | None:
        """When the forwarder next has something to do (ISO 8601), if ever (never while paused)."""
        if self._paused():
            return None
        times = [
            max(d.next_attempt_at, d.lease_expires_at or "")
            for d in self._store.open_deliveries()
            if d.waiting_for is None
        ]
        return min(times) if times else None

    def _blocked(self, app_id: str) -> bool:
        app = self._store.app(app_id)
        return app is not None and app.status == AppStatus.BLOCKED


def _not_withdrawable(batch: BatchRecord) -> str:
    """Why a batch that is not approved cannot be withdrawn, in words."""
    if batch.status in UNDECIDED:
        return f"Batch {batch.batch_id} is not approved, so there is nothing to withdraw; discard it instead."
    if batch.status == DELIVERED:
        return f"Batch {batch.batch_id} was already delivered; it cannot be taken back."
    if batch.status == FAILED:
        return f"Batch {batch.batch_id} failed for good: the vendor refused it, and it is never sent again."
    return f"Batch {batch.batch_id} is already {batch.status}; there is nothing to withdraw."
