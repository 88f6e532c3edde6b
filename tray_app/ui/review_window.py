"""The review window: pending batches by app, the scope editor, and the exact payload.

Everything that reads the database or renders a payload runs on the thread pool
(:func:`run_task`); results come back as signals. A render is tagged (:class:`Latest`) so
a slow answer for an old scope never overwrites a newer one. *Approve and send* passes the
SHA-256 of the payload on screen, so what is approved is exactly what was shown.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QHideEvent, QKeySequence, QShortcut, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemDelegate,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSplitter,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ..core import (
    PREVIEW_CHARS,
    UNDECIDED,
    AppInfo,
    AppStatus,
    BatchStatus,
    BatchView,
    Broker,
    FieldSpec,
    Manifest,
    Scope,
    ScopeError,
    TrayError,
    plain_text,
    plainly,
)
from .remedies import told
from .worker import Latest, run_task

NOTHING_WAITING = (
    "<h3>Nothing is waiting for you.</h3><p>Telemetry Tray holds what your apps want to send "
    "until you look at it. When a batch is ready, it appears here.</p>"
)
FIRST_RUN = (
    "<h3>Welcome to Telemetry Tray</h3>"
    "<p>Programs that support Telemetry Tray hand it their telemetry instead of sending it "
    "over the Internet. It keeps each batch here, shows you exactly what would be sent, and "
    "sends only what you approve: all of it, fewer fields, coarser values, or just counts.</p>"
    "<p>No app has registered yet. To see how it works, load the demo: two example apps, a "
    "stream of sample reports, and a demo vendor on this computer that shows exactly what "
    "arrived. Nothing leaves this machine.</p>"
)
PREVIEW_LIMIT = PREVIEW_CHARS
ROLE_KEY = Qt.ItemDataRole.UserRole + 1
Index = QModelIndex | QPersistentModelIndex


# -- the scope editor's model -----------------------------------------------------------


class ScopeModel(QAbstractTableModel):
    """One row per declared field: include, name, sensitivity, coarsening, description.

    Ticking or unticking a field is the core's own edit (:meth:`Scope.edited`), so a field
    ticked starts at the coarsening its manifest asks for, as the CLI's ``--include``
    does; the model keeps no copy of that rule."""

    INCLUDE, FIELD, SENSITIVITY, COARSEN, DESCRIPTION = range(5)
    HEADERS = ("Send", "Field", "Sensitivity", "Coarsen to", "What it is")
    scopeChanged = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._manifest: Manifest | None = None
        self._fields: list[FieldSpec] = []
        self._included: set[str] = set()
        self._coarsen: dict[str, str] = {}
        self.mode = "records"
        self.editable = True

    def load(self, manifest: Manifest, scope: Scope, editable: bool) -> None:
        self.beginResetModel()
        self._manifest = manifest
        self._fields = list(manifest.fields)
        self._included = set(scope.fields)
        self._coarsen = dict(scope.coarsen)
        self.mode = scope.mode
        self.editable = editable
        self.endResetModel()

    def scope(self) -> Scope:
        coarsen = {k: v for k, v in self._coarsen.items() if k in self._included}
        return Scope(tuple(self._included), coarsen, "aggregate" if self.mode == "aggregate" else "records")

    def set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            self.scopeChanged.emit()

    def spec(self, row: int) -> FieldSpec:
        return self._fields[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's API
        return 0 if parent.isValid() else len(self._fields)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        spec = self._fields[index.row()]
        column = index.column()
        if column == self.INCLUDE and role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if spec.name in self._included else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.AccessibleTextRole and column == self.INCLUDE:
            return f"Send {spec.name}: {'yes' if spec.name in self._included else 'no'}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return spec.description
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return None
        if column == self.FIELD:
            return spec.name
        if column == self.SENSITIVITY:
            return spec.sensitivity
        if column == self.COARSEN:
            if not spec.coarsen_levels:
                return "—"
            return self._coarsen.get(spec.name, "exact")
        if column == self.DESCRIPTION:
            return spec.description
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if not index.isValid() or not self.editable:
            return base
        spec = self._fields[index.row()]
        if index.column() == self.INCLUDE:
            return base | Qt.ItemFlag.ItemIsUserCheckable
        if index.column() == self.COARSEN and spec.coarsen_levels and spec.name in self._included:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or not self.editable:
            return False
        spec = self._fields[index.row()]
        # Setting what is already there changes nothing and renders nothing: an editor
        # commits again when it loses focus (to the Approve button, say).
        if index.column() == self.INCLUDE and role == Qt.ItemDataRole.CheckStateRole:
            checked = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
            if checked == (spec.name in self._included) or self._manifest is None:
                return True
            name = [spec.name]
            try:
                edited = self.scope().edited(
                    self._manifest, include=name if checked else (), exclude=() if checked else name
                )
            except ScopeError:
                return False
            self._included = set(edited.fields)
            self._coarsen = dict(edited.coarsen)
        elif index.column() == self.COARSEN and role == Qt.ItemDataRole.EditRole:
            if value != "exact" and value not in spec.coarsen_levels:
                return False
            level = None if value == "exact" else str(value)
            if self._coarsen.get(spec.name) == level:
                return True
            if level is None:
                self._coarsen.pop(spec.name, None)
            else:
                self._coarsen[spec.name] = level
        else:
            return False
        self.dataChanged.emit(self.index(index.row(), 0), self.index(index.row(), self.columnCount() - 1))
        self.scopeChanged.emit()
        return True


class CoarsenDelegate(QStyledItemDelegate):
    """A choice of the levels a field's type allows ("exact" keeps the value)."""

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:
        model = index.model()
        assert isinstance(model, ScopeModel)
        combo = QComboBox(parent)
        combo.setAccessibleName(f"Coarsen {model.spec(index.row()).name}")
        combo.addItems(["exact", *model.spec(index.row()).coarsen_levels])
        combo.activated.connect(lambda _: self.commitData.emit(combo))
        return combo

    def setEditorData(self, editor: QWidget, index: Index) -> None:
        assert isinstance(editor, QComboBox)
        editor.setCurrentText(str(index.data()))

    def setModelData(self, editor: QWidget, model: Any, index: Index) -> None:
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentText(), Qt.ItemDataRole.EditRole)


# -- the window -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rendered:
    view: BatchView
    pretty: str  # the start of the pretty-printed payload (all of it unless truncated)
    truncated: bool = False


class ReviewWindow(QWidget):
    """Pending batches grouped by app, one batch in detail, approve or discard it."""

    decided = Signal(str)  # batch id, after an approval or discard was recorded
    changed = Signal()  # something the tray shows may have changed
    demo_requested = Signal()  # the person asked for the first-run demo

    def __init__(self, broker: Broker | None) -> None:
        super().__init__()
        self.broker = broker
        self.setWindowTitle("Telemetry Tray — Review")
        self.setAccessibleName("Review pending telemetry")
        self.resize(1100, 720)
        self._latest = Latest()  # renders and loads: an answer for an older request is dropped
        self._current: BatchView | None = None
        self._shown_sha: str | None = None
        self._pending_select: str | None = None
        self._apps: dict[str, AppInfo] = {}

        self.batches = QStandardItemModel(self)
        self.batches.setHorizontalHeaderLabels(["Waiting", "Reports", "Status"])
        self.tree = QTreeView()
        self.tree.setModel(self.batches)
        self.tree.setAccessibleName("Pending batches by app")
        self.tree.setUniformRowHeights(True)
        self.tree.selectionModel().currentChanged.connect(self._on_select)

        self.summary = QLabel("Nothing selected.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setAccessibleName("Who, why, where and for how long")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.scope_model = ScopeModel()
        self.scope_model.scopeChanged.connect(self._scope_edited)
        self.scope_view = QTableView()
        self.scope_view.setModel(self.scope_model)
        self.scope_view.setAccessibleName("Scope: which fields are sent and how coarsely")
        self.coarsen_delegate = CoarsenDelegate(self.scope_view)
        self.scope_view.setItemDelegateForColumn(ScopeModel.COARSEN, self.coarsen_delegate)
        self.scope_view.setEditTriggers(
            QTableView.EditTrigger.CurrentChanged | QTableView.EditTrigger.SelectedClicked
            | QTableView.EditTrigger.EditKeyPressed
        )  # fmt: skip
        self.scope_view.verticalHeader().hide()
        self.scope_view.setCornerButtonEnabled(False)
        header = self.scope_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

        self.records = QRadioButton("Individual re&cords")
        self.records.setAccessibleName("Send individual records")
        self.aggregate = QRadioButton("Only c&ounts (aggregate)")
        self.aggregate.setAccessibleName("Send only counts per value")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.records)
        self.mode_group.addButton(self.aggregate)
        self.records.setChecked(True)
        self.records.toggled.connect(lambda on: self.scope_model.set_mode("records" if on else "aggregate"))

        self.payload_info = QLabel("")
        self.payload_info.setAccessibleName("Payload size and SHA-256")
        self.payload_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.payload = QPlainTextEdit()
        self.payload.setReadOnly(True)
        self.payload.setAccessibleName("The exact payload that would be sent")
        self.payload.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.show_all = QPushButton("Show all o&f it")
        self.show_all.setAccessibleName("Show the whole payload")
        self.show_all.clicked.connect(self._show_everything)
        self.show_all.hide()

        self.approve_button = QPushButton("&Approve and send")
        self.approve_button.setAccessibleName("Approve and send this batch as shown")
        # A click leaves the focus where it is: taking it would close an open coarsening
        # editor, whose commit changes the scope and turns Approve off under the press.
        # approve() commits that editor itself. Tab still reaches the button.
        self.approve_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.approve_button.clicked.connect(self.approve)
        self.discard_button = QPushButton("&Discard")
        self.discard_button.setAccessibleName("Discard this batch: nothing is sent")
        self.discard_button.clicked.connect(self.discard)
        self.remember = QCheckBox("&Remember this scope for this app (approve its next batches like this)")
        self.remember.setAccessibleName("Remember this scope for this app")

        self.allow_button = QPushButton("A&llow")
        self.allow_button.setAccessibleName("Allow this app to send telemetry, batch by batch")
        self.allow_button.clicked.connect(lambda: self._consent(True))
        self.block_button = QPushButton("&Block")
        self.block_button.setAccessibleName("Block this app")
        self.block_button.clicked.connect(lambda: self._consent(False))

        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        # Always rich text, escaped once where it is set (show_notice, _fail): left to
        # guess, Qt would show a notice without tags as plain text, entities and all.
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setAccessibleName("Messages")
        self.banner.hide()

        self._build()
        QShortcut(QKeySequence.StandardKey.Refresh, self, self.refresh)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)
        # Scope edits render at once; while one render runs, later edits wait for it and
        # then render once, with the scope as it is by then (at most one queued).
        self._rendering = False
        self._render_again = False
        # Whether the payload on screen is the current scope's: Approve is enabled only then.
        self._payload_current = False
        self._load_failed = False  # the selected batch could not be loaded: a refresh tries again
        # Approve was clicked while the payload for the scope was still to be rendered: the
        # batch and "remember", approved once that render is on screen.
        self._approving: tuple[str, bool] | None = None
        self._set_enabled(False)

    def _build(self) -> None:
        batch_page = QWidget()
        batch_layout = QVBoxLayout(batch_page)
        batch_layout.addWidget(self.summary)
        batch_layout.addWidget(QLabel("<b>Scope</b> — untick what should not be sent; coarsen what may be vaguer:"))
        batch_layout.addWidget(self.scope_view, 2)
        modes = QHBoxLayout()
        modes.addWidget(self.records)
        modes.addWidget(self.aggregate)
        modes.addStretch()
        batch_layout.addLayout(modes)
        payload_title = QHBoxLayout()
        payload_title.addWidget(QLabel("<b>Exactly what would be sent</b>"))
        payload_title.addWidget(self.payload_info, 1)
        payload_title.addWidget(self.show_all)
        batch_layout.addLayout(payload_title)
        batch_layout.addWidget(self.payload, 3)
        batch_layout.addWidget(self.remember)
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.approve_button)
        batch_layout.addLayout(buttons)

        consent_page = QWidget()
        consent_layout = QVBoxLayout(consent_page)
        self.consent_text = QLabel("")
        self.consent_text.setWordWrap(True)
        self.consent_text.setTextFormat(Qt.TextFormat.RichText)
        self.consent_text.setAccessibleName("What the new app asks for")
        self.consent_text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        consent_layout.addWidget(self.consent_text, 1)
        consent_buttons = QHBoxLayout()
        consent_buttons.addStretch()
        consent_buttons.addWidget(self.block_button)
        consent_buttons.addWidget(self.allow_button)
        consent_layout.addLayout(consent_buttons)

        self.empty = QWidget()
        empty_layout = QVBoxLayout(self.empty)
        self.empty_text = QLabel(NOTHING_WAITING)
        self.empty_text.setWordWrap(True)
        self.empty_text.setAccessibleName("Nothing is waiting")
        self.demo_button = QPushButton("Load the &demo apps")
        self.demo_button.setAccessibleName("Load the demo apps, a demo vendor and sample reports")
        self.demo_button.clicked.connect(self._demo)
        self.demo_button.hide()
        empty_layout.addWidget(self.empty_text)
        demo_row = QHBoxLayout()
        demo_row.addWidget(self.demo_button)
        demo_row.addStretch()
        empty_layout.addLayout(demo_row)
        empty_layout.addStretch()

        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(batch_page)
        self.pages.addWidget(consent_page)

        splitter = QSplitter()
        splitter.addWidget(self.tree)
        splitter.addWidget(self.pages)
        splitter.setSizes([360, 800])
        layout = QVBoxLayout(self)
        self.commands = QHBoxLayout()  # empty unless add_commands() fills it
        layout.addLayout(self.commands)
        layout.addWidget(self.banner)
        layout.addWidget(splitter)

    # -- loading ---------------------------------------------------------------------

    def hideEvent(self, event: QHideEvent) -> None:
        # The decoded reports kept for quick re-renders can be large; nobody is looking now.
        if self.broker is not None:
            self.broker.forget_preview()
        super().hideEvent(event)

    def attach(self, broker: Broker) -> None:
        """The broker, once the instance has started (the window may be shown before)."""
        self.broker = broker
        self.refresh()

    def add_commands(self, actions: Sequence[QAction]) -> None:
        """A button for each of ``actions`` along the top (the tray menu's entries, when
        there is no system tray); the last one stands apart at the right."""
        for n, action in enumerate(actions):
            if n and n == len(actions) - 1:
                self.commands.addStretch(1)
            button = QToolButton()
            button.setDefaultAction(action)  # its text, check mark and enabled state
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setAccessibleName(action.text().rstrip("…"))
            self.commands.addWidget(button)

    def show_notice(self, text: str, *, error: bool = False) -> None:
        colour = "#b3261e" if error else "#2a5d9f"
        self.banner.setStyleSheet(f"color: white; background: {colour}; padding: 6px;")
        self.banner.setText(_h(text))
        self.banner.show()

    def refresh(self, select: str | None = None) -> None:
        """Reload the list of pending batches and apps asking for consent (in the background)."""
        if select is not None:
            self._pending_select = select
        broker = self.broker
        if broker is None:
            return

        def load() -> tuple[list[AppInfo], list[Any]]:
            return broker.apps(), broker.pending()

        run_task(load, self._fill, self._fail)

    def _fill(self, loaded: tuple[list[AppInfo], list[Any]]) -> None:
        apps, batches = loaded
        self._apps = {a.app_id: a for a in apps}
        previous = self._selected_key()
        keep = self._pending_select or previous
        # Rebuilding the list must not reload what is on screen: that would throw away
        # the scope the person is editing. Selection signals wait until the end.
        self.tree.selectionModel().blockSignals(True)
        self.batches.removeRows(0, self.batches.rowCount())
        rows: dict[str, QStandardItem] = {}
        for app in apps:
            if app.status == AppStatus.AWAITING_CONSENT:
                item = QStandardItem(f"{app.name} (new app)")
                item.setToolTip(f"{app.name} wants to send telemetry: allow or block it")
                item.setData(f"app:{app.app_id}", ROLE_KEY)
                item.setAccessibleText(f"New app {app.name} asks for consent")
                self.batches.appendRow([item, QStandardItem(""), QStandardItem("asks")])
        for batch in batches:
            if batch.status == BatchStatus.OPEN:
                continue  # still collecting: not ready to decide
            parent = rows.get(batch.app_id)
            if parent is None:
                name = self._apps[batch.app_id].name if batch.app_id in self._apps else batch.app_id
                parent = QStandardItem(name)
                parent.setData(f"group:{batch.app_id}", ROLE_KEY)
                rows[batch.app_id] = parent
                self.batches.appendRow([parent, QStandardItem(""), QStandardItem("")])
            child = QStandardItem(window_label(batch.window_start, batch.window_end))
            child.setData(f"batch:{batch.batch_id}", ROLE_KEY)
            child.setAccessibleText(f"Batch from {batch.window_start} with {batch.reports} reports")
            parent.appendRow([child, QStandardItem(str(batch.reports)), QStandardItem(batch.status)])
        self.tree.expandAll()
        for column in range(self.batches.columnCount()):
            self.tree.resizeColumnToContents(column)
        self._pending_select = None
        first_run = not apps
        self.empty_text.setText(FIRST_RUN if first_run else NOTHING_WAITING)
        self.demo_button.setVisible(first_run)
        found = self._select_key(keep) or self._select_first()
        self.tree.selectionModel().blockSignals(False)
        if not found:
            self._latest.drop()
            self._cancel_approval()
            self._current = None
            self.pages.setCurrentWidget(self.empty)
            self._set_enabled(False)
            return
        if self._selected_key() != previous or (self._current is None and (previous is None or self._load_failed)):
            self._on_select(self.tree.currentIndex(), QModelIndex())

    def show_app(self, app_id: str) -> None:
        """Open on the first batch (or the consent question) of ``app_id``."""
        if not (self._select_key(f"app:{app_id}") or self._select_first(app_id)):
            self.refresh(select=f"app:{app_id}")

    def _selected_key(self) -> str | None:
        index = self.tree.currentIndex()
        return index.siblingAtColumn(0).data(ROLE_KEY) if index.isValid() else None

    def _select_key(self, key: str | None) -> bool:
        if key is None:
            return False
        if key.startswith("app:"):
            app_id = key[4:]
            if self._apps.get(app_id) is not None and self._apps[app_id].status != AppStatus.AWAITING_CONSENT:
                return self._select_first(app_id)
        for index in self._all_indexes():
            if index.data(ROLE_KEY) == key:
                self.tree.setCurrentIndex(index)
                return True
        return False

    def _select_first(self, app_id: str | None = None) -> bool:
        for index in self._all_indexes():
            key = str(index.data(ROLE_KEY) or "")
            if key.startswith("app:") and (app_id is None or key == f"app:{app_id}"):
                self.tree.setCurrentIndex(index)
                return True
            if key.startswith("batch:") and (app_id is None or index.parent().data(ROLE_KEY) == f"group:{app_id}"):
                self.tree.setCurrentIndex(index)
                return True
        return False

    def _all_indexes(self) -> list[QModelIndex]:
        found = []
        for row in range(self.batches.rowCount()):
            top = self.batches.index(row, 0)
            found.append(top)
            found.extend(self.batches.index(r, 0, top) for r in range(self.batches.rowCount(top)))
        return found

    def _on_select(self, current: QModelIndex, _previous: QModelIndex) -> None:
        key = str(current.siblingAtColumn(0).data(ROLE_KEY) or "")
        if key.startswith("app:"):
            self._show_consent(key[4:])
        elif key.startswith("batch:"):
            self._load_batch(key[6:])
        elif key.startswith("group:") and self.batches.itemFromIndex(current.siblingAtColumn(0)).hasChildren():
            self.tree.setCurrentIndex(self.batches.index(0, 0, current.siblingAtColumn(0)))

    def _show_consent(self, app_id: str) -> None:
        app = self._apps.get(app_id)
        if app is None:
            return
        m = app.manifest
        kept_out = set(m.field_names) - set(app.scope.fields)  # what its batches start without
        fields = "".join(
            f"<li><b>{_h(f.name)}</b> ({_h(f.sensitivity)}{', starts excluded' if f.name in kept_out else ''}): "
            f"{_h(f.description)}</li>"
            for f in m.fields
        )
        self.consent_text.setText(
            f"<h3>{_h(m.name)} by {_h(m.vendor)} wants to send telemetry to {_h(m.endpoint_host)}</h3>"
            f"<p><b>Why:</b> {_h(m.purpose)}</p>"
            f"<p><b>How long {_h(m.vendor)} keeps it:</b> {m.retention_days} days. "
            f"<a href='{_h(m.privacy_policy)}'>Privacy policy</a></p>"
            f"<p><b>What it may send</b> (identifying and pseudonymous fields start excluded):</p><ul>{fields}</ul>"
            "<p>If you allow it, nothing is sent until you approve each batch, or set a standing default.</p>"
        )
        self.consent_text.setOpenExternalLinks(True)
        self._latest.drop()
        self._cancel_approval()
        self._render_again = False
        self.pages.setCurrentIndex(2)
        self._current = None

    def _load_batch(self, batch_id: str) -> None:
        generation = self._latest.new()
        self._cancel_approval()
        self._render_again = False  # a scope edit of the previous batch must not render over this one
        self._current = None  # nothing is approvable until this batch is on screen
        self._payload_current = False
        self._load_failed = False
        self._shown_sha = None
        self.remember.setChecked(False)
        self._set_enabled(False)
        self.payload_info.setText("Rendering…")
        broker = self.broker
        assert broker is not None
        run_task(
            lambda: _render(broker, batch_id, None),
            lambda r: self._loaded(generation, r),
            lambda exc: self._render_failed(generation, exc),
        )

    def _loaded(self, generation: int, rendered: _Rendered) -> None:
        if not self._latest.is_current(generation):
            return  # the person has moved on
        view = rendered.view
        self._current = view
        undecided = view.batch.status in UNDECIDED
        if view.scope is not None:
            self.scope_model.load(view.manifest, view.scope, editable=undecided)
            with _blocked(self.records, self.aggregate):
                (self.aggregate if view.scope.mode == "aggregate" else self.records).setChecked(True)
        self.summary.setText(_summary_html(view))
        self.pages.setCurrentIndex(1)
        self._show_payload(rendered)
        self._payload_current = True
        self._set_enabled(undecided)

    def _scope_edited(self) -> None:
        if self._current is None:
            return
        if self._approving is not None:
            self._cancel_approval()
            self.show_notice(
                "Not approved: the scope changed after you clicked Approve. Check the payload and approve again.",
                error=True,
            )
        self._payload_current = False
        self.approve_button.setEnabled(False)  # until the payload on screen matches the scope
        self.payload_info.setText("Updating…")
        self._latest.drop()  # a render under way is out of date now
        if self._rendering:
            self._render_again = True
        else:
            self._render()

    def _render(self) -> None:
        if self._current is None:
            return
        generation = self._latest.new()
        batch_id = self._current.batch.batch_id
        scope = self.scope_model.scope()
        broker = self.broker
        assert broker is not None
        self._rendering = True
        run_task(
            lambda: _render(broker, batch_id, scope),
            lambda r: self._rendered(generation, r),
            lambda exc: self._render_failed(generation, exc),
        )

    def _render_done(self) -> bool:
        """A scope render ended: start the one that waited for it, if any (then True)."""
        self._rendering = False
        if self._render_again:
            self._render_again = False
            self._render()
            return True
        return False

    def _rendered(self, generation: int, rendered: _Rendered) -> None:
        if self._render_done() or not self._latest.is_current(generation):
            return
        self._current = rendered.view
        self._show_payload(rendered)
        self._payload_current = True
        self._set_enabled(True)
        if self._approving is not None:
            self._send_approval()  # the payload of the scope the person chose is on screen now

    def _show_everything(self) -> None:
        """Pretty-print the whole payload (in the background) and show it."""
        view = self._current
        if view is None or view.payload is None:
            return
        payload, generation = view.payload, self._latest.ticket
        self.show_all.setEnabled(False)

        def done(text: str) -> None:
            self.show_all.setEnabled(True)
            if self._latest.is_current(generation) and self._shown_sha == payload.sha256:
                self.payload.setPlainText(text)
                self.show_all.hide()

        def failed(exc: BaseException) -> None:
            self.show_all.setEnabled(True)
            self._fail(exc)

        run_task(lambda: plainly(json.dumps(payload.obj(), indent=2, ensure_ascii=False)), done, failed)

    def _show_payload(self, rendered: _Rendered) -> None:
        payload = rendered.view.payload
        if payload is None:
            self._shown_sha = None
            self.payload_info.setText("nothing is or was sent")
            self.payload.setPlainText("")
            self.show_all.hide()
            return
        self._shown_sha = payload.sha256
        self.payload_info.setText(f"{payload.size:,} bytes · SHA-256 {payload.sha256}")
        if rendered.truncated:
            self.payload.setPlainText(f"{rendered.pretty}\n… (the rest of the {payload.size:,} bytes: Show all of it)")
            self.show_all.show()
        else:
            self.payload.setPlainText(rendered.pretty)
            self.show_all.hide()

    # -- decisions -------------------------------------------------------------------

    def approve(self) -> None:
        """Approve the batch as shown. A coarsening editor still open is committed first; if
        that changed the scope (or a render is under way), the batch is approved once the
        payload for that scope is on screen, with exactly its digest."""
        view = self._current
        if view is None or self.broker is None or view.batch.status not in UNDECIDED:
            return
        self._commit_editor()
        self._approving = (view.batch.batch_id, self.remember.isChecked())
        if self._payload_current and not self._rendering:
            self._send_approval()
        else:
            self._set_enabled(False)
            self.payload_info.setText("Updating… the batch is approved as soon as this scope's payload is shown")

    def _commit_editor(self) -> None:
        """Commit and close the coarsening editor, if one is open (as losing focus would)."""
        index = self.scope_view.currentIndex()
        editor = self.scope_view.indexWidget(index) if index.isValid() else None
        if editor is not None:
            self.coarsen_delegate.commitData.emit(editor)
            self.coarsen_delegate.closeEditor.emit(editor, QAbstractItemDelegate.EndEditHint.NoHint)

    def _cancel_approval(self) -> None:
        self._approving = None

    def _send_approval(self) -> None:
        approving, self._approving = self._approving, None
        view, sha, broker = self._current, self._shown_sha, self.broker
        if approving is None or view is None or sha is None or broker is None:
            return
        batch_id, remember = approving
        if view.batch.batch_id != batch_id:
            return
        scope = self.scope_model.scope()
        self._set_enabled(False)
        run_task(
            lambda: broker.approve(batch_id, scope, expected_sha256=sha, remember=remember),
            lambda _: self._decided(batch_id),
            self._fail,
        )

    def discard(self) -> None:
        broker = self.broker
        if self._current is None or broker is None:
            return
        batch_id = self._current.batch.batch_id
        self._cancel_approval()
        self._set_enabled(False)
        run_task(lambda: broker.discard(batch_id), lambda _: self._decided(batch_id), self._fail)

    def _consent(self, allow: bool) -> None:
        key = self._selected_key() or ""
        broker = self.broker
        if not key.startswith("app:") or broker is None:
            return
        app_id = key[4:]
        run_task(lambda: broker.set_consent(app_id, allow), lambda _: self._consented(app_id), self._fail)

    def _demo(self) -> None:
        self.demo_button.setEnabled(False)
        self.demo_requested.emit()

    def _consented(self, _app_id: str) -> None:
        self.changed.emit()
        self.refresh()

    def _decided(self, batch_id: str) -> None:
        self.banner.hide()
        self.remember.setChecked(False)
        self.decided.emit(batch_id)
        self.changed.emit()
        self.refresh()

    def _render_failed(self, generation: int, exc: BaseException) -> None:
        if self._render_done() or not self._latest.is_current(generation):
            return  # about a batch or scope no longer on screen
        not_approved = self._approving is not None
        self._cancel_approval()
        # Nothing approvable; a scope edit renders again (the batch stays on screen), and
        # a batch that could not be loaded at all is loaded again by the next refresh.
        self._load_failed = self._current is None
        self._payload_current = False
        self._shown_sha = None
        self.payload_info.setText("Not shown: change the scope or refresh (F5) to try again")
        self._fail(exc, "Not approved: the payload for this scope could not be shown. " if not_approved else "")

    def _fail(self, exc: BaseException, lead: str = "") -> None:
        """Show ``exc`` in the banner (after ``lead``, plain text saying what it stopped)."""
        if isinstance(exc, TrayError):
            text = f"<b>{_h(exc.title)}</b>: {_h(told(exc))}"
        else:
            text = f"<b>Something went wrong</b>: {_h(str(exc) or type(exc).__name__)} (it is in the log)"
        text = _h(lead) + text
        self.banner.setStyleSheet("color: white; background: #b3261e; padding: 6px;")
        self.banner.setText(text)
        self.banner.show()
        if self._current is not None:
            self._set_enabled(self._current.batch.status in UNDECIDED)
            # Whatever failed, Approve stays off while the payload is not the scope's.
            self.approve_button.setEnabled(
                self.approve_button.isEnabled() and self._payload_current and not self._rendering
            )

    def _set_enabled(self, on: bool) -> None:
        for widget in (self.approve_button, self.discard_button, self.remember, self.records, self.aggregate):
            widget.setEnabled(on)


def window_label(start: str, end: str) -> str:
    """A collection window as a person reads it: a day, a week, or an hour (UTC)."""
    if start.endswith("T00:00:00Z") and end.endswith("T00:00:00Z"):
        days = (datetime.fromisoformat(end[:10]) - datetime.fromisoformat(start[:10])).days
        return (
            start[:10]
            if days == 1
            else f"{start[:10]} to {(datetime.fromisoformat(end[:10]) - timedelta(days=1)).date()}"
        )
    return f"{start[:10]} {start[11:16]}–{end[11:16]} UTC"


def _render(broker: Broker, batch_id: str, scope: Scope | None) -> _Rendered:
    """On a pool thread: the batch under ``scope`` and the start of its payload, pretty-printed
    (the whole of a 100,000-report batch would take longer than rendering it did; *Show
    all of it* does the rest)."""
    view = broker.view(batch_id, scope)
    if view.payload is None:
        return _Rendered(view, "")
    pretty, truncated = view.payload.pretty_start(PREVIEW_LIMIT)
    return _Rendered(view, plainly(pretty), truncated=truncated)


def _summary_html(view: BatchView) -> str:
    m, b = view.manifest, view.batch
    lines = [
        f"<h3>{_h(m.name)} <span style='font-weight:normal'>by {_h(m.vendor)}</span></h3>",
        f"<p><b>Sends to</b> {_h(m.endpoint_host)} &nbsp; <b>Why</b> {_h(m.purpose)}</p>",
        f"<p><b>Window</b> {_h(window_label(b.window_start, b.window_end))} &nbsp; <b>Reports</b> {view.reports:,}"
        f" &nbsp; <b>{_h(m.vendor)} keeps it</b> {m.retention_days} days &nbsp; <b>Status</b> {_h(b.status)}</p>",
    ]
    if view.change is not None:
        new = ", ".join(view.change.excluded_until_reviewed) or "none"
        lines.append(
            f"<p style='color:#8a5a00'><b>Changed since you last approved</b> (manifest v{view.change.old_version}"
            f" → v{view.change.new_version}): new or changed fields {_h(new)}, left out until you tick them.</p>"
        )
    if view.dropped:
        names = ", ".join(f"{_h(plain_text(k))} ({v})" for k, v in view.dropped.items())  # the app's words
        lines.append(f"<p><b>Dropped on arrival</b> (not declared by the app, never sent): {names}</p>")
    return "".join(lines)


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


class _blocked:
    """Change widgets without their signals firing (a programmatic change is not an edit)."""

    def __init__(self, *widgets: QWidget) -> None:
        self.widgets = widgets

    def __enter__(self) -> None:
        for w in self.widgets:
            w.blockSignals(True)

    def __exit__(self, *exc: object) -> None:
        for w in self.widgets:
            w.blockSignals(False)
