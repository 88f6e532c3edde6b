"""What the app's delivered batches sent, read back from their stored payloads, kept by batch id.

"What this batch says" compares a batch with the app's earlier delivered batches (DESIGN.md,
principle 7), and the history shows what a decided batch sent. Both read stored payloads
(:mod:`.rules.sent_values`); a payload never changes once stored (it is only ever purged), so
what was read of one is kept under its batch id and opening the review again parses nothing
again. Kept: the distinct values of each field that can link (small), for every delivered
batch up to a bound, and the full counts of the last few batches whose own summary was asked.
Reads only, inside the caller's transaction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from .errors import TrayError
from .rules.consent import DELIVERED, UNDECIDED
from .rules.manifest import Manifest
from .rules.payload import Payload
from .rules.sent_values import EarlierValues, SentValues, earlier_values, linkable_values, sent_values
from .storage.store import BatchRecord, Store

# How many distinct values the kept earlier batches may hold in all (a few megabytes), and
# how many batches' full counts are kept for their own summaries (the history's last clicks).
MAX_KEPT_VALUES = 250_000
MAX_KEPT_SENT = 4

_Linkable = dict[str, frozenset[str]]


class EarlierBatches:
    def __init__(self, store: Store, manifest: Callable[[str, int], Manifest]) -> None:
        self._store = store
        self._manifest = manifest
        self._lock = threading.Lock()
        self._linkable: OrderedDict[str, tuple[_Linkable, int]] = OrderedDict()  # batch id → (values, weight)
        self._weight = 0
        self._sent: OrderedDict[tuple[str, str], SentValues] = OrderedDict()  # (batch id, sha256)

    def earlier(self, batch: BatchRecord) -> EarlierValues:
        """The values the app's delivered batches sent before ``batch`` (all of them, for an
        undecided batch): those whose payloads are kept compared, the purged ones counted."""
        app_id = batch.app_id
        kept = [b for b in self._store.batches((DELIVERED,), app_id=app_id, with_payload=True) if _before(b, batch)]
        gone = [b for b in self._store.batches((DELIVERED,), app_id=app_id, with_payload=False) if _before(b, batch)]
        for other in gone:
            self.forget(other.batch_id)  # what retention purged is not remembered here either
        compared: list[_Linkable] = []
        purged = len(gone)
        for other in kept:
            values = self._linkable_of(other)
            if values is None:
                purged += 1
            else:
                compared.append(values)
        return earlier_values(compared, purged=purged)

    def sent(self, batch: BatchRecord, payload: Payload) -> SentValues | None:
        """What a decided batch's stored ``payload`` sent (None if it cannot be read), kept
        by batch id and digest, so nothing but these very bytes is ever answered for."""
        key = (batch.batch_id, payload.sha256)
        with self._lock:
            kept = self._sent.get(key)
            if kept is not None:
                self._sent.move_to_end(key)
                return kept
        read = self._parse(batch, payload.body)
        if read is not None:
            with self._lock:
                self._sent[key] = read
                while len(self._sent) > MAX_KEPT_SENT:
                    self._sent.popitem(last=False)
        return read

    def forget(self, batch_id: str) -> None:
        """Let go of what was read of a batch (its payload was purged)."""
        with self._lock:
            for key in [key for key in self._sent if key[0] == batch_id]:
                del self._sent[key]
            dropped = self._linkable.pop(batch_id, None)
            if dropped is not None:
                self._weight -= dropped[1]

    def _linkable_of(self, batch: BatchRecord) -> _Linkable | None:
        with self._lock:
            kept = self._linkable.get(batch.batch_id)
            if kept is not None:
                self._linkable.move_to_end(batch.batch_id)
                return kept[0]
        read = self._read(batch)
        if read is None:
            return None
        values = linkable_values(read, self._manifest(batch.app_id, batch.manifest_version))
        weight = 1 + sum(len(distinct) for distinct in values.values())
        with self._lock:
            if batch.batch_id not in self._linkable:
                self._linkable[batch.batch_id] = (values, weight)
                self._weight += weight
            while self._weight > MAX_KEPT_VALUES and len(self._linkable) > 1:
                self._weight -= self._linkable.popitem(last=False)[1][1]
        return values

    def _read(self, batch: BatchRecord) -> SentValues | None:
        body = self._store.payload(batch.batch_id)
        return None if body is None else self._parse(batch, body)  # None: purged by retention

    def _parse(self, batch: BatchRecord, body: bytes) -> SentValues | None:
        try:
            return sent_values(body, self._manifest(batch.app_id, batch.manifest_version))
        except TrayError:
            return None  # not readable as its format (or its manifest is gone): not compared


def _before(other: BatchRecord, batch: BatchRecord) -> bool:
    """Whether ``other`` (delivered) was decided before ``batch``: every other delivered batch
    is before an undecided one; decided ones go by when they were decided."""
    if other.batch_id == batch.batch_id:
        return False
    if batch.status in UNDECIDED or batch.decided_at is None:
        return True
    return (other.decided_at or "", other.created_at, other.batch_id) < (
        batch.decided_at,
        batch.created_at,
        batch.batch_id,
    )
