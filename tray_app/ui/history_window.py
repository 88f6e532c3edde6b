"""The History window: every decision and delivery, what was sent, where, when and the
vendor's answer; filter by app and outcome, export the chain as JSON, verify it.

Above the receipts, the batches approved and not delivered yet: each with why it has not
got through, in words (:meth:`OpenDelivery.words`), and what can be done about it: *Retry
now*, *Set credentials…* (Settings opens at the app's credentials: :attr:`HistoryWindow.
credentials_requested`) and *Withdraw…* (asked first; the approval is taken back and the
batch discarded, :meth:`Broker.withdraw`).

Times are local (:mod:`.local_time`); colours come from the palette (:mod:`.look`).

Every broker call runs on the thread pool through :func:`tray_app.ui.worker.run_task`;
the UI thread only turns finished results into widgets. Answers that arrive after the
person has moved on (another row, a newer refresh) are dropped, not shown.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QBrush,
    QCloseEvent,
    QFontDatabase,
    QGuiApplication,
    QKeySequence,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableView,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import Shiboken

from ..core import (
    ACTIONS,
    DETAIL_LABELS,
    GENESIS,
    PREVIEW_CHARS,
    Action,
    BatchStatus,
    Broker,
    ChainCheck,
    DeliveryAction,
    DeliveryStage,
    Disclosure,
    NotFoundError,
    OpenDelivery,
    Receipt,
    Scope,
    ScopeError,
    TrayError,
    error_words,
    plain_text,
    plainly,
    scope_sentence,
    status_words,
)
from .disclosure_panel import DisclosurePanel
from .local_time import local_time, when_words, window_words
from .look import Tone, banner_style, fit_to_screen, install_focus_ring, notice_style, tint, tone_colour
from .remedies import told
from .worker import Latest, run_task

ModelIndex = QModelIndex | QPersistentModelIndex

ACTION_WORDS: dict[str, str] = {
    Action.APPROVED: "Approved",
    Action.DISCARDED: "Discarded",
    Action.DELIVERED: "Delivered",
    Action.RETRYING: "Retrying",
    Action.FAILED: "Failed",
    Action.EXPIRED: "Expired",
}
# Each outcome's tone; the colour is the palette's (look.tone_colour), so a dark palette reads too.
_ACTION_TONES: dict[str, Tone] = {
    Action.APPROVED: Tone.INFO,
    Action.DISCARDED: Tone.NEUTRAL,
    Action.DELIVERED: Tone.GOOD,
    Action.RETRYING: Tone.WARNING,
    Action.FAILED: Tone.ERROR,
    Action.EXPIRED: Tone.NEUTRAL,
}
_DECIDERS = {"person": "you", "policy": "this app's standing default"}
_HEX_ROWS = {"Batch", DETAIL_LABELS["payload_sha256"], "Receipt hash", "Previous hash"}


# -- words for receipts (pure functions, no Qt) ----------------------------------------


def host_of(endpoint: str) -> str:
    return urlsplit(endpoint).hostname or endpoint


def size_words(size: int, *, short: bool = False) -> str:
    if size < 1024:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    return f"{size / 1024:.1f} KiB" if short else f"{size / 1024:.1f} KiB ({size:,} bytes)"


def _reports_words(count: int) -> str:
    return "1 report" if count == 1 else f"{count} reports"


def _status_words(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return status_words(status)


def _what_it_means(receipt: Receipt) -> str:
    """A send's answer in words ("nothing answers at t.example.org"), for a person who does
    not read ``ConnectError: [Errno 111]``; "" for a delivery."""
    d = receipt.detail
    if receipt.action not in (Action.RETRYING, Action.FAILED):
        return ""
    status = int(d["status"]) if d.get("status") is not None else None
    host = host_of(str(d.get("endpoint") or "")) or "the vendor"
    _short, reason = error_words(status, str(d.get("error") or ""), host)
    # An error nobody put in words yet is shown as it came (plain), not hidden behind a vague phrase.
    return "" if reason == error_words(None, "", host)[1] else reason


def scope_words(scope: object) -> str:
    """A scope (as stored in a receipt) in a sentence."""
    try:
        return scope_sentence(Scope.from_obj(scope))
    except ScopeError:
        return str(scope)


def summarize(receipt: Receipt) -> str:
    """One line for the table: the gist of a receipt's detail."""
    d = receipt.detail
    parts: list[str] = []
    if receipt.action in (Action.APPROVED, Action.DISCARDED):
        parts.append(f"by {_DECIDERS.get(str(d.get('by')), str(d.get('by', '?')))}")
        if "reports" in d:
            parts.append(_reports_words(int(d["reports"])))
        if receipt.action == Action.APPROVED:
            if "payload_bytes" in d:
                parts.append(size_words(int(d["payload_bytes"]), short=True))
            if d.get("endpoint"):
                parts.append(f"for {host_of(str(d['endpoint']))}")
        else:
            parts.append("nothing sent")
    elif receipt.action in (Action.DELIVERED, Action.RETRYING, Action.FAILED):
        if d.get("status") is not None:
            parts.append(_status_words(int(d["status"])))
        elif d.get("error"):
            parts.append(f"no answer: {_what_it_means(receipt) or plain_text(str(d['error']))}")
        if d.get("endpoint"):
            parts.append(("from " if "status" in d else "at ") + host_of(str(d["endpoint"])))
        if "attempts" in d:
            parts.append(f"attempt {d['attempts']}")
        if receipt.action == Action.RETRYING and d.get("next_attempt_at"):
            parts.append(f"next try {local_time(str(d['next_attempt_at']))}")
        if receipt.action == Action.FAILED:
            parts.append("gave up")
        if d.get("request_id"):
            parts.append(f"request {plain_text(str(d['request_id']))}")
    elif receipt.action == Action.EXPIRED:
        if d.get("purged"):
            parts.append(f"stored {d['purged']} purged")
        if d.get("reason"):
            parts.append(plain_text(str(d["reason"])))
        if "reports" in d:
            parts.append(f"{_reports_words(int(d['reports']))} deleted")
    if d.get("reason") and receipt.action != Action.EXPIRED:
        parts.append(plain_text(str(d["reason"])))
    return " · ".join(parts)


def describe(receipt: Receipt, app_name: str | None = None) -> list[tuple[str, str]]:
    """A receipt's fields in words, as (label, value) rows, nothing left out."""
    d, label = receipt.detail, DETAIL_LABELS
    rows: list[tuple[str, str]] = [
        ("When", when_words(receipt.at)),
        ("Outcome", ACTION_WORDS.get(receipt.action, receipt.action)),
        ("App", f"{app_name} ({receipt.app_id})" if app_name and app_name != receipt.app_id else receipt.app_id),
        ("Batch", receipt.batch_id),
    ]
    if "by" in d:
        rows.append((label["by"], _DECIDERS.get(str(d["by"]), str(d["by"]))))
    if "reports" in d:
        rows.append((label["reports"], str(d["reports"])))
    if "scope" in d:
        rows.append((label["scope"], scope_words(d["scope"])))
    if d.get("endpoint"):
        rows.append((label["endpoint"], str(d["endpoint"])))
    if "manifest_version" in d:
        rows.append((label["manifest_version"], str(d["manifest_version"])))
    sends = receipt.action in (Action.DELIVERED, Action.RETRYING, Action.FAILED)
    if sends and d.get("status") is not None:
        rows.append((label["status"], _status_words(int(d["status"]))))
    elif sends:
        rows.append((label["status"], "none (the request did not get through)"))
    elif d.get("status") is not None:  # a purge: the batch's status then, not an HTTP one
        rows.append(("Batch status", str(d["status"])))
    # The vendor's words (an error answer, a request id header): shown, never obeyed, so
    # a bidi override or an escape sequence in them is spelt out.
    if _what_it_means(receipt):
        rows.append(("What it means", _what_it_means(receipt)))
    if d.get("error"):
        rows.append((label["error"], plain_text(str(d["error"]))))
    if d.get("request_id"):
        rows.append((label["request_id"], plain_text(str(d["request_id"]))))
    if "attempts" in d:
        rows.append((label["attempts"], str(d["attempts"])))
    if d.get("elapsed_ms") is not None:
        rows.append((label["elapsed_ms"], f"{d['elapsed_ms']} ms"))
    if d.get("next_attempt_at"):
        rows.append((label["next_attempt_at"], f"{local_time(str(d['next_attempt_at']))} (local)"))
    if "payload_bytes" in d:
        rows.append((label["payload_bytes"], size_words(int(d["payload_bytes"]))))
    if d.get("payload_sha256"):
        rows.append((label["payload_sha256"], str(d["payload_sha256"])))
    if d.get("reason"):
        rows.append((label["reason"], plain_text(str(d["reason"]))))
    if d.get("purged"):
        rows.append((label["purged"], f"the stored {d['purged']} was deleted at the end of the retention period"))
    for key in sorted(set(d) - set(DETAIL_LABELS)):
        rows.append((key.replace("_", " ").capitalize(), plainly(json.dumps(d[key], ensure_ascii=False))))
    rows.append(("Receipt", f"#{receipt.seq} in the hash chain"))
    rows.append(("Receipt hash", receipt.hash))
    rows.append(("Previous hash", receipt.prev_hash))
    return rows


# -- background work (runs on the pool) --------------------------------------------------


@dataclass(frozen=True)
class HistorySnapshot:
    """What one refresh loads: all receipts, the apps' names, the retention period, and the
    batches approved and not delivered yet (with the broker's time and Pause all, which
    their words count from)."""

    receipts: list[Receipt]
    app_names: dict[str, str]
    retention_days: int
    undelivered: list[OpenDelivery] = field(default_factory=list)
    now: datetime | None = None
    paused: bool = False


@dataclass(frozen=True)
class StoredPayload:
    """What a batch keeps of what it sent. ``body`` is ``None`` when nothing is kept;
    ``status`` is the batch's status, or ``"gone"`` when the batch no longer exists."""

    batch_id: str
    status: str
    body: bytes | None
    sha256: str | None = None
    pretty: str = ""
    summary: Disclosure | None = None  # what it says about the person (from the stored bytes)


@dataclass(frozen=True)
class ExportResult:
    path: str
    count: int
    head: str
    verified: bool


def load_snapshot(broker: Broker) -> HistorySnapshot:
    with broker.reading():
        receipts = broker.history()
        names = {app.app_id: app.name for app in broker.apps()}
        return HistorySnapshot(
            receipts, names, broker.retention_days, broker.undelivered(), broker.now(), broker.paused_all
        )


def load_payload(broker: Broker, batch_id: str) -> StoredPayload:
    try:
        view = broker.view(batch_id)
    except NotFoundError:
        return StoredPayload(batch_id, "gone", None)
    if view.payload is None:
        return StoredPayload(batch_id, view.batch.status, None)
    payload = view.payload
    try:
        # Only the start of a big one: laying out megabytes would freeze the window.
        pretty, more = payload.pretty_start(PREVIEW_CHARS)
        pretty = plainly(pretty)
        if more:
            pretty += f"\n… (the first {PREVIEW_CHARS // 1024} KiB of {payload.size:,} bytes)"
    except ValueError:
        pretty = payload.body[:PREVIEW_CHARS].decode("utf-8", errors="replace")
    return StoredPayload(batch_id, view.batch.status, payload.body, payload.sha256, pretty, view.summary)


def write_export(broker: Broker, path: str) -> ExportResult:
    """Write the whole chain as JSON to ``path``: the core's export
    (:meth:`Broker.export_history`), the same bytes as ``history --export FILE``."""
    exported = broker.export_history(path)
    return ExportResult(str(Path(path)), exported.count, exported.head, exported.verified)


# -- models --------------------------------------------------------------------------------


class HistoryModel(QAbstractTableModel):
    """The receipts as a table: When, Action, App, Batch, Summary."""

    WHEN, ACTION, APP, BATCH, SUMMARY = range(5)
    HEADERS = ("When", "Action", "App", "Batch", "Summary")
    ReceiptRole = Qt.ItemDataRole.UserRole + 1
    SortRole = Qt.ItemDataRole.UserRole + 2
    SearchRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._receipts: list[Receipt] = []
        self._names: dict[str, str] = {}
        self._summaries: list[str] = []
        self._rows_by_seq: dict[int, int] = {}
        self._bad_seq: int | None = None

    def set_receipts(self, receipts: Sequence[Receipt], app_names: Mapping[str, str]) -> None:
        self.beginResetModel()
        self._receipts = list(receipts)
        self._names = dict(app_names)
        self._summaries = [summarize(r) for r in self._receipts]
        self._rows_by_seq = {r.seq: row for row, r in enumerate(self._receipts)}
        self.endResetModel()

    def receipts(self) -> list[Receipt]:
        return list(self._receipts)

    def receipt(self, row: int) -> Receipt:
        return self._receipts[row]

    def row_of(self, seq: int) -> int | None:
        return self._rows_by_seq.get(seq)

    def app_name(self, app_id: str) -> str:
        return self._names.get(app_id, app_id)

    def app_names(self) -> dict[str, str]:
        return dict(self._names)

    @property
    def bad_seq(self) -> int | None:
        return self._bad_seq

    def set_bad_seq(self, seq: int | None) -> None:
        """Mark the receipt where the chain breaks (and every one after it)."""
        if seq == self._bad_seq:
            return
        self._bad_seq = seq
        if self._receipts:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._receipts) - 1, len(self.HEADERS) - 1))

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._receipts)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._receipts):
            return None
        receipt = self._receipts[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self._display(receipt, index.row(), column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(receipt, index.row(), column)
        if role == self.SortRole:
            return self._sort_key(receipt, index.row(), column)
        if role == self.ReceiptRole:
            return receipt
        if role == self.SearchRole:
            words = (receipt.at, receipt.action, receipt.app_id, self.app_name(receipt.app_id), receipt.batch_id)
            return " ".join((*words, self._summaries[index.row()])).casefold()
        broken = self._bad_seq is not None and receipt.seq >= self._bad_seq
        if role == Qt.ItemDataRole.BackgroundRole and broken:
            return QBrush(tint(QGuiApplication.palette(), Tone.ERROR))
        if role == Qt.ItemDataRole.ForegroundRole and column == self.ACTION:
            tone = Tone.ERROR if broken else _ACTION_TONES.get(receipt.action)
            return QBrush(tone_colour(QGuiApplication.palette(), tone)) if tone is not None else None
        return None

    def palette_changed(self) -> None:
        """The colours follow the palette: every row is drawn again."""
        if self._receipts:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._receipts) - 1, len(self.HEADERS) - 1))

    def _display(self, receipt: Receipt, row: int, column: int) -> str:
        if column == self.WHEN:
            return local_time(receipt.at)
        if column == self.ACTION:
            return ACTION_WORDS.get(receipt.action, receipt.action)
        if column == self.APP:
            return self.app_name(receipt.app_id)
        if column == self.BATCH:
            return receipt.batch_id[:12]
        return self._summaries[row]

    def _tooltip(self, receipt: Receipt, row: int, column: int) -> str:
        if self._bad_seq is not None and receipt.seq >= self._bad_seq:
            return f"Receipt #{receipt.seq} is at or after the break in the hash chain: it cannot be trusted."
        if column == self.WHEN:
            return f"{when_words(receipt.at)}, receipt #{receipt.seq}"
        if column == self.APP:
            return receipt.app_id
        if column == self.BATCH:
            return receipt.batch_id
        return self._summaries[row] if column == self.SUMMARY else ""

    def _sort_key(self, receipt: Receipt, row: int, column: int) -> Any:
        if column == self.WHEN:
            return receipt.seq
        if column == self.ACTION:
            return receipt.action
        if column == self.APP:
            return self.app_name(receipt.app_id).casefold()
        if column == self.BATCH:
            return receipt.batch_id
        return self._summaries[row].casefold()


class HistoryFilter(QSortFilterProxyModel):
    """Rows of one app and/or one outcome, containing a text; sorted by the model's sort keys."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._app_id: str | None = None
        self._action: str | None = None
        self._text = ""
        self.setSortRole(HistoryModel.SortRole)
        self.setDynamicSortFilter(True)

    @property
    def app_id(self) -> str | None:
        return self._app_id

    @property
    def action(self) -> str | None:
        return self._action

    def set_app(self, app_id: str | None) -> None:
        self._change(lambda: setattr(self, "_app_id", app_id or None))

    def set_action(self, action: str | None) -> None:
        self._change(lambda: setattr(self, "_action", action or None))

    def set_text(self, text: str) -> None:
        self._change(lambda: setattr(self, "_text", text.strip().casefold()))

    def _change(self, apply: Callable[[], None]) -> None:
        self.beginFilterChange()
        apply()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, HistoryModel):
            return True
        receipt = model.receipt(source_row)
        if self._app_id is not None and receipt.app_id != self._app_id:
            return False
        if self._action is not None and receipt.action != self._action:
            return False
        if self._text:
            haystack = model.data(model.index(source_row, 0), HistoryModel.SearchRole)
            return self._text in str(haystack)
        return True


def _capitalised(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text if any(c in first for c in ".:/'") else text[:1].upper() + text[1:]


def _delivery_labels(deliveries: Sequence[OpenDelivery]) -> dict[str, str]:
    """A label per undelivered batch: its window in local time, and when it was approved
    where one app has several of one window."""
    labels = {d.batch_id: window_words(d.window_start, d.window_end) for d in deliveries}
    seen: dict[tuple[str, str], int] = {}
    for d in deliveries:
        key = (d.app_id, labels[d.batch_id])
        seen[key] = seen.get(key, 0) + 1
    for d in deliveries:
        if seen[(d.app_id, labels[d.batch_id])] > 1:
            labels[d.batch_id] += f", approved {local_time(d.approved_at or '')[11:16] or '?'} ({d.batch_id[:6]})"
    return labels


# -- asking before a withdrawal -----------------------------------------------------------

Ask = Callable[[QWidget, str, str, str, Callable[[], None]], None]
"""``ask(parent, title, text, action, yes)``: ask whether to do ``action``; call ``yes()`` if so.
It returns at once: the UI thread never waits for the answer."""


def ask_later(parent: QWidget, title: str, text: str, action: str, yes: Callable[[], None]) -> None:
    """A window-modal question with ``action`` and Cancel (the default), answered later."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent)
    box.setObjectName("confirmation")
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    agree = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
    agree.setAccessibleName(action)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.finished.connect(lambda _result: yes() if box.clickedButton() is agree else None)
    box.open()


# -- the window ----------------------------------------------------------------------------


class HistoryWindow(QWidget):
    """History of decisions and deliveries, with the exact bytes each batch sent.

    Signals (all on the UI thread):
    ``loaded(int)`` after a refresh shows N receipts; ``payload_shown(str)`` once the
    payload pane shows a batch (its bytes or why there are none); ``verified(object)``
    with the :class:`ChainCheck`; ``exported(str)`` with the path written;
    ``problem(str)`` when an error is shown in the banner; ``credentials_requested(str)``
    with an app id when the person asks to set its credentials (the application opens
    Settings there); ``changed()`` after a delivery was retried or withdrawn (the tray
    refreshes); ``delivery_done(str)`` with the batch id once such a change is shown.

    ``confirm(parent, title, text, action, yes)`` asks before withdrawing, without waiting
    on the UI thread: it calls ``yes()`` if the person agrees (default: :func:`ask_later`).
    """

    loaded = Signal(int)
    payload_shown = Signal(str)
    verified = Signal(object)
    exported = Signal(str)
    problem = Signal(str)
    credentials_requested = Signal(str)
    changed = Signal()
    delivery_done = Signal(str)

    def __init__(self, broker: Broker, parent: QWidget | None = None, *, confirm: Ask | None = None) -> None:
        super().__init__(parent)
        self.broker = broker
        self._confirm: Ask = confirm or ask_later
        self.setWindowTitle("Telemetry Tray — History")
        self.setAccessibleName("Telemetry history")
        install_focus_ring()
        self._undelivered: dict[str, OpenDelivery] = {}
        self._undelivered_at: datetime | None = None
        self._paused = False
        self._select_delivery: str | None = None  # a batch to select in the deliveries list once loaded
        self._withdraw_asked = False  # and then to ask about withdrawing it
        # The words of undelivered batches say "next try in 4 minutes": read again while on screen.
        self._words_timer = QTimer(self)
        self._words_timer.setInterval(30_000)
        self._words_timer.timeout.connect(self._words_due)
        self._retention_days: int | None = None
        self._loading = False
        self._reload_again = False
        self._payloads = Latest()  # the payload pane shows the answer for the newest selection only
        self._verified_head: str | None = None
        self._busy: set[str] = set()
        self._shown_seq: int | None = -1
        self._status_tone = "neutral"
        self._error_shown = False
        self._build()
        self._restyle()
        fit_to_screen(self, 1300, 760)

    # -- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        root = QVBoxLayout(self)

        self.error_banner = QFrame(self)
        self.error_banner.setObjectName("errorBanner")
        self.error_banner.setAccessibleName("Error")
        banner_row = QHBoxLayout(self.error_banner)
        banner_row.setContentsMargins(8, 4, 4, 4)
        self.error_label = QLabel(self.error_banner)
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setAccessibleName("Error message")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss_button = QToolButton(self.error_banner)
        self.dismiss_button.setText("Dismiss")
        self.dismiss_button.setAccessibleName("Dismiss error")
        self.dismiss_button.clicked.connect(self.clear_error)
        banner_row.addWidget(self.error_label, 1)
        banner_row.addWidget(self.dismiss_button)
        self.error_banner.hide()
        root.addWidget(self.error_banner)

        # Filters and actions.
        bar = QHBoxLayout()
        self.app_filter = QComboBox(self)
        self.app_filter.setAccessibleName("Filter by app")
        self.app_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.app_filter.addItem("All apps", None)
        self.outcome_filter = QComboBox(self)
        self.outcome_filter.setAccessibleName("Filter by outcome")
        self.outcome_filter.addItem("All outcomes", None)
        for action in ACTIONS:
            self.outcome_filter.addItem(ACTION_WORDS[action], action)
        self.search = QLineEdit(self)
        self.search.setAccessibleName("Search receipts")
        self.search.setAccessibleDescription("Matches app, batch id, outcome and summary. Ctrl+F")
        self.search.setPlaceholderText("Batch, app, outcome, text…  Ctrl+F")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(180)
        for text, buddy in (("&App:", self.app_filter), ("&Outcome:", self.outcome_filter), ("&Search:", self.search)):
            label = QLabel(text, self)
            label.setBuddy(buddy)
            bar.addWidget(label)
            bar.addWidget(buddy)
            bar.addSpacing(8)
        bar.addStretch(1)
        self.refresh_button = QPushButton("&Refresh", self)
        self.refresh_button.setAccessibleName("Refresh history")
        self.refresh_button.setToolTip("Load the history again (F5)")
        self.verify_button = QPushButton("&Verify chain", self)
        self.verify_button.setAccessibleName("Verify the hash chain")
        self.verify_button.setToolTip("Check that no receipt was edited, reordered or removed (Ctrl+Shift+V)")
        self.export_button = QPushButton("&Export…", self)
        self.export_button.setAccessibleName("Export history as JSON")
        self.export_button.setToolTip("Save every receipt and the chain's head hash as JSON (Ctrl+E)")
        bar.addWidget(self.refresh_button)
        root.addLayout(bar)

        self._build_deliveries()
        root.addWidget(self.deliveries_box)

        # The table and the details side by side.
        self.model = HistoryModel(self)
        self.proxy = HistoryFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(self)
        self.table.setAccessibleName("Receipts")
        self.table.setAccessibleDescription("Every decision and delivery, newest first")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(HistoryModel.WHEN, Qt.SortOrder.DescendingOrder)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setAccessibleName("Row numbers")
        self.table.horizontalHeader().setAccessibleName("Columns: click to sort")
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in ((HistoryModel.WHEN, 150), (HistoryModel.ACTION, 80), (HistoryModel.APP, 110)):
            header.resizeSection(column, width)
        header.resizeSection(HistoryModel.BATCH, 110)

        self.receipt_box = QGroupBox("Receipt", self)
        self.receipt_box.setAccessibleName("Receipt details")
        receipt_column = QVBoxLayout(self.receipt_box)
        receipt_column.setContentsMargins(4, 4, 4, 4)
        self.receipt_scroll = QScrollArea(self.receipt_box)
        self.receipt_scroll.setAccessibleName("Receipt fields")
        self.receipt_scroll.setWidgetResizable(True)
        self.receipt_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.receipt_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        fields = QWidget(self.receipt_scroll)
        self.receipt_form = QFormLayout(fields)
        self.receipt_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        self.receipt_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.receipt_form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.receipt_form.setVerticalSpacing(4)
        self.receipt_scroll.setWidget(fields)
        self.receipt_warning = QLabel(self.receipt_box)
        self.receipt_warning.setObjectName("receiptWarning")
        self.receipt_warning.setAccessibleName("Receipt warning")
        self.receipt_warning.setWordWrap(True)
        self.receipt_warning.hide()
        receipt_column.addWidget(self.receipt_warning)
        receipt_column.addWidget(self.receipt_scroll)

        self.payload_box = QGroupBox("What was sent", self)
        self.payload_box.setAccessibleName("Payload")
        payload_column = QVBoxLayout(self.payload_box)
        self.payload_label = QLabel(self.payload_box)
        self.payload_label.setWordWrap(True)
        self.payload_label.setTextFormat(Qt.TextFormat.PlainText)
        self.payload_label.setAccessibleName("About the payload")
        self.payload_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.payload_view = QPlainTextEdit(self.payload_box)
        self.payload_view.setReadOnly(True)
        self.payload_view.setAccessibleName("Payload bytes, pretty-printed JSON")
        self.payload_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.payload_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.payload_view.setTabChangesFocus(True)
        # What the bytes said about the person, beside them, as the review showed it.
        self.sent_summary = DisclosurePanel(self.payload_box)
        self.sent_summary.title.setText("<b>What it says about you</b>")
        self.sent_summary.show_disclosure(None)
        payload_row = QSplitter(Qt.Orientation.Horizontal, self.payload_box)
        payload_row.setChildrenCollapsible(False)
        payload_row.addWidget(self.payload_view)
        payload_row.addWidget(self.sent_summary)
        payload_row.setStretchFactor(0, 3)
        payload_row.setStretchFactor(1, 2)
        payload_column.addWidget(self.payload_label)
        payload_column.addWidget(payload_row, 1)

        self.details_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.details_splitter.setAccessibleName("Receipt and payload")
        self.details_splitter.setChildrenCollapsible(False)
        self.details_splitter.addWidget(self.receipt_box)
        self.details_splitter.addWidget(self.payload_box)
        self.details_splitter.setSizes([380, 340])

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setAccessibleName("Receipts and details")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.details_splitter)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([660, 620])
        root.addWidget(self.splitter, 1)

        # Status line.
        status_row = QHBoxLayout()
        self.count_label = QLabel(self)
        self.count_label.setAccessibleName("Receipts shown")
        self.status_label = QLabel("Chain not verified yet.", self)
        self.status_label.setObjectName("chainStatus")
        self.status_label.setAccessibleName("Hash chain status")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setWordWrap(True)  # a long path or problem wraps; it never widens the window
        self.status_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.close_button = QPushButton("Close", self)
        self.close_button.setAccessibleName("Close history")
        self.close_button.setToolTip("Close this window (Esc)")
        status_row.addWidget(self.count_label)
        status_row.addSpacing(16)
        status_row.addWidget(self.status_label, 1)
        # The chain's own actions sit by the chain's status line, so the filters above fit
        # a narrow screen.
        status_row.addWidget(self.verify_button)
        status_row.addWidget(self.export_button)
        status_row.addSpacing(16)
        status_row.addWidget(self.close_button)
        root.addLayout(status_row)
        self._set_status("Chain not verified yet.", "neutral")

        # Behaviour.
        self.app_filter.currentIndexChanged.connect(self._app_filter_changed)
        self.outcome_filter.currentIndexChanged.connect(self._outcome_filter_changed)
        self.search.textChanged.connect(self.proxy.set_text)
        self.proxy.modelReset.connect(self._rows_changed)
        self.proxy.rowsInserted.connect(self._rows_changed)
        self.proxy.rowsRemoved.connect(self._rows_changed)
        self.proxy.layoutChanged.connect(self._rows_changed)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.verify_button.clicked.connect(self.verify)
        self.export_button.clicked.connect(self.export)
        self.close_button.clicked.connect(self.close)

        shortcuts: list[tuple[QKeySequence | QKeySequence.StandardKey, Callable[[], object]]] = [
            (QKeySequence("Ctrl+F"), self.focus_search),
            (QKeySequence("Ctrl+E"), self.export),
            (QKeySequence("Ctrl+Shift+V"), self.verify),
            (QKeySequence("F5"), self.refresh),
            (QKeySequence("Ctrl+R"), self.refresh),
            (QKeySequence("Esc"), self.close),
        ]
        for keys, slot in shortcuts:
            QShortcut(keys, self, slot)

        order: list[QWidget] = [
            self.app_filter,
            self.outcome_filter,
            self.search,
            self.deliveries,
            self.retry_button,
            self.credentials_button,
            self.withdraw_button,
            self.table,
            self.payload_view,
            self.refresh_button,
            self.verify_button,
            self.export_button,
            self.close_button,
        ]
        for first, second in itertools.pairwise(order):
            QWidget.setTabOrder(first, second)
        self._show_receipt(None)
        self._rows_changed()

    def _build_deliveries(self) -> None:
        """The batches approved and not delivered yet, with what can be done about each."""
        self.deliveries_box = QGroupBox("Approved, not delivered yet", self)
        self.deliveries_box.setAccessibleName("Approved batches not delivered yet")
        row = QHBoxLayout(self.deliveries_box)
        row.setContentsMargins(6, 4, 6, 6)
        self.deliveries = QTreeWidget(self.deliveries_box)
        self.deliveries.setAccessibleName("Deliveries not through yet")
        self.deliveries.setAccessibleDescription("Each approved batch not delivered yet: why, and the next try")
        self.deliveries.setHeaderLabels(["App", "Batch", "What happened", "Next"])
        self.deliveries.setRootIsDecorated(False)
        self.deliveries.setUniformRowHeights(True)
        self.deliveries.setAlternatingRowColors(True)
        self.deliveries.setWordWrap(False)
        header = self.deliveries.header()
        header.setAccessibleName("Deliveries' columns")
        header.setStretchLastSection(False)
        for column, mode in enumerate(
            (QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.ResizeToContents,
             QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.ResizeToContents)
        ):  # fmt: skip
            header.setSectionResizeMode(column, mode)
        self.deliveries.currentItemChanged.connect(lambda *_: self._delivery_selected())
        self.delivery_detail = QLabel(self.deliveries_box)
        self.delivery_detail.setAccessibleName("Why the selected batch is not delivered, and what to do")
        self.delivery_detail.setTextFormat(Qt.TextFormat.PlainText)
        self.delivery_detail.setWordWrap(True)
        self.delivery_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        left = QVBoxLayout()
        left.addWidget(self.deliveries)
        left.addWidget(self.delivery_detail)
        buttons = QVBoxLayout()
        self.retry_button = QPushButton("Re&try now", self.deliveries_box)
        self.retry_button.setAccessibleName("Retry the selected delivery now")
        self.retry_button.setToolTip("Send it now instead of at its next scheduled try")
        self.credentials_button = QPushButton("Set cre&dentials…", self.deliveries_box)
        self.credentials_button.setAccessibleName("Set the credentials of the selected delivery's app")
        self.credentials_button.setToolTip("Open Settings at this app's vendor credentials")
        self.withdraw_button = QPushButton("&Withdraw…", self.deliveries_box)
        self.withdraw_button.setAccessibleName("Withdraw the selected batch")
        self.withdraw_button.setToolTip("Take the approval back: the batch is discarded and nothing is sent")
        for button in (self.retry_button, self.credentials_button, self.withdraw_button):
            button.setAutoDefault(False)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.retry_button.clicked.connect(self._retry)
        self.credentials_button.clicked.connect(self._ask_credentials)
        self.withdraw_button.clicked.connect(self._ask_withdraw)
        row.addLayout(left, 1)
        row.addLayout(buttons)
        self.deliveries_box.hide()

    # -- public API ------------------------------------------------------------------------

    def show_delivery(self, batch_id: str, *, withdraw: bool = False) -> None:
        """Select ``batch_id`` among the deliveries (and its newest receipt), once loaded;
        with ``withdraw``, then ask whether to withdraw it (the tray menu's *Withdraw…*)."""
        self._select_delivery = batch_id
        self._withdraw_asked = withdraw
        if self.model.rowCount() or self._undelivered:
            self._apply_delivery_selection()

    def selected_delivery(self) -> OpenDelivery | None:
        item = self.deliveries.currentItem()
        batch_id = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return self._undelivered.get(str(batch_id)) if batch_id else None

    def delivery_rows(self) -> list[list[str]]:
        """What the deliveries list shows, row by row (its four columns)."""
        return [[item.text(c) for c in range(4)] for item in self._delivery_items()]

    def _delivery_items(self) -> list[QTreeWidgetItem]:
        items = (self.deliveries.topLevelItem(r) for r in range(self.deliveries.topLevelItemCount()))
        return [item for item in items if item is not None]

    @Slot()
    def refresh(self) -> None:
        """Reload the receipts in the background (again, if a load is under way)."""
        if self._loading:
            self._reload_again = True
            return
        self._loading = True
        self._reload_again = False
        self.refresh_button.setEnabled(False)
        broker = self.broker
        run_task(lambda: load_snapshot(broker), self._guard(self._on_loaded), self._guard(self._on_load_failed))

    @Slot()
    def broker_changed(self) -> None:
        """The broker recorded something: reload if the window is on screen."""
        if self.isVisible():
            self.refresh()

    @Slot()
    def verify(self) -> None:
        """Verify the hash chain in the background; the result goes to the status line."""
        if "verify" in self._busy:
            return
        self._busy.add("verify")
        self.verify_button.setEnabled(False)
        self._set_status("Verifying the hash chain…", "neutral")
        broker = self.broker
        run_task(broker.verify_history, self._guard(self._on_verified), self._guard(self._on_verify_failed))

    @Slot()
    def export(self) -> None:
        """Ask where to save, then export there."""
        path = self.choose_export_path()
        if path:
            self.export_to(path)

    def choose_export_path(self) -> str | None:
        """The file the person picks for the export (tests override this)."""
        suggested = str(Path.home() / f"telemetry-history-{datetime.now().strftime('%Y-%m-%d')}.json")
        path, _ = QFileDialog.getSaveFileName(self, "Export history as JSON", suggested, "JSON files (*.json)")
        return path or None

    def export_to(self, path: str) -> None:
        """Write every receipt, the chain's head hash and whether it verifies, to ``path``."""
        if "export" in self._busy:
            return
        self._busy.add("export")
        self.export_button.setEnabled(False)
        broker = self.broker
        run_task(
            lambda: write_export(broker, path),
            self._guard(self._on_exported),
            self._guard(self._on_export_failed),
        )

    @Slot()
    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def set_filters(self, app_id: str | None = None, action: str | None = None) -> None:
        """Show only one app's and/or one outcome's receipts (``None``: all)."""
        self._select_data(self.app_filter, app_id, add_label=app_id)
        self._select_data(self.outcome_filter, action)

    def current_receipt(self) -> Receipt | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        receipt = self.proxy.data(index, HistoryModel.ReceiptRole)
        return receipt if isinstance(receipt, Receipt) else None

    def select_seq(self, seq: int) -> bool:
        """Select the receipt with sequence number ``seq`` if it is shown."""
        row = self.model.row_of(seq)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)
        return True

    def visible_receipts(self) -> list[Receipt]:
        """The receipts the table shows, in its order."""
        shown = []
        for row in range(self.proxy.rowCount()):
            receipt = self.proxy.data(self.proxy.index(row, 0), HistoryModel.ReceiptRole)
            if isinstance(receipt, Receipt):
                shown.append(receipt)
        return shown

    @Slot()
    def clear_error(self) -> None:
        self.error_banner.hide()
        self.error_label.clear()

    def show_error(self, exc: BaseException) -> None:
        if isinstance(exc, TrayError):
            text = f"{exc.title}: {told(exc)}"
        elif isinstance(exc, OSError):
            text = f"Cannot use the file: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        else:
            text = f"Something went wrong: {exc}"
        self.error_label.setText(text)
        self.error_banner.show()
        self.problem.emit(text)

    # -- events ----------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not event.spontaneous():
            self.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._payloads.drop()  # a payload still loading is not needed any more
        self._words_timer.stop()
        super().closeEvent(event)

    # -- results ---------------------------------------------------------------------------

    def _guard(self, slot: Callable[[Any], None]) -> Callable[[Any], None]:
        """A callback that does nothing once the window's C++ side is gone."""

        def call(value: Any) -> None:
            if Shiboken.isValid(self):
                slot(value)

        return call

    def _on_loaded(self, result: object) -> None:
        assert isinstance(result, HistorySnapshot)
        self._finish_load()
        self.clear_error()
        self._retention_days = result.retention_days
        selected = self.current_receipt()
        names = dict(result.app_names)
        self._fill_app_filter(names, {r.app_id for r in result.receipts})
        self.model.set_receipts(result.receipts, names)
        head = result.receipts[-1].hash if result.receipts else GENESIS
        if self._verified_head is not None and head != self._verified_head:
            self._verified_head = None
            self.model.set_bad_seq(None)
            self._set_status("The history changed since it was verified.", "neutral")
        self._undelivered = {d.batch_id: d for d in result.undelivered}
        self._undelivered_at, self._paused = result.now, result.paused
        self._fill_deliveries()
        if selected is None or not self.select_seq(selected.seq):
            self._show_receipt(None)
        if self._select_delivery is not None:
            self._apply_delivery_selection()
        self.loaded.emit(len(result.receipts))
        if self._reload_again:
            self.refresh()

    def _on_load_failed(self, exc: BaseException) -> None:
        self._finish_load()
        self.show_error(exc)
        if self._reload_again:
            self.refresh()

    def _finish_load(self) -> None:
        self._loading = False
        self.refresh_button.setEnabled(True)

    def _on_verified(self, result: object) -> None:
        assert isinstance(result, ChainCheck)
        self._busy.discard("verify")
        self.verify_button.setEnabled(True)
        self.model.set_bad_seq(None if result.ok else result.bad_seq)
        if result.ok:
            self._verified_head = result.head
            noun = "receipt" if result.count == 1 else "receipts"
            self._set_status(f"✓ History intact: {result.count} {noun}, head {result.head[:16]}…", "good")
        else:
            self._verified_head = None
            first_bad = result.bad_seq if result.bad_seq is not None else result.count + 1
            intact = f" (#1 to #{result.count} are intact)" if result.count else ""
            self._set_status(
                f"⚠ History check FAILED: {result.problem}. Receipts from #{first_bad} on cannot be trusted{intact}.",
                "bad",
            )
            if result.bad_seq is not None:
                self.select_seq(result.bad_seq)
        self._update_receipt_warning()
        self.verified.emit(result)

    def _on_verify_failed(self, exc: BaseException) -> None:
        self._busy.discard("verify")
        self.verify_button.setEnabled(True)
        self._set_status("Chain not verified.", "neutral")
        self.show_error(exc)

    def _on_exported(self, result: object) -> None:
        assert isinstance(result, ExportResult)
        self._busy.discard("export")
        self.export_button.setEnabled(True)
        noun = "receipt" if result.count == 1 else "receipts"
        if result.verified:
            self._set_status(f"Exported {result.count} {noun} (chain intact) to {result.path}", "good")
        else:
            self._set_status(f"⚠ Exported {result.count} {noun} to {result.path}, but the chain does NOT verify", "bad")
        self.exported.emit(result.path)

    def _on_export_failed(self, exc: BaseException) -> None:
        self._busy.discard("export")
        self.export_button.setEnabled(True)
        self.show_error(exc)

    # -- selection and details -------------------------------------------------------------

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        receipt = self.proxy.data(current, HistoryModel.ReceiptRole) if current.isValid() else None
        self._show_receipt(receipt if isinstance(receipt, Receipt) else None)

    def _show_receipt(self, receipt: Receipt | None) -> None:
        while self.receipt_form.rowCount():
            self.receipt_form.removeRow(0)
        ticket = self._payloads.new()
        self._shown_seq = receipt.seq if receipt is not None else None
        self.payload_view.clear()
        self.sent_summary.show_disclosure(None)
        if receipt is None:
            self.receipt_box.setTitle("Receipt")
            self._update_receipt_warning()
            placeholder = QLabel("Select a receipt to see who decided, where it went and the vendor's answer.")
            placeholder.setWordWrap(True)
            placeholder.setAccessibleName("No receipt selected")
            self.receipt_form.addRow(placeholder)
            self.payload_label.setText("The exact bytes of the selected batch appear here.")
            self.payload_view.setEnabled(False)
            return
        self.receipt_box.setTitle(f"Receipt #{receipt.seq}: {ACTION_WORDS.get(receipt.action, receipt.action)}")
        self._update_receipt_warning()
        for label, value in describe(receipt, self.model.app_name(receipt.app_id)):
            field = QLabel(value)
            field.setWordWrap(True)
            field.setTextFormat(Qt.TextFormat.PlainText)
            field.setAccessibleName(label)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            if label in _HEX_ROWS:
                # Whole, unbroken and copyable: a hash is compared character by character.
                field.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
                field.setWordWrap(False)
            name = QLabel(f"{label}:")
            name.setBuddy(field)
            self.receipt_form.addRow(name, field)
        self.payload_label.setText("Loading the stored payload…")
        self.payload_view.setEnabled(False)
        broker, batch_id = self.broker, receipt.batch_id
        expected = self._expected_digest(receipt)

        def done(result: object) -> None:
            if isinstance(result, StoredPayload):
                self._show_payload(result, expected)

        def failed(exc: BaseException) -> None:
            self.payload_label.setText("The payload could not be loaded.")
            self.show_error(exc)

        run_task(
            lambda: load_payload(broker, batch_id),
            self._guard(self._payloads.only(ticket, done)),
            self._guard(self._payloads.only(ticket, failed)),
        )

    def _update_receipt_warning(self) -> None:
        bad = self.model.bad_seq
        shown = self._shown_seq
        if bad is not None and shown is not None and shown >= bad:
            where = "was changed or does not follow the one before it" if shown == bad else "comes after the break"
            self.receipt_warning.setText(f"⚠ This receipt {where} in the hash chain: what it says cannot be trusted.")
            self.receipt_warning.show()
        else:
            self.receipt_warning.hide()

    def _expected_digest(self, receipt: Receipt) -> str | None:
        """The SHA-256 the batch's receipts recorded for its payload."""
        if receipt.detail.get("payload_sha256"):
            return str(receipt.detail["payload_sha256"])
        for other in self.model.receipts():
            if other.batch_id == receipt.batch_id and other.detail.get("payload_sha256"):
                return str(other.detail["payload_sha256"])
        return None

    def _show_payload(self, stored: StoredPayload, expected: str | None) -> None:
        self.sent_summary.show_disclosure(stored.summary)
        if stored.body is None:
            self.payload_view.clear()
            self.payload_view.setEnabled(False)
            self.payload_label.setText(self._no_payload_words(stored))
        else:
            sent = {
                str(BatchStatus.APPROVED): self._not_yet_words(stored.batch_id),
                str(BatchStatus.DELIVERED): "The exact bytes sent",
                str(BatchStatus.FAILED): "The exact bytes that were to be sent (the delivery failed)",
            }.get(stored.status, "The exact bytes stored")
            digest = stored.sha256 or ""
            if expected is None:
                check = ""
            elif expected == digest:
                check = " ✓ matches the receipt."
            else:
                check = f" ⚠ does NOT match the receipt's {expected[:16]}…"
            self.payload_label.setText(
                f"{sent}: {size_words(len(stored.body))}, SHA-256 {digest[:16]}…{check}\n"
                "Shown pretty-printed; the bytes themselves are compact canonical JSON."
            )
            self.payload_view.setPlainText(stored.pretty)
            self.payload_view.setEnabled(True)
        self.payload_shown.emit(stored.batch_id)

    def _not_yet_words(self, batch_id: str) -> str:
        """What the payload pane says of a batch approved and not delivered: and why not."""
        delivery, now = self._undelivered.get(batch_id), self._words_now()
        if delivery is None or now is None:
            return "The exact bytes approved for sending (not delivered yet)"
        words = delivery.words(now, paused=self._paused)
        return f"The exact bytes approved for sending (not delivered yet: {words.reason}; {words.progress})"

    def _no_payload_words(self, stored: StoredPayload) -> str:
        if stored.status == "gone":
            return "Not kept: the batch was removed together with its app. The receipts remain."
        if stored.status == BatchStatus.DISCARDED:
            return "Nothing was sent: the batch was discarded and its reports deleted."
        if stored.status == BatchStatus.EXPIRED:
            return "Nothing was sent: the batch expired and its data was deleted."
        days = self._retention_days
        after = f" after {days} days" if days is not None else ""
        return f"Not kept (purged{after}). The receipt still records its size and SHA-256."

    # -- deliveries not through yet -----------------------------------------------------------

    def _words_now(self) -> datetime | None:
        return self._undelivered_at

    def _fill_deliveries(self) -> None:
        """The undelivered batches, each with its words (kept selected across a refresh)."""
        chosen = self.selected_delivery()
        now = self._words_now()
        self.deliveries.blockSignals(True)
        try:
            self.deliveries.clear()
            labels = _delivery_labels(list(self._undelivered.values()))
            palette = self.palette()
            for delivery in self._undelivered.values():
                words = delivery.words(now, paused=self._paused) if now is not None else None
                what = _capitalised(words.short) if words is not None else ""
                item = QTreeWidgetItem([delivery.app_name, labels[delivery.batch_id], what,
                                        words.progress if words is not None else ""])  # fmt: skip
                item.setData(0, Qt.ItemDataRole.UserRole, delivery.batch_id)
                tip = words.sentence if words is not None else ""
                if words is not None and words.detail:
                    tip += f"\n\nLast error: {plain_text(words.detail)}"  # the vendor's words, spelt out
                for column in range(4):
                    item.setToolTip(column, tip)
                if words is not None and words.stuck:
                    tone = Tone.ERROR if words.stage == DeliveryStage.WAITING_FOR_CREDENTIALS else Tone.WARNING
                    item.setForeground(2, QBrush(tone_colour(palette, tone)))
                self.deliveries.addTopLevelItem(item)
                if chosen is not None and chosen.batch_id == delivery.batch_id:
                    self.deliveries.setCurrentItem(item)
            items = self._delivery_items()
            if self.deliveries.currentItem() is None and items:
                self.deliveries.setCurrentItem(items[0])
        finally:
            self.deliveries.blockSignals(False)
        count = len(self._undelivered)
        stuck = sum(1 for d in self._undelivered.values() if now is not None and d.words(now).stuck)
        title = f"Approved, not delivered yet ({count})"
        if stuck:
            title += f": {stuck} not getting through"
        self.deliveries_box.setTitle(title)
        self.deliveries_box.setVisible(bool(count))
        rows = max(1, min(count, 4))  # more scroll: the receipts keep the room
        row_height = max(self.deliveries.sizeHintForRow(0), self.fontMetrics().height() + 4)
        self.deliveries.setFixedHeight(
            self.deliveries.header().sizeHint().height() + rows * row_height + 2 * self.deliveries.frameWidth()
        )
        if count and self.isVisible():
            self._words_timer.start()
        else:
            self._words_timer.stop()
        self._delivery_selected()

    def _delivery_selected(self) -> None:
        delivery = self.selected_delivery()
        now = self._words_now()
        actions = delivery.words(now, paused=self._paused).actions if delivery is not None and now else ()
        self.retry_button.setEnabled(DeliveryAction.RETRY_NOW in actions and not self._paused)
        self.retry_button.setToolTip(
            "Pause all is on: nothing is sent until it is off."
            if self._paused
            else "Send it now instead of at its next scheduled try"
        )
        self.credentials_button.setVisible(DeliveryAction.SET_CREDENTIALS in actions)
        self.withdraw_button.setEnabled(DeliveryAction.WITHDRAW in actions)
        if delivery is None or now is None:
            self.delivery_detail.clear()
            self.delivery_detail.setToolTip("")
            return
        words = delivery.words(now, paused=self._paused)
        todo = {
            DeliveryStage.RETRYING: " Retry now once the vendor is back; or withdraw it, and nothing is sent.",
            DeliveryStage.WAITING_FOR_CREDENTIALS: (
                " Set the vendor's secret with Set credentials…; or withdraw it, and nothing is sent."
            ),
        }.get(words.stage, "")
        self.delivery_detail.setText(f"{delivery.app_name}: {words.sentence}{todo}")
        self.delivery_detail.setToolTip(f"Last error: {plain_text(words.detail)}" if words.detail else "")

    def _apply_delivery_selection(self) -> None:
        batch_id = self._select_delivery
        if batch_id is None:
            return
        item = next((i for i in self._delivery_items() if i.data(0, Qt.ItemDataRole.UserRole) == batch_id), None)
        newest = max((r.seq for r in self.model.receipts() if r.batch_id == batch_id), default=None)
        if item is None and newest is None:
            return  # not in what was read yet: the next read (under way) selects it
        self._select_delivery = None
        withdraw, self._withdraw_asked = self._withdraw_asked, False
        if newest is not None:
            self.set_filters(None, None)
            self.search.clear()
            self.select_seq(newest)
        if item is not None:
            self.deliveries.setCurrentItem(item)
            self.deliveries.setFocus(Qt.FocusReason.OtherFocusReason)
            if withdraw:
                self._ask_withdraw()  # about this batch only, never another one selected before
        elif withdraw:
            self._set_status("That batch is not waiting to be sent any more: there is nothing to withdraw.", "neutral")

    def _words_due(self) -> None:
        if self.isVisible() and self._undelivered:
            self.refresh()

    def _retry(self) -> None:
        delivery = self.selected_delivery()
        if delivery is None:
            return
        broker, batch_id = self.broker, delivery.batch_id
        self.retry_button.setEnabled(False)

        def done(sending: object) -> None:
            if sending:
                self._set_status(f"Sending {delivery.app_name}'s batch to {delivery.host} now…", "neutral")
            else:
                self._set_status(f"{delivery.app_name}'s batch is being sent right now.", "neutral")
            self.changed.emit()
            self.delivery_done.emit(batch_id)
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.show_error(exc)
            self.refresh()

        run_task(lambda: broker.retry_now(batch_id), self._guard(done), self._guard(failed))

    def _ask_credentials(self) -> None:
        delivery = self.selected_delivery()
        if delivery is not None:
            self.credentials_requested.emit(delivery.app_id)

    def _ask_withdraw(self) -> None:
        delivery = self.selected_delivery()
        if delivery is None or not self.withdraw_button.isEnabled():
            return
        size = f"the {size_words(delivery.payload_bytes)} " if delivery.payload_bytes else "the bytes "
        window = window_words(delivery.window_start, delivery.window_end)
        self._confirm(
            self,
            f"Withdraw {delivery.app_name}'s batch?",
            f"The approval of {delivery.app_name}'s batch of {window} "
            f"is taken back: {size}approved for {delivery.host} are deleted and nothing is sent, not even a notice. "
            "History keeps a receipt of it. This cannot be undone.",
            "Withdraw",
            lambda: self._withdraw(delivery),
        )

    def _withdraw(self, delivery: OpenDelivery) -> None:
        if not Shiboken.isValid(self):
            return
        broker, batch_id = self.broker, delivery.batch_id
        self.withdraw_button.setEnabled(False)

        def done(_view: object) -> None:
            self._set_status(f"Withdrew {delivery.app_name}'s batch: nothing was sent to {delivery.host}.", "good")
            self.changed.emit()
            self.delivery_done.emit(batch_id)
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.show_error(exc)
            self.refresh()

        run_task(lambda: broker.withdraw(batch_id), self._guard(done), self._guard(failed))

    # -- filters and status ------------------------------------------------------------------

    def _fill_app_filter(self, names: dict[str, str], in_history: set[str]) -> None:
        chosen = self.app_filter.currentData()
        self.app_filter.blockSignals(True)
        try:
            self.app_filter.clear()
            self.app_filter.addItem("All apps", None)
            for app_id in sorted(names, key=lambda a: (names[a].casefold(), a)):
                self.app_filter.addItem(f"{names[app_id]} ({app_id})", app_id)
            for app_id in sorted(in_history - set(names)):
                names[app_id] = app_id
                self.app_filter.addItem(f"{app_id} (removed)", app_id)
            index = self.app_filter.findData(chosen) if chosen is not None else 0
            self.app_filter.setCurrentIndex(max(index, 0))
        finally:
            self.app_filter.blockSignals(False)
        if self.app_filter.currentData() != self.proxy.app_id:
            self.proxy.set_app(self.app_filter.currentData())

    def _select_data(self, combo: QComboBox, data: str | None, add_label: str | None = None) -> None:
        index = combo.findData(data) if data is not None else 0
        if index < 0 and add_label is not None:
            combo.addItem(add_label, data)
            index = combo.count() - 1
        combo.setCurrentIndex(max(index, 0))

    def _app_filter_changed(self, _index: int) -> None:
        self.proxy.set_app(self.app_filter.currentData())

    def _outcome_filter_changed(self, _index: int) -> None:
        self.proxy.set_action(self.outcome_filter.currentData())

    def _rows_changed(self, *_args: object) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        if total == 0:
            text = "No receipts yet."
        elif shown == total:
            text = f"{total} receipt{'s' if total != 1 else ''}"
        elif shown == 0:
            text = f"No receipts match these filters (of {total})."
        else:
            text = f"{shown} of {total} receipts shown"
        self.count_label.setText(text)
        if self._shown_seq is not None and self.current_receipt() is None:
            self._show_receipt(None)

    def _set_status(self, text: str, tone: str) -> None:
        self._status_tone = tone
        self._style_status()
        self.status_label.setText(text)
        self.status_label.setAccessibleDescription(tone)

    def _style_status(self) -> None:
        palette = self.palette()
        styles = {
            "good": f"color: {tone_colour(palette, Tone.GOOD).name()}; font-weight: bold;",
            "bad": notice_style(palette, Tone.ERROR, "2px 6px") + " font-weight: bold; border-radius: 3px;",
            "neutral": "color: palette(window-text);",
        }
        self.status_label.setStyleSheet(styles[self._status_tone])

    def _restyle(self) -> None:
        """Colours from the palette (again, when it changes: a switch to a dark theme)."""
        palette = self.palette()
        self.error_banner.setStyleSheet(banner_style(palette, Tone.ERROR, "#errorBanner"))
        self.receipt_warning.setStyleSheet(
            "#receiptWarning { " + notice_style(palette, Tone.ERROR, "3px 6px") + " font-weight: bold; }"
        )
        self._style_status()
        self.model.palette_changed()
        self._fill_deliveries()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._restyle()
