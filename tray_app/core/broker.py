"""The broker: the one service every shell (CLI, HTTP endpoint, tray UI) calls.

It owns the rules of DESIGN.md: registration and consent, report checking, batch
windows, the route a closed batch takes, approval with a scope, discard, retention
and the receipts. Every decision is written in the same transaction as the state it
changes (status, stored payload bytes, receipt), so nothing can act on a decision
that was not recorded. Transactions start here only: the receipts are written by the
journal (``journal.py``) and the delivery rows by the ledger (``deliveries.py``,
``broker.deliveries``), both inside the broker's own transactions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, tzinfo

from .deliveries import Deliveries
from .earlier_batches import EarlierBatches
from .errors import (
    AuthError,
    BlockedError,
    ConflictError,
    DigestMismatch,
    InputError,
    NotFoundError,
    Remedy,
    TooManyWaiting,
)
from .journal import Journal
from .platform.files import write_file_whole
from .platform.paths import Locations
from .previews import Previews, frame
from .rules import consent
from .rules.batch_summary import Disclosure, summarize, summarize_sent
from .rules.canonical_json import canonical_json
from .rules.clock import Clock, to_iso, utc_now
from .rules.columns import encode_report
from .rules.consent import (
    APPROVED,
    DECIDED,
    DELIVERED,
    DISCARDED,
    FAILED,
    HELD,
    OPEN,
    PENDING,
    UNDECIDED,
    AppStatus,
    BatchStatus,
    Policy,
    Route,
)
from .rules.manifest import Manifest, ManifestChange, diff_manifests, manifest_from_obj, upgrade
from .rules.noise import SEED_BYTES
from .rules.payload import Payload, sha256_hex
from .rules.receipts import Action, ChainCheck, ChainExport, Receipt, chain_export, verify_chain
from .rules.reports import check_reports
from .rules.scope import Mode, Scope, carry_scope, check_scope, default_scope, fit_scope
from .rules.vendor_body import destination, sent_scope, vendor_body
from .rules.windows import window_for
from .storage.spool import Spool, SpoolDrain
from .storage.store import AppRecord, BatchRecord, Store
from .views import (
    AppInfo,
    BatchSummary,
    BatchView,
    ClosedBatch,
    IngestResult,
    OpenDelivery,
    Overview,
    Registration,
    RetentionSweep,
)

DEFAULT_RETENTION_DAYS = 30
# Settings of the shells (not rules), with their defaults.
# "welcomed": the tray has announced itself once (its first run).
PREFERENCES = {"notifications": "on", "new_app_prompts": "on", "start_at_login": "off", "welcomed": "off"}
MAX_RETENTION_DAYS = 3650
# New apps waiting for the person's consent at once: more would bury the review under
# prompts (a program, or another local user, registering in a loop).
MAX_AWAITING_CONSENT = 32
# How long a report request's Idempotency-Key is remembered: a resend after a lost answer
# or through the spool comes within minutes or at the next start; one later than this
# may be stored twice.
INGEST_KEY_TTL = timedelta(days=2)
_PAUSED_ALL = "paused_all"
_RETENTION = "retention_days"
_SPOOL_DROPPED = "spool_dropped_reports"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Broker:
    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self.store = store
        self._clock = clock
        self._manifests: dict[tuple[str, int, str], Manifest] = {}
        # Called (from the thread that made the change) after a write transaction that
        # approved something commits: the forwarder wakes on it instead of polling.
        self.on_approved: list[Callable[[], None]] = []
        self._local = threading.local()
        self.previews = Previews(store)  # the decoded reports of the batch a person looks at
        # What delivered batches sent, read back once (a batch's summary compares with them).
        self.earlier = EarlierBatches(store, self._manifest)
        # The person's time zone, for the hours a summary says they were active; None: this
        # machine's, at the time of the view.
        self.zone: tzinfo | None = None
        self.journal = Journal(store, self._now, self.previews.delete_reports)
        # The deliveries ledger, in the broker's own transactions (see deliveries.py).
        self.deliveries = Deliveries(
            store, self.journal, writing=self._writing, reading=self.reading, now=self._now,
            manifest=self._manifest, paused=lambda: self.paused_all, due_now=self._announce,
            on_approved=self.on_approved,
        )  # fmt: skip

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One consistent read across several calls (e.g. the history and the app names)."""
        with self.store.read():
            yield

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction; listeners hear of approvals once it has committed."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._local.approved = False
        self._local.depth = depth + 1
        try:
            with self.store.write():
                yield
        finally:
            self._local.depth = depth
        if depth == 0 and self._local.approved:
            self._local.approved = False
            for listener in list(self.on_approved):
                listener()

    def _announce(self) -> None:
        """Inside a write: once it commits, the listeners hear that something is due."""
        self._local.approved = True

    @classmethod
    def open(cls, locations: Locations, clock: Clock = utc_now) -> Broker:
        return cls(Store.open(locations.prepare().database), clock)

    def close(self) -> None:
        self.store.close()

    def now(self) -> datetime:
        """The time by the broker's clock (the one it was given: a test's, or the real one)."""
        return self._clock()

    def _now(self) -> datetime:
        # Whole seconds, so stored times compare correctly as text.
        return self.now().replace(microsecond=0)

    # -- apps ------------------------------------------------------------------------

    def register(self, manifest: Manifest, *, token: str | None = None, new_token: bool = False) -> Registration:
        """Register an app, or a new version of its manifest.

        A known app needs its own ``token`` to change its manifest, unless
        ``new_token`` is set (the person at the CLI), which also issues a new token.
        """
        at = to_iso(self._now())
        with self._writing():
            record = self.store.app(manifest.app_id)
            if record is None:
                waiting = sum(1 for app in self.store.apps() if app.status == AppStatus.AWAITING_CONSENT)
                if waiting >= MAX_AWAITING_CONSENT:
                    raise TooManyWaiting(
                        f"{waiting} apps already wait for your consent, so no new one is taken.",
                        remedy=Remedy.ANSWER_WAITING_APPS,
                    )
                issued = secrets.token_urlsafe(32)
                self.store.insert_app(
                    AppRecord(
                        app_id=manifest.app_id,
                        name=manifest.name,
                        vendor=manifest.vendor,
                        endpoint=manifest.endpoint,
                        manifest_version=manifest.version,
                        status=AppStatus.AWAITING_CONSENT,
                        policy=Policy.ASK,
                        scope=_scope_json(default_scope(manifest)),
                        token_hash=hash_token(issued),
                        registered_at=at,
                        updated_at=at,
                    )
                )
                self.store.insert_manifest(manifest.app_id, manifest.version, manifest.to_json(), at)
                return Registration(manifest.app_id, issued, AppStatus.AWAITING_CONSENT, created=True)
            if not new_token and (token is None or not hmac.compare_digest(hash_token(token), record.token_hash)):
                raise ConflictError(
                    f"'{manifest.app_id}' is already registered by another program. To update its manifest, "
                    "send the app's own token; or choose another app_id."
                )
            old = self._manifest(record.app_id, record.manifest_version)
            issued = secrets.token_urlsafe(32) if new_token else (token or "")
            step = upgrade(old, manifest, record.status)
            if step is None:  # the same version again
                if new_token:
                    self.store.update_app(record.app_id, token_hash=hash_token(issued), updated_at=at)
                return Registration(record.app_id, issued, record.status, created=False)
            current = self.store.open_batch(record.app_id)
            if current is not None:
                self._close(current, record)
            status = step.status
            scope = carry_scope(Scope.from_obj(json.loads(record.scope)), old, manifest)
            self.store.insert_manifest(manifest.app_id, manifest.version, manifest.to_json(), at)
            self.store.update_app(
                record.app_id,
                name=manifest.name,
                vendor=manifest.vendor,
                endpoint=manifest.endpoint,
                manifest_version=manifest.version,
                status=status,
                scope=_scope_json(scope),
                token_hash=hash_token(issued) if new_token else record.token_hash,
                updated_at=at,
            )
            return Registration(record.app_id, issued, status, created=False, change=step.change)

    def authenticate(self, token: str) -> AppInfo:
        """The app a token belongs to. Tokens are stored only as SHA-256 hashes."""
        digest = hash_token(token)
        record = self.store.app_by_token_hash(digest) if token else None
        if record is None or not hmac.compare_digest(record.token_hash, digest):
            raise AuthError("The token is not valid. Use the token printed when the app was registered.")
        return self._app_info(record)

    def token_matches(self, app_id: str, token_sha256: str) -> bool:
        """Whether ``token_sha256`` is the hash of ``app_id``'s token (for the spool)."""
        record = self.store.app(app_id)
        return record is not None and hmac.compare_digest(record.token_hash, str(token_sha256))

    def replace_token(self, app_id: str, token: str) -> None:
        """Make ``token`` the app's token, stored as its hash: the one before stops working.
        For :meth:`Credentials.connect`, which issues it and keeps it in the keyring first."""
        if len(token) < 43:  # secrets.token_urlsafe(32): 256 bits
            raise InputError("An app's token must be at least 256 bits (43 characters).")
        with self._writing():
            self._app_record(app_id)
            self.store.update_app(app_id, token_hash=hash_token(token), updated_at=to_iso(self._now()))

    def drain_spool(self, spool: Spool) -> SpoolDrain:
        """Ingest what the client SDK spooled while no instance ran, and keep count of
        what full spools dropped (``Overview.spool_dropped``)."""
        drained = spool.drain(self.ingest, self.token_matches)
        if drained.dropped_by_clients:
            with self._writing():
                total = int(self.store.setting(_SPOOL_DROPPED) or 0) + drained.dropped_by_clients
                self.store.set_setting(_SPOOL_DROPPED, str(total))
        return drained

    def apps(self) -> list[AppInfo]:
        return [self._app_info(record) for record in self.store.apps()]

    def app(self, app_id: str) -> AppInfo:
        return self._app_info(self._app_record(app_id))

    def manifest_versions(self, app_id: str) -> list[Manifest]:
        """Every manifest version the app has registered, oldest first."""
        with self.store.read():
            self._app_record(app_id)
            return [self._manifest(app_id, version) for version in self.store.manifest_versions(app_id)]

    def set_consent(self, app_id: str, allow: bool) -> AppInfo:
        """Allow an app (held batches move on) or block it (everything undelivered is discarded)."""
        at = to_iso(self._now())
        with self._writing():
            self._app_record(app_id)
            if allow:
                self.store.update_app(app_id, status=AppStatus.ALLOWED, updated_at=at)
                self._route_held(app_id)
            else:
                self.store.update_app(app_id, status=AppStatus.BLOCKED, updated_at=at)
                for batch in self.store.batches((*UNDECIDED, APPROVED), app_id=app_id):
                    if not self.deliveries.in_flight(batch):
                        self.journal.discard(batch, by="person", reason="app blocked")
            return self.app(app_id)

    def set_policy(self, app_id: str, policy: Policy | str) -> AppInfo:
        if policy not in consent.POLICIES:
            raise InputError(f"'{policy}' is not a policy; use one of {', '.join(consent.POLICIES)}")
        with self._writing():
            self._app_record(app_id)
            self.store.update_app(app_id, policy=Policy(policy), updated_at=to_iso(self._now()))
            self._route_held(app_id)
            return self.app(app_id)

    def remove_app(self, app_id: str) -> int:
        """Forget an app: what it left undelivered is discarded (with receipts), then the
        app, its manifests and batches go. The history keeps its receipts. Returns how
        many batches were discarded. (Its keyring secret: :meth:`Credentials.remove_app`.)"""
        with self._writing():
            record = self._app_record(app_id)
            leftovers = self.store.batches((*UNDECIDED, APPROVED), app_id=app_id)
            if any(self.deliveries.in_flight(batch) for batch in leftovers):
                raise ConflictError(f"A batch of {record.name} is being sent right now; try again in a minute.")
            for batch in leftovers:
                self.journal.discard(batch, by="person", reason="app removed")
            self.store.delete_app(app_id)
        self._manifests = {key: m for key, m in self._manifests.items() if key[0] != app_id}
        return len(leftovers)

    def preference(self, key: str) -> str | None:
        """A shell's own setting (e.g. notifications on or off), kept in the database."""
        if key not in PREFERENCES:
            raise InputError(f"'{key}' is not a preference; known: {', '.join(sorted(PREFERENCES))}")
        value = self.store.setting(f"pref.{key}")
        return PREFERENCES[key] if value is None else value

    def set_preference(self, key: str, value: str) -> None:
        if key not in PREFERENCES:
            raise InputError(f"'{key}' is not a preference; known: {', '.join(sorted(PREFERENCES))}")
        with self._writing():
            self.store.set_setting(f"pref.{key}", value)

    # -- settings --------------------------------------------------------------------

    @property
    def paused_all(self) -> bool:
        return self.store.setting(_PAUSED_ALL) == "1"

    def set_paused_all(self, paused: bool) -> None:
        with self._writing():
            self.store.set_setting(_PAUSED_ALL, "1" if paused else "0")
            if not paused:
                self._route_held(None)

    @property
    def retention_days(self) -> int:
        value = self.store.setting(_RETENTION)
        return int(value) if value is not None else DEFAULT_RETENTION_DAYS

    def set_retention_days(self, days: int) -> None:
        if not 1 <= days <= MAX_RETENTION_DAYS:
            raise InputError(f"retention must be 1 to {MAX_RETENTION_DAYS} days, not {days}")
        with self._writing():
            self.store.set_setting(_RETENTION, str(days))

    # -- reports and batches ---------------------------------------------------------

    def ingest(self, app_id: str, reports: Sequence[object], *, key: str | None = None) -> IngestResult:
        """Check reports against the app's manifest and store the good ones.

        The reports are on disk when this returns. An app awaiting consent gets its
        reports held; a blocked app's reports are refused. With ``key`` (the request's
        Idempotency-Key) the same request sent again is answered as the first time and
        stored once; the same key with other reports is a :class:`ConflictError`.
        """
        now = self._now()
        record = self._app_record(app_id)
        self._refuse_blocked(record)
        manifest = self._manifest(app_id, record.manifest_version)
        check = check_reports(manifest, reports, now.date())
        if not check.accepted:
            return IngestResult.of(check, None)
        # Encoded and hashed before the write lock: other writers need not wait for it.
        bodies = [encode_report(r) for r in check.accepted]
        request_sha256 = _request_digest(reports, bodies) if key is not None else ""
        with self._writing():
            current = self._app_record(app_id)
            self._refuse_blocked(current)
            if current.manifest_version != manifest.version:
                # A new manifest version arrived meanwhile; check against that one.
                check = check_reports(self._manifest(app_id, current.manifest_version), reports, now.date())
                if not check.accepted:
                    return IngestResult.of(check, None)
                bodies = [encode_report(r) for r in check.accepted]
            if key is not None:
                earlier = self._earlier_request(app_id, key, request_sha256)
                if earlier is not None:
                    return earlier
            batch = self._collecting_batch(current, now)
            self.store.insert_reports(batch.batch_id, to_iso(now), bodies)
            if check.dropped:
                self.store.add_dropped(batch.batch_id, check.dropped)
            result = IngestResult.of(check, batch.batch_id)
            if key is not None:
                self.store.insert_ingest_key(app_id, key, request_sha256, result.answer(), to_iso(now))
            return result

    def _earlier_request(self, app_id: str, key: str, request_sha256: str) -> IngestResult | None:
        earlier = self.store.ingest_key(app_id, key)
        if earlier is None:
            return None
        if not hmac.compare_digest(earlier[0], request_sha256):
            raise ConflictError(
                f"The Idempotency-Key {key!r} was already used for other reports. Use a new key for each request."
            )
        return IngestResult.repeat(earlier[1])

    def close_batches(self, *, force: bool = False) -> list[ClosedBatch]:
        """Close open batches whose window has ended (all of them with ``force``)."""
        now_iso = to_iso(self._now())
        closed = []
        with self._writing():
            for batch in self.store.batches((OPEN,)):
                if force or batch.window_end <= now_iso:
                    status = self._close(batch, self._app_record(batch.app_id))
                    closed.append(ClosedBatch(batch.batch_id, batch.app_id, status))
        return closed

    def close_batch(self, batch_ref: str) -> ClosedBatch:
        """Close one collecting batch now, before its window ends (the review's *Close
        now*), and route it as the end of its window would: to the person, held, or by
        the app's policy. Reports arriving later start a new batch. Other apps' open
        batches are left as they are (``close_batches(force=True)`` closes every one)."""
        with self._writing():
            batch = self._find_batch(batch_ref)
            if batch.status != OPEN:
                raise ConflictError(f"Batch {batch.batch_id} is already {batch.status}: it is no longer collecting.")
            status = self._close(batch, self._app_record(batch.app_id))
            return ClosedBatch(batch.batch_id, batch.app_id, status)

    def earliest_window_end(self) -> str | None:
        """When the next open batch's window ends (ISO 8601), if any batch is open."""
        return self.store.earliest_window_end((OPEN,))

    def pending(self) -> list[BatchSummary]:
        """Batches waiting for a decision: open, held and pending."""
        with self.store.read():
            return [BatchSummary.of(b, self.store.report_count(b.batch_id)) for b in self.store.batches(UNDECIDED)]

    def batch_summary(self, batch_ref: str) -> BatchSummary:
        """One batch, whatever its status, with its report count (the receipt's once the
        reports are gone): what a shell watches to say when an approved batch was sent."""
        with self.store.read():
            batch = self._find_batch(batch_ref)
            return BatchSummary.of(batch, self.journal.reports_in(batch))

    def batch_scope(self, batch_ref: str) -> Scope:
        """The scope an undecided batch starts with (the app's saved scope, fitted)."""
        with self.store.read():
            batch = self._find_batch(batch_ref)
            record = self._app_record(batch.app_id)
            return self._scope_for(batch, record, self._manifest(batch.app_id, batch.manifest_version), None)

    def edited_scope(
        self,
        batch_ref: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        coarsen: Mapping[str, str] | None = None,
        mode: Mode | None = None,
        noise: Mapping[str, float | None] | None = None,
    ) -> Scope:
        """The batch's starting scope with these edits, every field name checked against
        the batch's manifest (a misspelt name is refused, never ignored); ``noise`` maps a
        field to its epsilon, or to None to remove its noise (:meth:`Scope.edited`)."""
        with self.store.read():
            batch = self._find_batch(batch_ref)
            record = self._app_record(batch.app_id)
            manifest = self._manifest(batch.app_id, batch.manifest_version)
            start = self._scope_for(batch, record, manifest, None)
            return start.edited(manifest, include=include, exclude=exclude, coarsen=coarsen, mode=mode, noise=noise)

    def view(self, batch_ref: str, scope: Scope | None = None) -> BatchView:
        """A batch with the payload it would send under ``scope`` (default: the app's),
        or the payload it did send once decided."""
        with self.store.read():
            batch = self._find_batch(batch_ref)
            record = self._app_record(batch.app_id)
            manifest = self._manifest(batch.app_id, batch.manifest_version)
            payload: Payload | None = None
            summary: Disclosure | None = None
            shown: Scope | None
            if batch.status in UNDECIDED:
                shown = self._scope_for(batch, record, manifest, scope)
                columns = self.previews.columns(batch, manifest, keep=True)
                payload = vendor_body(columns, frame(batch), manifest, shown)
                reports = columns.count
                # From the same columns the render used, and what was delivered before.
                sent = sent_scope(manifest, shown)  # DAP sends only what its tasks measure
                summary = summarize(columns, manifest, sent, self.earlier.earlier(batch), zone=self._zone())
            else:
                reports = self.journal.reports_in(batch)
                if scope is not None:
                    raise ConflictError(f"batch {batch.batch_id} is already {batch.status}; its scope is fixed")
                shown = Scope.from_obj(json.loads(batch.scope)) if batch.scope else None
                body = self.store.payload(batch.batch_id)
                if body is not None:
                    payload = Payload(body, sha256_hex(body))
                    summary = self._sent_summary(batch, manifest, shown, payload, reports)
            return BatchView(
                batch=batch,
                app=self._app_info(record),
                manifest=manifest,
                reports=reports,
                scope=shown,
                payload=payload,
                dropped=self.store.dropped(batch.batch_id),
                change=self._change_since_last_decision(batch),
                summary=summary,
            )

    def sent_summary(self, batch_ref: str) -> Disclosure | None:
        """What a decided batch sent, summarised from its stored payload (the history's
        "what was sent"), compared with the batches delivered before it; None once nothing
        is kept (discarded, purged) or the batch is undecided."""
        with self.store.read():
            batch = self._find_batch(batch_ref)
            body = self.store.payload(batch.batch_id) if batch.status not in UNDECIDED else None
            if body is None or not batch.scope:
                return None
            manifest = self._manifest(batch.app_id, batch.manifest_version)
            scope = Scope.from_obj(json.loads(batch.scope))
            payload = Payload(body, sha256_hex(body))
            return self._sent_summary(batch, manifest, scope, payload, self.journal.reports_in(batch))

    def _sent_summary(
        self, batch: BatchRecord, manifest: Manifest, scope: Scope | None, payload: Payload, reports: int
    ) -> Disclosure | None:
        sent = self.earlier.sent(batch, payload) if scope is not None else None
        if sent is None or scope is None:
            return None
        earlier = self.earlier.earlier(batch)
        return summarize_sent(sent, manifest, scope, earlier, reports=reports, zone=self._zone())

    def _zone(self) -> tzinfo:
        zone = self.zone or self.now().astimezone().tzinfo  # the machine's offset now
        assert zone is not None  # astimezone() always gives one
        return zone

    def approve(
        self,
        batch_ref: str,
        scope: Scope | None = None,
        *,
        expected_sha256: str | None = None,
        remember: bool = False,
    ) -> BatchView:
        """Approve a batch with ``scope`` (default: the app's saved scope).

        The payload is rendered, its bytes stored and its digest recorded in one
        transaction; if ``expected_sha256`` is given and the bytes differ (the batch
        changed since it was previewed) nothing is approved. ``remember`` makes the
        scope the app's saved scope and its policy ``approve``.
        """
        with self._writing():
            batch = self._find_batch(batch_ref)
            self._require_undecided(batch, "approve")
            if batch.status == OPEN and expected_sha256 is None:
                raise ConflictError(
                    f"Batch {batch.batch_id} is still collecting reports, so it may hold more than you saw.",
                    remedy=Remedy.CLOSE_BATCHES,
                )
            record = self._app_record(batch.app_id)
            if record.status != AppStatus.ALLOWED:
                raise ConflictError(
                    f"{record.name} is not allowed to send telemetry yet.",
                    remedy=Remedy.ALLOW_APP,
                    app_id=record.app_id,
                )
            manifest = self._manifest(batch.app_id, batch.manifest_version)
            chosen = self._scope_for(batch, record, manifest, scope)
            self._approve(batch, manifest, chosen, by="person", expected_sha256=expected_sha256)
            if remember:
                current = self._manifest(record.app_id, record.manifest_version)
                saved = carry_scope(chosen, manifest, current) if current.version != manifest.version else chosen
                self.store.update_app(
                    record.app_id, scope=_scope_json(saved), policy=Policy.APPROVE, updated_at=to_iso(self._now())
                )
            return self.view(batch.batch_id)

    def discard(self, batch_ref: str) -> BatchView:
        """Discard a batch: its reports are deleted and nothing is sent, not even a notice."""
        with self._writing():
            batch = self._find_batch(batch_ref)
            self._require_undecided(batch, "discard")
            self.journal.discard(batch, by="person")
            return self.view(batch.batch_id)

    def withdraw(self, batch_ref: str) -> BatchView:
        """Take back the approval of a batch not sent yet: it is discarded and nothing is
        sent, recorded as a ``discarded`` receipt with the reason ``withdrawn``. Refused
        (:class:`ConflictError`) while it is being sent, and for a batch not approved."""
        with self._writing():
            batch = self._find_batch(batch_ref)
            self.deliveries.withdraw(batch.batch_id)
            return self.view(batch.batch_id)

    def retry_now(self, batch_ref: str) -> bool:
        """Send an approved batch now instead of at its next scheduled try (the running
        instance's sender wakes). False when it is being sent right now."""
        with self._writing():
            return self.deliveries.retry_now(self._find_batch(batch_ref).batch_id)

    def undelivered(self) -> list[OpenDelivery]:
        """Approved batches not delivered yet: due, in flight, retrying or waiting for credentials."""
        return self.deliveries.undelivered()

    # -- history and retention -------------------------------------------------------

    def history(self, app_id: str | None = None) -> list[Receipt]:
        return self.store.receipts(app_id=app_id)

    def failures_since(self, hours: float = 24) -> int:
        """How many deliveries failed for good in the last ``hours`` (for the tray's state)."""
        return self.store.count_receipts(Action.FAILED, to_iso(self._now() - timedelta(hours=hours)))

    def verify_history(self) -> ChainCheck:
        return verify_chain(self.store.receipts())

    def apply_retention(self) -> RetentionSweep:
        """Expire undecided (and undelivered) batches older than the retention period,
        and purge stored payloads of finished batches older than it."""
        now = self._now()
        days = self.retention_days
        cutoff = to_iso(now - timedelta(days=days))
        expired, purged = [], []
        in_flight = self.deliveries.in_flight
        with self._writing():
            # Undecided batches age from the end of their window; approved ones from the
            # approval (the person agreed to send them then, not when they were collected).
            stale = [
                *self.store.batches(UNDECIDED, window_end_before=cutoff),
                *(b for b in self.store.batches((APPROVED,), decided_before=cutoff) if not in_flight(b)),
            ]
            for batch in stale:
                self.journal.expire(batch, days=days)
                expired.append(batch.batch_id)
            for batch in self.store.batches((DELIVERED, FAILED), decided_before=cutoff, with_payload=True):
                self.journal.purge(batch)
                purged.append(batch.batch_id)
        return RetentionSweep(expired, purged)

    def tidy(self) -> tuple[list[ClosedBatch], RetentionSweep]:
        """The housekeeping due now: close ended windows, apply retention. Shells call
        it when they start and the running instance on a schedule, so a batch is never
        decided, shown or sent after it should have expired."""
        return self.close_batches(), self.apply_retention()

    def forget_request_keys(self) -> int:
        """Forget Idempotency-Keys older than :data:`INGEST_KEY_TTL`. Only the process that
        drains the spool calls it, right after a drain that left the spool empty: a
        spooled request keeps its key remembered however long the tray was off."""
        with self._writing():
            return self.store.purge_ingest_keys(to_iso(self._now() - INGEST_KEY_TTL))

    def overview(self) -> Overview:
        """The state at a glance, in one read: what ``status`` prints and what the tray
        and its menu show."""
        with self.store.read():
            apps = self.store.apps()
            batches = {status: self.store.batches((status,)) for status in (OPEN, HELD, PENDING, APPROVED)}
            waiting: dict[str, list[str]] = {}
            for batch in batches[PENDING]:
                waiting.setdefault(batch.app_id, []).append(batch.batch_id)
            asking = tuple(a.app_id for a in apps if a.status == AppStatus.AWAITING_CONSENT)
            undelivered = self.deliveries.undelivered()
            return Overview(
                apps=len(apps),
                awaiting_consent=len(asking),
                open=len(batches[OPEN]),
                held=len(batches[HELD]),
                pending=len(batches[PENDING]),
                approved=len(batches[APPROVED]),
                paused_all=self.paused_all,
                retention_days=self.retention_days,
                spool_dropped=int(self.store.setting(_SPOOL_DROPPED) or 0),
                names={a.app_id: a.name for a in apps},
                asking=asking,
                waiting={app_id: tuple(ids) for app_id, ids in waiting.items()},
                failed_recently=self.failures_since(24),
                waiting_for_credentials=sum(1 for d in undelivered if d.waiting_for == "credentials"),
                undelivered=tuple(undelivered),
                at=to_iso(self._now()),
            )

    def export_history(self, path: str | os.PathLike[str]) -> ChainExport:
        """Write the whole hash chain as JSON (:func:`~.rules.receipts.export_chain`, made
        now) to ``path``: a private file (0600) in the folder given, which must exist (it is
        the person's: neither created nor changed), put in place in one step, so never half
        written, and flushed to the disk (the person may take it away at once). What the
        History window's *Export…* and ``history --export FILE`` both call."""
        from pathlib import Path

        with self.store.read():
            exported = chain_export(self.store.receipts(), to_iso(self._now()))
        write_file_whole(Path(path), exported.body, durable=True)
        return exported

    # -- internals (callers hold the write lock where they change state) -------------

    def _app_record(self, app_id: str) -> AppRecord:
        record = self.store.app(app_id)
        if record is None:
            raise NotFoundError(f"No app '{app_id}' is registered.", remedy=Remedy.SEE_APPS, app_id=app_id)
        return record

    def _app_info(self, record: AppRecord) -> AppInfo:
        return AppInfo.of(record, self._manifest(record.app_id, record.manifest_version))

    def _manifest(self, app_id: str, version: int) -> Manifest:
        # Cached by the stored text, not the version alone: another process (the CLI's
        # remove, then a new registration) may have replaced this version's manifest, and
        # a stale one would check reports and send batches by rules nobody agreed to.
        body = self.store.manifest_body(app_id, version)
        if body is None:
            raise NotFoundError(f"Manifest version {version} of '{app_id}' is missing from the database.")
        key = (app_id, version, body)
        manifest = self._manifests.get(key)
        if manifest is None:
            manifest = manifest_from_obj(json.loads(body))
            self._manifests[key] = manifest
        return manifest

    def _refuse_blocked(self, record: AppRecord) -> None:
        if record.status == AppStatus.BLOCKED:
            raise BlockedError(
                f"The person blocked {record.name}; its reports are not accepted.",
                remedy=Remedy.PERSON_ALLOWS,
                app_id=record.app_id,
            )

    def _find_batch(self, ref: str) -> BatchRecord:
        batch = self.store.batch(ref)
        if batch is not None:
            return batch
        matches = self.store.batches_with_prefix(ref) if len(ref) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InputError(f"'{ref}' matches more than one batch; give more of the batch id")
        raise NotFoundError(f"No batch '{ref}'.", remedy=Remedy.SEE_PENDING)

    def _require_undecided(self, batch: BatchRecord, verb: str) -> None:
        if batch.status not in UNDECIDED:
            raise ConflictError(f"Batch {batch.batch_id} is already {batch.status}; there is nothing to {verb}.")

    def _collecting_batch(self, record: AppRecord, now: datetime) -> BatchRecord:
        """The open batch the app's reports go into now, opening a new one if needed."""
        batch = self.store.open_batch(record.app_id)
        now_iso = to_iso(now)
        if batch is not None and (
            not batch.window_start <= now_iso < batch.window_end or batch.manifest_version != record.manifest_version
        ):
            self._close(batch, record)
            batch = None
        before_consent = record.status != AppStatus.ALLOWED
        if batch is None:
            manifest = self._manifest(record.app_id, record.manifest_version)
            start, end = window_for(manifest.cadence, now)
            batch = BatchRecord(
                batch_id=secrets.token_hex(16),
                app_id=record.app_id,
                manifest_version=record.manifest_version,
                window_start=to_iso(start),
                window_end=to_iso(end),
                status=OPEN,
                before_consent=before_consent,
                created_at=to_iso(now),
            )
            # The secret its noise is drawn from (rules/noise.py), made once with the batch.
            self.store.insert_batch(batch, noise_seed=secrets.token_bytes(SEED_BYTES))
        elif before_consent and not batch.before_consent:
            self.store.update_batch(batch.batch_id, before_consent=True)
        return batch

    def _close(self, batch: BatchRecord, record: AppRecord) -> BatchStatus:
        self.store.update_batch(batch.batch_id, closed_at=to_iso(self._now()))
        return self._route(batch, record)

    def _route_held(self, app_id: str | None) -> None:
        for batch in self.store.batches((HELD,), app_id=app_id):
            self._route(batch, self._app_record(batch.app_id))

    def _route(self, batch: BatchRecord, record: AppRecord) -> BatchStatus:
        where = consent.route(
            record.status, record.policy, paused_all=self.paused_all, before_consent=batch.before_consent
        )
        if where == Route.APPROVE:
            manifest = self._manifest(batch.app_id, batch.manifest_version)
            self._approve(batch, manifest, self._scope_for(batch, record, manifest, None), by="policy")
            return APPROVED
        if where == Route.DISCARD:
            self.journal.discard(batch, by="policy")
            return DISCARDED
        status = HELD if where == Route.HELD else PENDING
        self.store.update_batch(batch.batch_id, status=status)
        return status

    def _scope_for(self, batch: BatchRecord, record: AppRecord, manifest: Manifest, scope: Scope | None) -> Scope:
        today = self._now().date()
        if scope is not None:
            return fit_scope(check_scope(scope, manifest), manifest, today)
        saved = Scope.from_obj(json.loads(record.scope))
        if record.manifest_version != manifest.version:
            # The saved scope speaks of the current manifest; this batch is older.
            current = self._manifest(record.app_id, record.manifest_version)
            if manifest.version < current.version:
                saved = carry_scope(saved, current, manifest)
        return fit_scope(saved, manifest, today)

    def forget_preview(self) -> None:
        """Let go of the decoded reports kept for previews (the review window closed)."""
        self.previews.forget()

    def _approve(
        self,
        batch: BatchRecord,
        manifest: Manifest,
        scope: Scope,
        *,
        by: str,
        expected_sha256: str | None = None,
    ) -> None:
        payload = vendor_body(self.previews.columns(batch, manifest, keep=False), frame(batch), manifest, scope)
        if expected_sha256 is not None and payload.sha256 != expected_sha256.lower():
            raise DigestMismatch(
                f"Batch {batch.batch_id} now renders to {payload.sha256[:12]}…, not the "
                f"{expected_sha256[:12]}… that was previewed. Look at it again before approving."
            )
        count = self.store.report_count(batch.batch_id)
        at = to_iso(self._now())
        self.store.update_batch(
            batch.batch_id,
            status=APPROVED,
            closed_at=batch.closed_at or at,
            decided_at=at,
            decided_by=by,
            scope=_scope_json(scope),
            endpoint=destination(manifest, scope),
            payload=payload.body,
            payload_sha256=payload.sha256,
            payload_bytes=payload.size,
        )
        # The reports are not needed once the exact bytes are kept: excluded data goes now.
        self.previews.delete_reports(batch.batch_id)
        self.store.insert_delivery(batch.batch_id, at)
        self._announce()
        self.journal.approved(batch, by=by, reports=count, payload=payload, scope=scope, manifest=manifest)

    def _change_since_last_decision(self, batch: BatchRecord) -> ManifestChange | None:
        last = self.store.last_manifest_version(batch.app_id, DECIDED)
        if last is None or last >= batch.manifest_version:
            return None
        return diff_manifests(self._manifest(batch.app_id, last), self._manifest(batch.app_id, batch.manifest_version))


def _scope_json(scope: Scope) -> str:
    # Stored as text and only ever parsed back (never compared as text), in canonical
    # JSON; a scope's names and levels are ASCII, so the text is as it always was.
    return canonical_json(scope.to_obj())


def _request_digest(reports: Sequence[object], bodies: list[str]) -> str:
    """What identifies a report request under its Idempotency-Key: the reports as sent
    (decoded, in order), not as checked, which a new manifest version or an expiry date
    passing meanwhile would change for the very same request."""
    try:
        text = json.dumps(list(reports), separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON after all (a Python caller's objects, a 5,000-digit int)
        text = "\x1e".join(bodies)
    return sha256_hex(text.encode("utf-8"))
