"""The review window: pending batches by app, the scope editor, and the exact payload.

Everything that reads the database or renders a payload runs on the thread pool
(:func:`run_task`); results come back as signals. A render is tagged (:class:`Latest`) so
a slow answer for an old scope never overwrites a newer one. *Approve and send* passes the
SHA-256 of the payload on screen, so what is approved is exactly what was shown.

What cannot be done is disabled, with the reason in words and the button that fixes it
beside it (a batch still collecting: *Close now*; an app not allowed yet: *Allow*); each
decision says what it did in the banner, and an approved batch says when it was sent.
Times are local (:mod:`.local_time`); the payload keeps UTC, as it is sent.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QGuiApplication,
    QHideEvent,
    QKeySequence,
    QShortcut,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemDelegate,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSizePolicy,
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
    BatchSummary,
    BatchView,
    Broker,
    FieldSpec,
    Manifest,
    NotFoundError,
    Scope,
    ScopeError,
    SecretStore,
    TrayError,
    WireFormat,
    bucket_words,
    level_words,
    needs_secret,
    noise_domain,
    noise_in_words,
    other_words,
    plain_text,
    plainly,
)
from .disclosure_panel import DisclosurePanel
from .local_time import clock_words, local, span_words, window_words
from .look import Tone, batch_labels, fit_to_screen, install_focus_ring, notice_style, tone_colour
from .remedies import told
from .settings_window import credentials_note
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
    "<p>No app has registered yet. To see how it works, load the demo: three example apps (one "
    "of them speaks OpenTelemetry), a stream of sample reports, and a demo vendor on this "
    "computer that shows exactly what arrived. Nothing leaves this machine.</p>"
)
PREVIEW_LIMIT = PREVIEW_CHARS
# The legend reads the values of an aggregate payload up to this size (records: the rule only).
LEGEND_LIMIT = 1 << 20
ROLE_KEY = Qt.ItemDataRole.UserRole + 1
ROLE_STATUS = Qt.ItemDataRole.UserRole + 2  # a batch row's status (a collecting batch is chosen last)
CADENCE_WORDS = {"hourly": "a batch an hour", "daily": "a batch a day", "weekly": "a batch a week",
                 "event": "each report its own batch"}  # fmt: skip
STATUS_WORDS = {BatchStatus.OPEN: "collecting", BatchStatus.HELD: "held", BatchStatus.PENDING: "to review"}
Index = QModelIndex | QPersistentModelIndex


# -- the scope editor's model -----------------------------------------------------------


class ScopeModel(QAbstractTableModel):
    """One row per declared field: include, name, sensitivity, coarsening, noise, description.

    Ticking or unticking a field is the core's own edit (:meth:`Scope.edited`), so a field
    ticked starts at the coarsening its manifest asks for, as the CLI's ``--include``
    does; the model keeps no copy of that rule."""

    INCLUDE, FIELD, SENSITIVITY, COARSEN, NOISE, DESCRIPTION = range(6)
    HEADERS = ("Send", "Field", "Sensitivity", "Coarsen to", "Noise", "What it is")
    scopeChanged = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._manifest: Manifest | None = None
        self._fields: list[FieldSpec] = []
        self._included: set[str] = set()
        self._coarsen: dict[str, str] = {}
        self._noise: dict[str, float] = {}  # field → epsilon, for fields whose manifest offers noise
        self.mode = "records"
        self.editable = True

    def load(self, manifest: Manifest, scope: Scope, editable: bool) -> None:
        self.beginResetModel()
        self._manifest = manifest
        self._fields = list(manifest.fields)
        self._included = set(scope.fields)
        self._coarsen = dict(scope.coarsen)
        self._noise = dict(scope.noise)
        self.mode = scope.mode
        self.editable = editable
        self.endResetModel()

    def scope(self) -> Scope:
        coarsen = {k: v for k, v in self._coarsen.items() if k in self._included}
        noise = {k: v for k, v in self._noise.items() if k in self._included}
        return Scope(tuple(self._included), coarsen, "aggregate" if self.mode == "aggregate" else "records", noise)

    def set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            self.scopeChanged.emit()

    def spec(self, row: int) -> FieldSpec:
        return self._fields[row]

    def coarsened(self) -> list[tuple[str, str]]:
        """The sent fields that are coarsened, with their levels, in the manifest's order."""
        return [
            (f.name, self._coarsen[f.name])
            for f in self._fields
            if f.name in self._included and f.name in self._coarsen
        ]

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
        if column == self.NOISE and spec.noise is not None:
            if role == Qt.ItemDataRole.CheckStateRole:
                return Qt.CheckState.Checked if spec.name in self._noise else Qt.CheckState.Unchecked
            if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
                return self.noise_words(spec)
        if role == Qt.ItemDataRole.AccessibleTextRole and column == self.INCLUDE:
            return f"Send {spec.name}: {'yes' if spec.name in self._included else 'no'}"
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.COARSEN and spec.coarsen_levels:
                level = self._coarsen.get(spec.name, "exact")
                choices = "; ".join(f"{lv}: {level_words(lv)}" for lv in spec.coarsen_levels)
                return f"{spec.name} is sent {_as(level)}. The choices: {choices}."
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
        if column == self.NOISE:
            if spec.noise is None:
                return "—"
            epsilon = self._noise.get(spec.name)
            return f"add noise (ε = {epsilon:g})" if epsilon is not None else "add noise"
        if column == self.DESCRIPTION:
            return spec.description
        return None

    def noise_words(self, spec: FieldSpec) -> str:
        """What adding noise to ``spec`` does, in words from its epsilon (the chosen one, else
        the manifest's offer)."""
        assert spec.noise is not None
        epsilon = self._noise.get(spec.name, spec.noise)
        state = "Noise is added" if spec.name in self._noise else "Add noise"
        return f"{state} (ε = {epsilon:g}): {noise_in_words(epsilon, len(noise_domain(spec)))}."

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if not index.isValid() or not self.editable:
            return base
        spec = self._fields[index.row()]
        if index.column() == self.INCLUDE:
            return base | Qt.ItemFlag.ItemIsUserCheckable
        if index.column() == self.COARSEN and spec.coarsen_levels and spec.name in self._included:
            return base | Qt.ItemFlag.ItemIsEditable
        if index.column() == self.NOISE and spec.noise is not None:
            # Noise changes what an included field sends; an excluded one sends nothing.
            on = spec.name in self._included
            return (base | Qt.ItemFlag.ItemIsUserCheckable) if on else Qt.ItemFlag.ItemIsSelectable
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
            self._noise = dict(edited.noise)
        elif index.column() == self.NOISE and role == Qt.ItemDataRole.CheckStateRole:
            checked = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
            if spec.noise is None or checked == (spec.name in self._noise) or self._manifest is None:
                return True
            try:  # the core's own edit: it checks the field offers noise and is included
                edited = self.scope().edited(self._manifest, noise={spec.name: spec.noise if checked else None})
            except ScopeError:
                return False
            self._noise = dict(edited.noise)
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
        levels = ["exact", *model.spec(index.row()).coarsen_levels]
        combo.addItems(levels)
        for n, level in enumerate(levels):  # what each level does, where it is chosen
            combo.setItemData(n, f"Sent as {level_words(level)}.", Qt.ItemDataRole.ToolTipRole)
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
    legend: str = ""  # how to read its coarsened values and counts, in words ("" when plain)
    split: tuple[str, ...] = ()  # a DAP batch: who holds the two halves, the promise, the warnings


class ReviewWindow(QWidget):
    """Pending batches grouped by app, one batch in detail, approve or discard it."""

    decided = Signal(str)  # batch id, after an approval or discard was recorded
    changed = Signal()  # something the tray shows may have changed
    demo_requested = Signal()  # the person asked for the first-run demo
    remove_demo_requested = Signal()  # the person confirmed Remove the demo

    def __init__(self, broker: Broker | None, secrets: SecretStore | None = None) -> None:
        super().__init__()
        self.broker = broker
        # Asked (off the UI thread) whether a vendor's secret can be stored, before approving.
        self.secrets = secrets
        self.setWindowTitle("Telemetry Tray — Review")
        self.setAccessibleName("Review pending telemetry")
        install_focus_ring()  # a focus outline that shows
        fit_to_screen(self, 1100, 720)  # the screen it opens on, frame included
        self._latest = Latest()  # renders and loads: an answer for an older request is dropped
        self._current: BatchView | None = None
        self._shown_sha: str | None = None
        self._pending_select: str | None = None
        self._apps: dict[str, AppInfo] = {}
        self._batches: list[BatchSummary] = []  # as the last refresh read them
        self._demo_url: str | None = None
        # Approved batches whose sending the banner reports: batch id -> what, where, whose.
        self._watching: dict[str, _Watch] = {}
        # Whose error the banner shows (an app id and its status then): the banner goes
        # once that app's status changed (allowed since, say).
        self._notice_cause: tuple[str, str] | None = None
        self.question: QMessageBox | None = None  # the open Block or Remove the demo question

        self.batches = QStandardItemModel(self)
        self.batches.setHorizontalHeaderLabels(["Waiting", "Reports", "Status"])
        self.tree = QTreeView()
        self.tree.setModel(self.batches)
        self.tree.setAccessibleName("Pending batches by app")
        self.tree.setUniformRowHeights(True)
        # The label column gives way, so Reports and Status always show.
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.setMinimumWidth(300)
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
        self.disclosure = DisclosurePanel()
        self.payload = QPlainTextEdit()
        self.payload.setReadOnly(True)
        self.payload.setAccessibleName("The exact payload that would be sent")
        self.payload.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.show_all = QPushButton("Show all o&f it")
        self.show_all.setAccessibleName("Show the whole payload")
        self.show_all.clicked.connect(self._show_everything)
        self.show_all.hide()

        # How to read what is chosen: the coarsening levels in use, the mode, the payload.
        self.coarsen_help = _note("What the coarsening chosen does")
        self.mode_help = _note("What the chosen mode sends")
        self.records.setToolTip("Each report is sent as a record with the ticked fields, coarsened as chosen.")
        self.aggregate.setToolTip(
            "No record is sent: for each ticked field, only how many reports had each value. Rare values "
            "are counted together as “(other)”."
        )
        self.payload_legend = _note("How to read the payload")

        # Why Approve is off, and the button that changes that.
        self.reason = _note("Why this batch cannot be approved now")
        self.close_now_button = QPushButton("Close &now")
        self.close_now_button.setAccessibleName("Close this batch now, so it can be decided")
        self.close_now_button.clicked.connect(self.close_now)
        self.allow_here_button = QPushButton("Allo&w")
        self.allow_here_button.setAccessibleName("Allow this app to send telemetry, batch by batch")
        self.allow_here_button.clicked.connect(self._allow_current)

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
        self.credentials_line = QLabel()  # a vendor's secret the keyring cannot give: said before approving
        self.credentials_line.setWordWrap(True)
        self.credentials_line.setTextFormat(Qt.TextFormat.PlainText)
        self.credentials_line.hide()
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
        self.banner.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # no spare height
        self.banner.hide()

        # While the demo is loaded: its vendor's page, and the way out of it.
        self.demo_text = _note("The demo")
        self.vendor_button = QPushButton("Open the demo &vendor's page")
        self.vendor_button.setAccessibleName("Open the demo vendor's page in a browser: what arrived")
        self.vendor_button.clicked.connect(self.open_vendor_page)
        self.remove_demo_button = QPushButton("Remove the de&mo…")
        self.remove_demo_button.setAccessibleName("Remove the demo apps, their data and the demo vendor")
        self.remove_demo_button.clicked.connect(self._ask_remove_demo)

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
        self.summary.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        # Room for the scope: about seven fields before it scrolls (the payload gives way first).
        self.scope_view.setMinimumHeight(self.scope_view.verticalHeader().defaultSectionSize() * 7 + 28)
        batch_layout.addWidget(self.scope_view, 3)
        batch_layout.addWidget(self.coarsen_help)
        modes = QHBoxLayout()
        modes.addWidget(self.records)
        modes.addWidget(self.aggregate)
        modes.addSpacing(12)
        modes.addWidget(self.mode_help, 1)
        modes.addStretch()
        batch_layout.addLayout(modes)
        payload_title = QHBoxLayout()
        payload_title.addWidget(QLabel("<b>Exactly what would be sent</b>"))
        payload_title.addWidget(self.payload_info, 1)
        payload_title.addWidget(self.show_all)
        batch_layout.addLayout(payload_title)
        # The exact bytes, and beside them what they say about the person (DESIGN.md, the UI).
        self.payload_area = QSplitter(Qt.Orientation.Horizontal)
        self.payload_area.addWidget(self.payload)
        self.payload_area.addWidget(self.disclosure)
        self.payload_area.setChildrenCollapsible(False)
        self.payload_area.setStretchFactor(0, 3)
        self.payload_area.setStretchFactor(1, 2)
        batch_layout.addWidget(self.payload_area, 2)
        batch_layout.addWidget(self.payload_legend)
        batch_layout.addWidget(self.remember)
        batch_layout.addWidget(self.credentials_line)
        buttons = QHBoxLayout()
        buttons.addWidget(self.reason, 1)
        buttons.addStretch()  # the buttons keep their size when there is no reason to give
        buttons.addWidget(self.close_now_button)
        buttons.addWidget(self.allow_here_button)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.approve_button)
        batch_layout.addLayout(buttons)
        self.close_now_button.hide()
        self.allow_here_button.hide()

        consent_page = QWidget()
        consent_layout = QVBoxLayout(consent_page)
        self.consent_text = QLabel("")
        self.consent_text.setWordWrap(True)
        self.consent_text.setTextFormat(Qt.TextFormat.RichText)
        self.consent_text.setAccessibleName("What the new app asks for")
        self.consent_text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.consent_text.setOpenExternalLinks(True)
        consent_layout.addWidget(self.consent_text)
        # The details behind a toggle, as OpenSnitch's prompt shows them.
        self.details_toggle = QToolButton()
        self.details_toggle.setText("Details")
        self.details_toggle.setCheckable(True)
        self.details_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.details_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_toggle.setAutoRaise(True)
        self.details_toggle.setAccessibleName("Show the details: every field, the privacy policy, the address")
        self.details_toggle.toggled.connect(self._show_details)
        self.consent_details = QLabel("")
        self.consent_details.setWordWrap(True)
        self.consent_details.setTextFormat(Qt.TextFormat.RichText)
        self.consent_details.setOpenExternalLinks(True)
        self.consent_details.setAccessibleName("Details of what the new app asks for")
        self.consent_details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.consent_details.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.consent_details.hide()
        consent_layout.addWidget(self.details_toggle)
        consent_layout.addWidget(self.consent_details)
        consent_layout.addStretch(1)
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
        splitter.setSizes([380, 720])
        # The divider stays where it is when the right page changes: the pages' widths do
        # not push it (their own minimum is fixed), and only the right side grows.
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        self.pages.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.pages.setMinimumWidth(520)
        self.splitter = splitter
        layout = QVBoxLayout(self)
        self.commands = QHBoxLayout()  # empty unless add_commands() fills it
        layout.addLayout(self.commands)
        self.demo_bar = QWidget()
        demo_layout = QHBoxLayout(self.demo_bar)
        demo_layout.setContentsMargins(0, 0, 0, 0)
        self.demo_text.show()
        demo_layout.addWidget(self.demo_text, 1)
        demo_layout.addWidget(self.vendor_button)
        demo_layout.addWidget(self.remove_demo_button)
        self.demo_bar.hide()
        layout.addWidget(self.demo_bar)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)

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
        self.banner.setStyleSheet(notice_style(self.palette(), Tone.ERROR if error else Tone.INFO))
        self.banner.setText(_h(text))
        self.banner.show()
        self._notice_cause = None

    def set_demo(self, url: str | None, *, loaded: bool) -> None:
        """While the demo is ``loaded``: a bar with its vendor's page (``url``; None while
        the vendor is not running) and *Remove the demo…*."""
        self._demo_url = url
        self.demo_bar.setVisible(loaded)
        self.vendor_button.setVisible(url is not None)
        if url is not None:
            self.demo_text.setText(
                f"Demo loaded: its apps send to a demo vendor on this computer ({_h(urlsplit(url).netloc)}), "
                "whose page shows exactly what arrived. Nothing leaves this machine."
            )
        else:
            self.demo_text.setText("Demo loaded, but its vendor is not running, so its approved batches wait.")
        self.remove_demo_button.setEnabled(True)
        if not loaded and self.question is not None and self.question.objectName() == "remove-demo":
            self.question.close()  # its cause is gone

    def open_vendor_page(self) -> None:
        """The demo vendor's page, in the browser."""
        url = self._demo_url
        if url is not None and not QDesktopServices.openUrl(QUrl(url)):
            self.show_notice(f"No browser could be started. Open {url} in one to see what the demo vendor received.")

    def refresh(self, select: str | None = None) -> None:
        """Reload the list of pending batches and apps asking for consent (in the background)."""
        if select is not None:
            self._pending_select = select
        broker = self.broker
        if broker is None:
            return
        watching = list(self._watching)

        def load() -> tuple[list[AppInfo], list[BatchSummary], dict[str, BatchStatus | None]]:
            statuses: dict[str, BatchStatus | None] = {}
            for batch_id in watching:
                try:
                    statuses[batch_id] = broker.batch_summary(batch_id).status
                except NotFoundError:  # its app was removed
                    statuses[batch_id] = None
            return broker.apps(), broker.pending(), statuses

        run_task(load, self._fill, self._fail)

    def _fill(self, loaded: tuple[list[AppInfo], list[BatchSummary], dict[str, BatchStatus | None]]) -> None:
        apps, batches, watched = loaded
        self._apps = {a.app_id: a for a in apps}
        self._batches = batches
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
        labels = batch_labels(batches)  # batches of one app and day told apart by their hours
        for batch in batches:
            parent = rows.get(batch.app_id)
            if parent is None:
                name = self._apps[batch.app_id].name if batch.app_id in self._apps else batch.app_id
                parent = QStandardItem(name)
                parent.setData(f"group:{batch.app_id}", ROLE_KEY)
                rows[batch.app_id] = parent
                self.batches.appendRow([parent, QStandardItem(""), QStandardItem("")])
            child = QStandardItem(labels[batch.batch_id])
            child.setData(f"batch:{batch.batch_id}", ROLE_KEY)
            child.setData(str(batch.status), ROLE_STATUS)
            status = QStandardItem(STATUS_WORDS.get(batch.status, str(batch.status)))
            if batch.status == BatchStatus.OPEN:
                closes = clock_words(batch.window_end, self._now())
                status.setText(f"collecting until {closes}")
                child.setToolTip(
                    f"Still collecting: reports join this batch until {closes}. Select it to close it now."
                )
                child.setAccessibleText(f"Batch collecting until {closes}, {batch.reports} reports so far")
            else:
                child.setAccessibleText(f"Batch from {labels[batch.batch_id]} with {batch.reports} reports")
            parent.appendRow([child, QStandardItem(str(batch.reports)), status])
        self.tree.expandAll()
        for column in range(self.batches.columnCount()):
            self.tree.resizeColumnToContents(column)
        self._pending_select = None
        first_run = not apps
        self.empty_text.setText(FIRST_RUN if first_run else NOTHING_WAITING)
        self.demo_button.setVisible(first_run)
        found = self._select_key(keep) or self._select_first()
        self.tree.selectionModel().blockSignals(False)
        self._report_sent(watched)
        self._clear_stale_notice()
        if not found:
            self._latest.drop()
            self._cancel_approval()
            self._current = None
            self.pages.setCurrentWidget(self.empty)
            self._set_enabled(False)
            return
        key = self._selected_key()
        if key != previous or (self._current is None and (previous is None or self._load_failed)):
            self._on_select(self.tree.currentIndex(), QModelIndex())
        elif key is not None and key.startswith("app:") and self.pages.currentIndex() == 2:
            self._consent_texts(key[4:])  # what it has left may have changed
        elif self._current is not None and self._changed_under_view():
            self._load_batch(self._current.batch.batch_id, keep_scope=True)

    def _changed_under_view(self) -> bool:
        """Whether the batch on screen changed since it was loaded: its status (closed,
        allowed) or its app's, or, while it collects, its count of reports."""
        view = self._current
        assert view is not None
        summary = next((b for b in self._batches if b.batch_id == view.batch.batch_id), None)
        app = self._apps.get(view.batch.app_id)
        if summary is None or app is None:
            return False
        if summary.status != view.batch.status or app.status != view.app.status:
            return True
        # New reports in a collecting batch: shown, unless the person is choosing a coarsening.
        index = self.scope_view.currentIndex()
        editing = index.isValid() and self.scope_view.indexWidget(index) is not None
        return summary.status == BatchStatus.OPEN and summary.reports != view.reports and not editing

    def _report_sent(self, watched: dict[str, BatchStatus | None]) -> None:
        """Say what became of the approved batches the banner spoke of."""
        for batch_id, status in watched.items():
            watch = self._watching.get(batch_id)
            if watch is None or status == BatchStatus.APPROVED:
                continue  # still to be sent: the banner says it will be
            del self._watching[batch_id]
            if status == BatchStatus.DELIVERED:
                self.show_notice(f"Sent {watch.size:,} bytes to {watch.host} ({watch.app}, {watch.reports:,} reports).")
            elif status == BatchStatus.FAILED:
                self.show_notice(
                    f"{watch.host} refused {watch.app}'s batch, so it was not delivered; History has its answer.",
                    error=True,
                )

    def _clear_stale_notice(self) -> None:
        """An error about an app (approving its batch, allowing it) goes once that app's
        status changed (it was allowed meanwhile, say) or the app is gone."""
        if self._notice_cause is None:
            return
        app_id, status = self._notice_cause
        app = self._apps.get(app_id)
        if app is None or app.status != status:
            self.banner.hide()
            self._notice_cause = None

    def _now(self) -> datetime | None:
        return self.broker.now() if self.broker is not None else None

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
        """Select the first thing to decide (of ``app_id``): a consent question or a batch
        that has closed; a batch still collecting only when there is nothing else."""
        candidates = []
        for index in self._all_indexes():
            key = str(index.data(ROLE_KEY) or "")
            if key.startswith("app:") and (app_id is None or key == f"app:{app_id}"):
                candidates.append((0, index))
            if key.startswith("batch:") and (app_id is None or index.parent().data(ROLE_KEY) == f"group:{app_id}"):
                candidates.append((int(index.data(ROLE_STATUS) == BatchStatus.OPEN), index))
        if not candidates:
            return False
        self.tree.setCurrentIndex(min(candidates, key=lambda c: c[0])[1])
        return True

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
            self._select_first(key[6:])

    def _show_consent(self, app_id: str) -> None:
        if app_id not in self._apps:
            return
        self._consent_texts(app_id)
        self.details_toggle.setChecked(False)
        self._latest.drop()
        self._cancel_approval()
        self._render_again = False
        self.pages.setCurrentIndex(2)
        self._current = None

    def _left_by(self, app_id: str) -> tuple[int, int]:
        """How many batches and reports ``app_id`` has left undecided, as last read."""
        mine = [b for b in self._batches if b.app_id == app_id]
        return len(mine), sum(b.reports for b in mine)

    def _consent_texts(self, app_id: str) -> None:
        """The consent question: who, where, why, what it has left here, what Allow and
        Block do; every field, the policy and the address in the details."""
        app = self._apps[app_id]
        m = app.manifest
        batches, reports = self._left_by(app_id)
        if reports:
            left = (
                f"<p><b>It has already sent {_count(reports, 'report', 'reports')}</b>"
                f" ({_count(batches, 'batch', 'batches')}): they are held here, and nothing has left this "
                "computer.</p>"
            )
            blocked = f"the {_count(reports, 'report', 'reports')} it left here are deleted, and "
        else:
            left = "<p>It has sent nothing yet.</p>"
            blocked = ""
        kept_out = set(m.field_names) - set(app.scope.fields)  # what its batches start without
        excluded = f", {len(kept_out)} of them (identifying or pseudonymous) left out until you tick them"
        excluded = excluded if kept_out else ""
        self.consent_text.setText(
            f"<h3>{_h(m.name)} by {_h(m.vendor)} wants to send telemetry to {_h(m.endpoint_host)}</h3>"
            f"<p><b>Why:</b> {_h(m.purpose)}</p>"
            f"<p><b>How long {_h(m.vendor)} keeps it:</b> {m.retention_days} days. "
            f"<b>What it may send:</b> {_count(len(m.fields), 'field', 'fields')}"
            f"{excluded}.</p>"
            f"{left}"
            "<p><b>Allow:</b> nothing is sent until you approve a batch, after seeing exactly what it holds "
            "(or until you set a standing default in Settings).<br>"
            f"<b>Block:</b> {blocked}its reports are refused until you allow it again in Settings.</p>"
        )
        fields = "".join(
            f"<li><b>{_h(f.name)}</b> ({_h(f.sensitivity)}{', starts excluded' if f.name in kept_out else ''}): "
            f"{_h(f.description)}</li>"
            for f in m.fields
        )
        self.consent_details.setText(
            f"<p><b>What it may send</b> (identifying and pseudonymous fields start excluded):</p><ul>{fields}</ul>"
            f"<p><b>Privacy policy:</b> <a href='{_h(m.privacy_policy)}'>{_h(m.privacy_policy)}</a><br>"
            f"<b>Sends to:</b> {_h(m.endpoint)}<br>"
            f"<b>App id:</b> {_h(m.app_id)} · manifest version {m.version} · "
            f"{_h(CADENCE_WORDS.get(m.cadence, m.cadence))} · counts below {m.min_count} are never sent "
            "on their own</p>"
        )

    def _show_details(self, on: bool) -> None:
        self.consent_details.setVisible(on)
        self.details_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def _load_batch(self, batch_id: str, *, keep_scope: bool = False) -> None:
        """Load a batch (in the background) with its app's scope, or with ``keep_scope``
        the scope on screen: the same batch again, after it closed or its app was allowed."""
        generation = self._latest.new()
        scope = self.scope_model.scope() if keep_scope and self._current is not None else None
        self._cancel_approval()
        self._render_again = False  # a scope edit of the previous batch must not render over this one
        self._current = None  # nothing is approvable until this batch is on screen
        self._payload_current = False
        self._load_failed = False
        self._shown_sha = None
        if scope is None:
            self.remember.setChecked(False)
        self._set_enabled(False)
        self.payload_info.setText("Rendering…")
        broker = self.broker
        assert broker is not None
        run_task(
            lambda: _render(broker, batch_id, scope),
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
        self.summary.setText(_summary_html(view, self._now(), rendered.split))
        self.pages.setCurrentIndex(1)
        self._show_payload(rendered)
        self._payload_current = True
        self._set_enabled(undecided)
        self._explain_batch()
        self._check_credentials(view) if undecided else self.credentials_line.hide()

    def deciding_batch(self) -> bool:
        """Whether an undecided batch is in front of the person (a new app's question then
        waits in the list rather than taking its place)."""
        view = self._current
        return self.pages.currentIndex() == 1 and view is not None and view.batch.status in UNDECIDED

    def _check_credentials(self, view: BatchView) -> None:
        """Say before approving when the vendor's secret is missing or cannot be kept (the
        batch would wait, unsent); the keyring is asked on a pool thread."""
        secrets = self.secrets
        self.credentials_line.hide()
        if secrets is None or not needs_secret(view.manifest.auth):
            return
        batch_id = view.batch.batch_id

        def shown(note: str) -> None:
            if self._current is None or self._current.batch.batch_id != batch_id:
                return  # the person has moved on
            self.credentials_line.setText(note)
            self.credentials_line.setStyleSheet(notice_style(self.palette(), Tone.WARNING, padding="4px"))
            self.credentials_line.setVisible(bool(note))

        run_task(lambda: credentials_note(view.app, secrets), shown)

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
        self._explain_scope()
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
        # What the scoped batch says, from the same render (the core summarised its columns).
        self.disclosure.show_disclosure(rendered.view.summary)
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
        self.payload_legend.setText(rendered.legend)
        self.payload_legend.setVisible(bool(rendered.legend))

    def _explain_batch(self) -> None:
        """What keeps the batch on screen from being approved, and the button that changes
        it; then what the scope chosen does."""
        view = self._current
        self.close_now_button.hide()
        self.allow_here_button.hide()
        reason = ""
        if view is not None and view.batch.status == BatchStatus.OPEN:
            now = self._now()
            closes = clock_words(view.batch.window_end, now)
            left = local(view.batch.window_end) - now if now is not None else None
            within = (
                f" (in {span_words(left.total_seconds())})" if left is not None and left.total_seconds() > 0 else ""
            )
            reason = (
                f"Still collecting: what {view.app.name} sends until {closes}{within} joins this batch, so it "
                f"cannot be approved yet. Close it now to decide on the {_count(view.reports, 'report', 'reports')} "
                "it holds; later reports start a new batch."
            )
            self.close_now_button.show()
        elif view is not None and view.batch.status in UNDECIDED and view.app.status != AppStatus.ALLOWED:
            reason = (
                f"Held: {view.app.name} is not allowed to send telemetry yet, so its batches cannot be approved. "
                f"Allow it to decide on them (nothing is sent until you approve one), or discard this one."
            )
            self.allow_here_button.setText(f"Allo&w {view.app.name.replace('&', '&&')}")
            self.allow_here_button.setEnabled(True)
            self.allow_here_button.show()
        self.reason.setText(reason)
        self.reason.setVisible(bool(reason))
        self._explain_scope()

    def _explain_scope(self) -> None:
        """The coarsening chosen and the mode, in words, under the choices."""
        view = self._current
        lines = [
            f"<b>{_h(name)}</b> is sent as {_h(level_words(level))}." for name, level in self.scope_model.coarsened()
        ]
        self.coarsen_help.setText("<br>".join(lines))
        self.coarsen_help.setVisible(bool(lines))
        if self.scope_model.mode == "aggregate" and view is not None:
            self.mode_help.setText(
                "No report is sent: only how many had each value. Values seen fewer than "
                f"{view.manifest.min_count} times are counted together as “(other)”."
            )
        else:
            self.mode_help.setText("Each report is sent as a record with the ticked fields.")
        self.mode_help.setVisible(view is not None)

    # -- decisions -------------------------------------------------------------------

    def approve(self) -> None:
        """Approve the batch as shown. A coarsening editor still open is committed first; if
        that changed the scope (or a render is under way), the batch is approved once the
        payload for that scope is on screen, with exactly its digest."""
        view = self._current
        if view is None or self.broker is None or not self._can_approve():
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
        if view.batch.batch_id != batch_id or not self._can_approve():
            return
        scope = self.scope_model.scope()
        self._set_enabled(False)
        run_task(
            lambda: broker.approve(batch_id, scope, expected_sha256=sha, remember=remember),
            lambda approved: self._approved(approved, remember),
            self._fail,
        )

    def _approved(self, view: BatchView, remember: bool) -> None:
        size = view.payload.size if view.payload is not None else 0
        host = urlsplit(view.destination).hostname or view.destination
        name = view.app.name
        text = (
            f"Approved {name}'s batch of {_count(view.reports, 'report', 'reports')}: {size:,} bytes will be "
            f"sent to {host}."
        )
        if remember:
            text += f" {name}'s next batches will be sent like this without asking; Settings can make it ask again."
        self._watching[view.batch.batch_id] = _Watch(size, host, name, view.reports)
        self._decided(view.batch.batch_id, text)

    def discard(self) -> None:
        broker = self.broker
        if self._current is None or broker is None:
            return
        batch_id = self._current.batch.batch_id
        self._cancel_approval()
        self._set_enabled(False)

        def discarded(view: BatchView) -> None:
            self._decided(
                batch_id,
                f"Discarded {view.app.name}'s batch: its {_count(view.reports, 'report', 'reports')} were deleted "
                "and nothing was sent.",
            )

        run_task(lambda: broker.discard(batch_id), discarded, self._fail)

    def close_now(self) -> None:
        """Close the collecting batch on screen now (only it: other apps' go on collecting)."""
        broker, view = self.broker, self._current
        if view is None or broker is None or view.batch.status != BatchStatus.OPEN:
            return
        batch_id, name = view.batch.batch_id, view.app.name
        self.close_now_button.setEnabled(False)

        def closed(closed: Any) -> None:
            self.close_now_button.setEnabled(True)
            status = closed.status
            if status == BatchStatus.PENDING:
                text = f"Closed {name}'s batch: decide on it below. What {name} sends from now on starts a new batch."
            elif status == BatchStatus.HELD:
                text = f"Closed {name}'s batch: it is held until {name} is allowed (or while all telemetry is paused)."
            elif status == BatchStatus.APPROVED:
                text = f"Closed {name}'s batch: its standing default approved it with the saved scope, so it is sent."
            else:
                text = f"Closed {name}'s batch: its standing default discarded it, so nothing was sent."
            self.show_notice(text)
            self.changed.emit()
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.close_now_button.setEnabled(True)
            self._fail(exc)
            self.refresh()

        run_task(lambda: broker.close_batch(batch_id), closed, failed)

    def _consent(self, allow: bool) -> None:
        key = self._selected_key() or ""
        if not key.startswith("app:") or self.broker is None:
            return
        app_id = key[4:]
        if allow:
            self._set_consent(app_id, True)
        else:
            self._ask_block(app_id)

    def _allow_current(self) -> None:
        """Allow the app whose held batch is on screen (the button beside the reason)."""
        view = self._current
        if view is not None:
            self.allow_here_button.setEnabled(False)
            self._set_consent(view.app.app_id, True)

    def _ask_block(self, app_id: str) -> None:
        """Ask before blocking, saying what is deleted; block only on *Block*."""
        app = self._apps.get(app_id)
        if app is None:
            return
        batches, reports = self._left_by(app_id)
        left = (
            f"{app.name} has left {_count(reports, 'report', 'reports')} here ({_count(batches, 'batch', 'batches')}); "
            "blocking deletes them, and nothing of them is sent. "
            if reports
            else ""
        )
        self._ask(
            f"Block {app.name}?",
            f"{left}{app.name} cannot send telemetry while it is blocked: its reports are refused until you "
            "allow it again in Settings.",
            f"Block and delete {_count(reports, 'report', 'reports')}" if reports else "Block",
            lambda: self._set_consent(app_id, False),
            name="block",
        )

    def _ask_remove_demo(self) -> None:
        self._ask(
            "Remove the demo?",
            "The demo apps (PhotoEdit, NoteSync and Inkwell Notes) are removed with their batches and reports, "
            "and the demo vendor stops. The history keeps the receipts of what was decided. You can load the "
            "demo again later.",
            "Remove the demo",
            self._remove_demo,
            name="remove-demo",
        )

    def _remove_demo(self) -> None:
        self.remove_demo_button.setEnabled(False)
        self.remove_demo_requested.emit()

    def _ask(self, title: str, text: str, action: str, then: Callable[[], None], *, name: str) -> None:
        """A question with ``action`` and Cancel (the default), shown without waiting for
        the answer: ``then`` runs if the person clicks ``action``."""
        if self.question is not None:
            self.question.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Cancel, self)
        box.setObjectName(name)
        box.setTextFormat(Qt.TextFormat.PlainText)
        yes = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
        yes.setAccessibleName(action)
        box.button(QMessageBox.StandardButton.Cancel).setAccessibleName("Cancel: change nothing")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def answered(button: QAbstractButton) -> None:
            self.question = None
            if button is yes:
                then()

        def finished() -> None:
            if self.question is box:
                self.question = None
            box.deleteLater()

        box.buttonClicked.connect(answered)
        box.finished.connect(finished)
        self.question = box
        box.open()

    def _set_consent(self, app_id: str, allow: bool) -> None:
        broker = self.broker
        if broker is None:
            return
        name = self._apps[app_id].name if app_id in self._apps else app_id
        _, reports = self._left_by(app_id)

        def decide() -> AppInfo:
            return broker.set_consent(app_id, allow)

        def done(app: AppInfo) -> None:
            if allow:
                text = f"Allowed {name}: {app.policy.describe()}."
                if reports and app.policy == "ask":
                    text += f" The {_count(reports, 'report', 'reports')} it sent before wait here for you."
            else:
                deleted = f"the {_count(reports, 'report', 'reports')} it left were deleted and " if reports else ""
                text = (
                    f"Blocked {name}: {deleted}nothing was sent. Its reports are refused until you allow it again "
                    "in Settings."
                )
            self.show_notice(text)
            self._consented(app_id)

        def failed(exc: BaseException) -> None:
            self.allow_here_button.setEnabled(True)
            self._fail(exc)

        run_task(decide, done, failed)

    def _demo(self) -> None:
        self.demo_button.setEnabled(False)
        self.demo_requested.emit()

    def _consented(self, _app_id: str) -> None:
        self.changed.emit()
        self.refresh()

    def _decided(self, batch_id: str, notice: str) -> None:
        self.show_notice(notice)
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
        self.banner.setStyleSheet(notice_style(self.palette(), Tone.ERROR))
        self.banner.setText(text)
        self.banner.show()
        key = self._selected_key() or ""
        app_id = self._current.app.app_id if self._current is not None else key.removeprefix("app:")
        app = self._apps.get(app_id)
        self._notice_cause = (app_id, str(app.status)) if app is not None else None
        if self._current is not None:
            self._set_enabled(self._current.batch.status in UNDECIDED)
            # Whatever failed, Approve stays off while the payload is not the scope's.
            self.approve_button.setEnabled(
                self.approve_button.isEnabled() and self._payload_current and not self._rendering
            )

    def _set_enabled(self, on: bool) -> None:
        for widget in (self.approve_button, self.discard_button, self.remember, self.records, self.aggregate):
            widget.setEnabled(on)
        if on and not self._can_approve():  # the reason beside the buttons says why
            self.approve_button.setEnabled(False)
            self.remember.setEnabled(False)

    def _can_approve(self) -> bool:
        """Whether the batch on screen can be approved: it has closed and its app is allowed."""
        view = self._current
        return (
            view is not None
            and view.batch.status in (BatchStatus.HELD, BatchStatus.PENDING)
            and view.app.status == AppStatus.ALLOWED
        )


@dataclass(frozen=True)
class _Watch:
    """An approved batch the banner spoke of: to say when it was sent."""

    size: int
    host: str
    app: str
    reports: int


def _render(broker: Broker, batch_id: str, scope: Scope | None) -> _Rendered:
    """On a pool thread: the batch under ``scope`` and the start of its payload, pretty-printed
    (the whole of a 100,000-report batch would take longer than rendering it did; *Show
    all of it* does the rest)."""
    view = broker.view(batch_id, scope)
    if view.payload is None:
        return _Rendered(view, "")
    pretty, truncated = view.payload.pretty_start(PREVIEW_LIMIT)
    return _Rendered(view, plainly(pretty), truncated=truncated, legend=_legend(view), split=_split_words(view))


def _split_words(view: BatchView) -> tuple[str, ...]:
    """For a DAP batch, in words: the two operators, the minimum batch size's promise and the
    warnings the core found (read off the payload the person approves, on the pool thread)."""
    dap = view.manifest.dap
    if view.manifest.format != WireFormat.DAP or dap is None or view.payload is None:
        return ()
    obj = view.payload.obj()
    leader, helper = obj.get("leader", {}), obj.get("helper", {})
    split = (
        f"Each answer is split into two secret shares: one goes to {leader.get('operator')} "
        f"({urlsplit(str(leader.get('url'))).hostname}), the other to {helper.get('operator')} "
        f"({urlsplit(str(helper.get('url'))).hostname}). Neither can read it alone; only if the two "
        "work together could they."
    )
    return (split, str(obj.get("promise", "")), *(str(w) for w in obj.get("warnings", [])))


def _legend(view: BatchView) -> str:
    """How to read the payload's bucketed numbers and "(other)", in words: the range each
    bucket sent stands for (read off an aggregate's counts), else the rule."""
    scope, payload = view.scope, view.payload
    if scope is None or payload is None:
        return ""
    counts: dict[str, Any] = {}
    if scope.mode == "aggregate" and payload.size <= LEGEND_LIMIT:
        found = payload.obj().get("aggregates")
        counts = found if isinstance(found, dict) else {}
    if scope.mode != "aggregate":
        return ""  # a record's bucketed value: the rule under the scope says how to read it
    lines = []
    for name, level in scope.coarsen.items():
        spec = view.manifest.field(name)
        keys = sorted((k for k in counts.get(name, {}) if k.lstrip("-").isdigit()), key=int)
        if level == "bucket" and spec is not None and keys:
            integer = spec.type == "integer"
            lines.append(f"<b>{_h(name)}</b>: " + ", ".join(f"{k} = {bucket_words(k, integer=integer)}" for k in keys))
    lines.append(_h(other_words(view.manifest.min_count)))
    return "<br>".join(lines)


def _summary_html(view: BatchView, now: datetime | None = None, split: Sequence[str] = ()) -> str:
    m, b = view.manifest, view.batch
    window = window_words(b.window_start, b.window_end)
    status = STATUS_WORDS.get(b.status, str(b.status))
    if b.status == BatchStatus.OPEN:
        status = f"collecting until {clock_words(b.window_end, now)}"
    lines = [
        f"<h3>{_h(m.name)} <span style='font-weight:normal'>by {_h(m.vendor)}</span></h3>",
        f"<p><b>Sends to</b> {_h(m.endpoint_host)} &nbsp; <b>Why</b> {_h(m.purpose)}</p>",
        f"<p><b>Window</b> {_h(window)} ({_h(_zone(b.window_start))}) &nbsp; <b>Reports</b> {view.reports:,}"
        f" &nbsp; <b>{_h(m.vendor)} keeps it</b> {m.retention_days} days &nbsp; <b>Status</b> {_h(status)}</p>",
    ]
    if view.change is not None:
        new = ", ".join(view.change.excluded_until_reviewed) or "none"
        warning = tone_colour(QGuiApplication.palette(), Tone.WARNING).name()  # the palette's, dark or light
        lines.append(
            f"<p style='color:{warning}'><b>Changed since you last approved</b> (manifest v{view.change.old_version}"
            f" → v{view.change.new_version}): new or changed fields {_h(new)}, left out until you tick them.</p>"
        )
    for n, words in enumerate(split):  # a DAP batch: who holds the halves, the promise; then warnings
        style = f" style='color:{tone_colour(QGuiApplication.palette(), Tone.WARNING).name()}'" if n >= 2 else ""
        lines.append(f"<p{style}>{_h(words)}</p>")
    if view.dropped:
        names = ", ".join(f"{_h(plain_text(k))} ({v})" for k, v in view.dropped.items())  # the app's words
        lines.append(f"<p><b>Dropped on arrival</b> (not declared by the app, never sent): {names}</p>")
    return "".join(lines)


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _zone(at: str) -> str:
    """The local time zone's name at ``at`` ("CET", "UTC"), for times shown in it."""
    try:
        return local(at).strftime("%Z") or "local time"
    except ValueError:
        return "local time"


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _as(level: str) -> str:
    return f"as {level_words(level)}"


def _note(name: str) -> QLabel:
    """A line of explanation: wrapped, rich text (escaped where it is set), hidden when empty."""
    label = QLabel("")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setAccessibleName(name)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


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
