"""The decoded reports of the batch a person is looking at, kept between renders.

Re-rendering a batch under another scope (every edit in the review window), and then
approving it, need not decode its reports again: the columns are kept as long as the
batch's reports are unchanged (the same count and last row), and let go of when its
reports are deleted or the review window closes. It reads and deletes rows only inside
the broker's transactions.
"""

from __future__ import annotations

import threading

from .rules.columns import ReportColumns
from .rules.manifest import Manifest
from .rules.payload import BatchFrame
from .storage.store import BatchRecord, Store


def frame(batch: BatchRecord) -> BatchFrame:
    """What a payload says of its batch."""
    return BatchFrame(batch.app_id, batch.batch_id, batch.manifest_version, batch.window_start, batch.window_end)


class Previews:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._kept: tuple[tuple[str, int, int], ReportColumns] | None = None
        self._lock = threading.Lock()

    def columns(self, batch: BatchRecord, manifest: Manifest, *, keep: bool) -> ReportColumns:
        """The batch's reports, decoded; ``keep`` holds on to them for the next render
        (a person is looking at the batch and may change its scope)."""
        stamp = (batch.batch_id, *self._store.report_stamp(batch.batch_id))
        with self._lock:
            cached = self._kept
        if cached is not None and cached[0] == stamp:
            return cached[1]
        seed = self._store.noise_seed(batch.batch_id)  # the secret the noise of its scopes is drawn from
        columns = ReportColumns.decode(manifest, self._store.report_bodies(batch.batch_id), noise_seed=seed)
        if keep:
            with self._lock:
                self._kept = (stamp, columns)
        return columns

    @property
    def kept_batch(self) -> str | None:
        """The batch whose decoded reports are kept, if any."""
        with self._lock:
            return self._kept[0][0] if self._kept is not None else None

    def forget(self) -> None:
        """Let go of the decoded reports kept (the review window closed)."""
        with self._lock:
            self._kept = None

    def delete_reports(self, batch_id: str) -> int:
        """Delete a batch's reports (and any decoded copy of them); how many there were."""
        with self._lock:
            if self._kept is not None and self._kept[0][0] == batch_id:
                self._kept = None
        return self._store.delete_reports(batch_id)
