"""The Settings window: per-app consent defaults and credentials, and the global settings.

Everything it shows is read off the UI thread in one go (:func:`load_snapshot`), and
every change is a broker or keyring call run through :func:`~tray_app.ui.worker.run_task`
on a private one-thread pool, so changes apply in the order the person made them and
a keyring waiting on its unlock prompt never freezes the window. After a change the
window reads everything again; a failure shows its ``title`` and ``message`` in the
banner at the top and the controls go back to what is true.

Vendor secrets go from the password field straight to the core's :meth:`Credentials.set`
(the keyring, then the deliveries that waited for it) and the field is cleared; the
window only ever shows whether one is stored. Removing an app is
:meth:`Credentials.remove_app`, which clears its secret too.

*Copy connection lines* is ``telemetry-tray connect APP``: :meth:`Credentials.connect`
(the keyring, and a new token only when the kept one no longer works), off the UI
thread; the lines are shown in a read-only box and put on the clipboard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QHideEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
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
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core import (
    MAX_RETENTION_DAYS,
    POLICIES,
    AppInfo,
    AppStatus,
    AuthKind,
    Autostart,
    Broker,
    Connection,
    Credentials,
    CredentialsError,
    Removal,
    SecretStore,
    TrayError,
    credentials_problem,
    needs_secret,
    scope_details,
    scope_in_words,
)
from .look import Tone, banner_style, fit_to_screen, install_focus_ring
from .remedies import told
from .worker import Latest, run_task

__all__ = [
    "APP_ID_ROLE",
    "AppRow",
    "AppsModel",
    "Confirm",
    "CredentialsDialog",
    "OtlpAddress",
    "SettingsSnapshot",
    "SettingsWindow",
    "ask_confirmation",
    "credentials_note",
    "load_snapshot",
    "scope_summary",
]

STATUS_LABELS: Final = {
    AppStatus.AWAITING_CONSENT: "Awaiting consent",
    AppStatus.ALLOWED: "Allowed",
    AppStatus.BLOCKED: "Blocked",
}

# What the Credentials column says.
STORED: Final = "stored"
NONE: Final = "none"
NOT_NEEDED: Final = "not needed"
UNAVAILABLE: Final = "keyring unavailable"

APP_ID_ROLE: Final = int(Qt.ItemDataRole.UserRole)

Confirm = Callable[[QWidget, str, str, str], bool]
"""``confirm(parent, title, text, action)``: whether the person agrees to ``action``."""

OtlpAddress = Callable[[], tuple[str, str]]
"""``otlp_address()``: where OpenTelemetry apps send (the running instance's receiver), and
what keeps them from reaching it ("" when nothing). Called off the UI thread."""


# -- what the window shows -------------------------------------------------------------


@dataclass(frozen=True)
class AppRow:
    app: AppInfo
    credentials: str  # STORED, NONE, NOT_NEEDED or UNAVAILABLE
    waiting: int = 0  # approved batches of the app held until credentials can be had

    @property
    def host(self) -> str:
        return self.app.manifest.endpoint_host or self.app.endpoint

    @property
    def needs_secret(self) -> bool:
        return self.credentials != NOT_NEEDED


@dataclass(frozen=True)
class SettingsSnapshot:
    rows: list[AppRow] = field(default_factory=list)
    retention_days: int = 30
    paused_all: bool = False
    notifications: bool = True
    new_app_prompts: bool = True
    start_at_login: bool = False
    keyring_available: bool = False
    keyring_status: str = ""
    problems: list[str] = field(default_factory=list)


def load_snapshot(broker: Broker, secrets: SecretStore, autostart: Autostart) -> SettingsSnapshot:
    """Everything the window shows. Touches the database, the keyring and the disk:
    call it off the UI thread."""
    problems: list[str] = []
    keyring_ok = secrets.available()
    usable = keyring_ok
    rows = []
    held: dict[str, int] = {}
    for delivery in broker.undelivered():
        if delivery.waiting_for == "credentials":
            held[delivery.app_id] = held.get(delivery.app_id, 0) + 1
    for app in broker.apps():
        if not needs_secret(app.manifest.auth):
            state = NOT_NEEDED
        elif not usable:
            state = UNAVAILABLE
        else:
            try:
                state = STORED if secrets.has(app.app_id) else NONE
            except CredentialsError as exc:
                # Say it once, and do not ask a locked keyring again for every app.
                problems.append(told(exc))
                usable = False
                state = UNAVAILABLE
        rows.append(AppRow(app, state, held.get(app.app_id, 0)))
    try:
        at_login = autostart.enabled
    except TrayError as exc:
        problems.append(told(exc))
        at_login = False
    return SettingsSnapshot(
        rows=rows,
        retention_days=broker.retention_days,
        paused_all=broker.paused_all,
        notifications=broker.preference("notifications") == "on",
        new_app_prompts=broker.preference("new_app_prompts") == "on",
        start_at_login=at_login,
        keyring_available=keyring_ok,
        keyring_status=secrets.status(),
        problems=problems,
    )


def credentials_note(app: AppInfo, secrets: SecretStore) -> str:
    """What keeps an approval of ``app``'s batch from being delivered for want of a secret
    ("" when nothing does), in the tray's words: say it before the person approves. Asks
    the keyring: call it off the UI thread."""
    needs = needs_secret(app.manifest.auth)
    if not needs:
        return ""
    available = secrets.available()
    stored: bool | None = None
    if available:
        try:
            stored = secrets.has(app.app_id)
        except CredentialsError:
            stored = None
    note = credentials_problem(
        app_name=app.name, vendor=app.vendor, needs_secret=needs, keyring_available=available,
        secret_stored=stored, keyring_why=secrets.why_unavailable() if not available else "",
    )  # fmt: skip
    if note and available and stored is False:
        note += " Set it in Settings with Set credentials…."
    return note


# The saved scope in a few words, and field by field (its tooltip): the core's words.
scope_summary = scope_in_words


class AppsModel(QAbstractTableModel):
    """The registered apps, one row each. ``APP_ID_ROLE`` gives a row's app id."""

    COLUMNS: Final = ("App", "Vendor", "Status", "Policy", "Sends to", "Saved scope", "Credentials")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[AppRow] = []

    def set_rows(self, rows: list[AppRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row(self, index: int) -> AppRow:
        return self._rows[index]

    def row_of(self, app_id: str) -> int:
        """The row of ``app_id``, or -1."""
        return next((i for i, r in enumerate(self._rows) if r.app.app_id == app_id), -1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == APP_ID_ROLE:
            return row.app.app_id
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self._text(row, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, index.column())
        return None

    @staticmethod
    def _text(row: AppRow, column: int) -> str:
        app = row.app
        texts = (
            app.name,
            app.vendor,
            STATUS_LABELS.get(app.status, app.status),
            app.policy.label,
            row.host,
            scope_summary(app.scope, app.manifest),
            f"{row.credentials} ({row.waiting} waiting)" if row.waiting else row.credentials,
        )
        return texts[column]

    @staticmethod
    def _tooltip(row: AppRow, column: int) -> str | None:
        app = row.app
        if column == 0:
            return app.app_id
        if column == 4:
            return app.endpoint
        if column == 5:
            return scope_details(app.scope, app.manifest)
        if column == 6:
            return {
                STORED: "A secret for this vendor is stored in the OS keyring.",
                NONE: "This vendor needs a secret; none is stored, so its batches wait.",
                NOT_NEEDED: "This vendor needs no credentials.",
                UNAVAILABLE: "The OS keyring cannot be used now; see the line below the table.",
            }.get(row.credentials)
        return None


# -- dialogs ---------------------------------------------------------------------------


def ask_confirmation(parent: QWidget, title: str, text: str, action: str) -> bool:
    """A modal question with ``action`` and Cancel; Cancel is the default."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Cancel, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    yes = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is yes


class CredentialsDialog(QDialog):
    """Asks for one vendor secret in a password field. Read it once with :meth:`take_secret`."""

    def __init__(self, parent: QWidget, app: AppInfo, keyring_status: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Credentials for {app.name}")
        self.setAccessibleName(f"Credentials for {app.name}")
        host = app.manifest.endpoint_host or app.endpoint
        auth = app.manifest.auth
        how = "an Authorization: Bearer header" if auth.kind == AuthKind.BEARER else f"the {auth.header} header"
        intro = QLabel(
            f"The secret {app.vendor} gave you for {app.name}. It is sent only to {host}, in {how}, "
            "and kept only in the OS keyring; Telemetry Tray never shows it again."
        )
        intro.setTextFormat(Qt.TextFormat.PlainText)
        intro.setWordWrap(True)
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_edit.setAccessibleName("Secret")
        self.secret_edit.setAccessibleDescription(f"The vendor secret for {app.name}; typed characters are hidden")
        self.secret_edit.setInputMethodHints(
            Qt.InputMethodHint.ImhSensitiveData
            | Qt.InputMethodHint.ImhNoPredictiveText
            | Qt.InputMethodHint.ImhNoAutoUppercase
        )
        self.secret_edit.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        where = QLabel(keyring_status)
        where.setTextFormat(Qt.TextFormat.PlainText)
        where.setWordWrap(True)
        where.setAccessibleName("Keyring status")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setText("&Store in keyring")
        self.save_button.setAccessibleName("Store in keyring")
        self.save_button.setEnabled(False)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setAccessibleName("Cancel")
        self.secret_edit.textChanged.connect(lambda text: self.save_button.setEnabled(bool(text)))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        label = QLabel("&Secret:")
        label.setBuddy(self.secret_edit)
        form.addRow(label, self.secret_edit)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(where)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(460)
        self.resize(460, self.heightForWidth(460) if self.hasHeightForWidth() else self.sizeHint().height())
        self.finished.connect(lambda _: self.secret_edit.clear())

    def take_secret(self) -> str:
        """The typed secret; the field is empty afterwards."""
        secret = self.secret_edit.text()
        self.secret_edit.clear()
        return secret


# -- the window ------------------------------------------------------------------------


class SettingsWindow(QWidget):
    """Settings: the apps with their consent defaults and credentials, and the global settings.

    ``confirm`` asks before removing or blocking an app or clearing its credentials
    (default: :func:`ask_confirmation`; tests pass their own). ``otlp_address`` says where
    the instance's OpenTelemetry receiver is; without it there is nothing to connect to and
    *Copy connection lines* stays off.
    """

    changed = Signal()  # a change was saved (the tray refreshes)
    loaded = Signal()  # what the window shows was read again

    def __init__(
        self,
        broker: Broker,
        secrets: SecretStore,
        autostart: Autostart,
        *,
        confirm: Confirm | None = None,
        otlp_address: OtlpAddress | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._broker = broker
        self._otlp_address = otlp_address
        self._connected_app = ""  # whose lines the connection box shows
        self._secrets = secrets
        self._credentials = Credentials(broker, secrets)
        self._autostart = autostart
        self._confirm: Confirm = confirm or ask_confirmation
        # One thread: changes apply in the order they were made.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._pending = 0
        self._reads = Latest()  # an older read's answer is dropped when a newer one is on its way
        self._snapshot: SettingsSnapshot | None = None
        self._syncing = False

        self._credentials_for: str | None = None  # open this app's credentials once it is shown
        self._banner_tone: Tone | None = None

        self.setWindowTitle("Telemetry Tray — Settings")
        self.setAccessibleName("Telemetry Tray settings")
        install_focus_ring()
        self._build()
        fit_to_screen(self, 960, 640)
        self.refresh()

    # -- public ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a read or a change is still running."""
        return self._pending > 0

    @property
    def snapshot(self) -> SettingsSnapshot | None:
        """What the window shows now (None until the first read finished)."""
        return self._snapshot

    def refresh(self) -> None:
        """Read everything again, off the UI thread."""
        ticket = self._reads.new()
        broker, secrets, autostart = self._broker, self._secrets, self._autostart
        self._run(
            lambda: load_snapshot(broker, secrets, autostart),
            self._reads.only(ticket, self._apply),
            self._show_error,
        )

    def select_app(self, app_id: str) -> bool:
        """Select ``app_id``'s row; whether it is shown."""
        row = self.model.row_of(app_id)
        if row < 0:
            return False
        self.table.selectionModel().setCurrentIndex(
            self.model.index(row, 0),
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
        )
        return True

    def open_credentials(self, app_id: str) -> None:
        """Select ``app_id`` and ask for its vendor secret (the tray's and History's *Set
        credentials…*), as soon as the window shows it; or say why it cannot be set."""
        self._credentials_for = app_id
        if self._snapshot is not None and not self.busy:
            self._open_pending_credentials()

    def _open_pending_credentials(self) -> None:
        app_id, self._credentials_for = self._credentials_for, None
        if app_id is None or self._snapshot is None:
            return
        if not self.select_app(app_id):
            self._show_banner(f"{app_id} is not registered any more.", error=True)
            return
        row = self._selected_row()
        if row is None:
            return
        if not row.needs_secret:
            self._show_banner(f"{row.app.vendor} needs no credentials.", error=False)
        elif not self._snapshot.keyring_available:
            self._show_banner(
                f"{row.app.name}'s vendor needs a secret, but no OS keyring can hold it: "
                f"{self._snapshot.keyring_status}",
                error=True,
            )
        else:
            self.set_credentials_button.setFocus(Qt.FocusReason.OtherFocusReason)
            self._ask_secret()

    def selected_app(self) -> AppInfo | None:
        row = self._selected_row()
        return row.app if row else None

    # -- building ----------------------------------------------------------------------

    def _build(self) -> None:
        # The banner: errors (and a note after some changes), never a traceback.
        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner_label = QLabel()
        self.banner_label.setTextFormat(Qt.TextFormat.PlainText)
        self.banner_label.setWordWrap(True)
        self.banner_label.setAccessibleName("Message")
        self.banner_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dismiss = QPushButton("&Dismiss")
        dismiss.setAccessibleName("Dismiss message")
        dismiss.clicked.connect(self._hide_banner)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_label, 1)
        banner_layout.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.banner.hide()

        # Apps.
        self.model = AppsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Registered apps")
        self.table.setAccessibleDescription("One row per app: its consent default, destination and credentials")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move within it
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The scope summary takes the room that is left (elided; the tooltip has all of it).
        header.setSectionResizeMode(AppsModel.COLUMNS.index("Saved scope"), QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        # The detail panel follows the selection, not only the current row: a click moves
        # the current row first and selects it afterwards, a key press the other way round.
        selection = self.table.selectionModel()
        selection.currentRowChanged.connect(lambda *_: self._sync_detail())
        selection.selectionChanged.connect(lambda *_: self._sync_detail())
        self.model.modelReset.connect(self._sync_detail)

        self.empty_label = QLabel("No app has registered yet. Apps appear here when they first ask to send telemetry.")
        self.empty_label.setWordWrap(True)
        self.empty_label.setAccessibleName("No apps")
        self.empty_label.hide()

        self.detail_label = QLabel("Select an app to change its settings.")
        self.detail_label.setTextFormat(Qt.TextFormat.PlainText)
        self.detail_label.setWordWrap(True)
        self.detail_label.setAccessibleName("Selected app")

        self.policy_combo = QComboBox()
        for policy in POLICIES:
            self.policy_combo.addItem(policy.label, policy.value)
        self.policy_combo.setAccessibleName("Policy")
        self.policy_combo.setAccessibleDescription("What happens to the selected app's batches when they close")
        self.policy_combo.setToolTip(" ".join(f"{policy.label}: {policy.describe()}." for policy in POLICIES))
        self.policy_combo.currentIndexChanged.connect(self._policy_chosen)
        policy_label = QLabel("&Policy:")
        policy_label.setBuddy(self.policy_combo)

        self.allow_button = self._button("&Allow", "Allow the selected app to send telemetry", self._allow)
        self.block_button = self._button("&Block…", "Block the selected app", self._block)
        self.set_credentials_button = self._button(
            "Set &credentials…", "Set the selected app's vendor credentials", self._ask_secret
        )
        self.clear_credentials_button = self._button(
            "C&lear credentials", "Clear the selected app's vendor credentials", self._clear_secret
        )
        self.remove_button = self._button("&Remove app…", "Remove the selected app", self._remove)
        self.connect_button = self._button(
            "Copy connection lin&es",
            "Copy the lines that point the selected app's OpenTelemetry SDK at Telemetry Tray",
            self._connect,
        )
        self.connect_text = QPlainTextEdit()
        self.connect_text.setReadOnly(True)
        self.connect_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.connect_text.setAccessibleName("Connection lines")
        self.connect_text.setAccessibleDescription(
            "The environment lines that point the app's OpenTelemetry SDK at Telemetry Tray, with its token"
        )
        self.connect_text.setMaximumHeight(self.connect_text.fontMetrics().lineSpacing() * 8)
        self.connect_text.hide()

        policy_row = QHBoxLayout()
        policy_row.addWidget(policy_label)
        policy_row.addWidget(self.policy_combo)
        policy_row.addSpacing(16)
        policy_row.addWidget(self.allow_button)
        policy_row.addWidget(self.block_button)
        policy_row.addStretch(1)
        credentials_row = QHBoxLayout()
        credentials_row.addWidget(self.set_credentials_button)
        credentials_row.addWidget(self.clear_credentials_button)
        credentials_row.addWidget(self.connect_button)
        credentials_row.addStretch(1)
        credentials_row.addWidget(self.remove_button)

        self.keyring_label = QLabel("Looking for the OS keyring…")
        self.keyring_label.setTextFormat(Qt.TextFormat.PlainText)
        self.keyring_label.setWordWrap(True)
        self.keyring_label.setAccessibleName("Keyring status")

        apps_box = QGroupBox("Apps")
        apps_layout = QVBoxLayout(apps_box)
        apps_layout.addWidget(self.table, 1)
        apps_layout.addWidget(self.empty_label)
        apps_layout.addWidget(self.detail_label)
        apps_layout.addLayout(policy_row)
        apps_layout.addLayout(credentials_row)
        apps_layout.addWidget(self.connect_text)
        apps_layout.addWidget(self.keyring_label)

        # Global settings.
        self.retention_spin = QSpinBox()
        self.retention_spin.setRange(1, MAX_RETENTION_DAYS)
        self.retention_spin.setSuffix(" days")
        self.retention_spin.setAccessibleName("Retention days")
        self.retention_spin.setAccessibleDescription(
            "Undecided batches expire, and sent payloads are deleted, after this many days"
        )
        self.retention_spin.setToolTip(
            "Batches you have not decided on expire after this many days (they are never sent late), "
            "and the stored copies of sent batches are deleted. Receipts stay in the history."
        )
        self.retention_spin.editingFinished.connect(self._retention_entered)
        self._retention_shown = self.retention_spin.value()
        retention_label = QLabel("&Keep batches for:")
        retention_label.setBuddy(self.retention_spin)

        self.notifications_check = self._check(
            "Show &notifications", "Notifications", "Tell me when batches are waiting", "notifications"
        )
        self.new_app_prompts_check = self._check(
            "Ask about ne&w apps when they register",
            "New app prompts",
            "Open a consent prompt when an app registers",
            "new_app_prompts",
        )
        self.start_at_login_check = self._check(
            "&Start Telemetry Tray at login", "Start at login", "Start Telemetry Tray when you log in", None
        )
        self.start_at_login_check.toggled.connect(self._start_at_login_toggled)
        self.pause_all_check = self._check(
            "Pa&use all telemetry",
            "Pause all",
            "Hold every app's batches without asking or sending until unpaused",
            None,
        )
        self.pause_all_check.toggled.connect(self._pause_all_toggled)

        general_box = QGroupBox("General")
        general = QFormLayout(general_box)
        general.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        general.addRow(retention_label, self.retention_spin)
        general.addRow(self.notifications_check)
        general.addRow(self.new_app_prompts_check)
        general.addRow(self.start_at_login_check)
        general.addRow(self.pause_all_check)
        self._globals: list[QWidget] = [
            self.retention_spin,
            self.notifications_check,
            self.new_app_prompts_check,
            self.start_at_login_check,
            self.pause_all_check,
        ]
        for widget in self._globals:
            widget.setEnabled(False)

        self.close_button = QPushButton("Cl&ose")
        self.close_button.setAccessibleName("Close settings")
        self.close_button.clicked.connect(self.close)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Cancel), self, self.close)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(apps_box, 1)
        layout.addWidget(general_box)
        layout.addLayout(bottom)
        self._sync_detail()

    def _button(self, text: str, name: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(name)
        button.setAutoDefault(False)
        button.clicked.connect(lambda _=False: slot())
        return button

    def _check(self, text: str, name: str, description: str, preference: str | None) -> QCheckBox:
        check = QCheckBox(text)
        check.setAccessibleName(name)
        check.setAccessibleDescription(description)
        check.setToolTip(description)
        if preference is not None:
            check.toggled.connect(lambda on, key=preference: self._preference_toggled(key, on))
        return check

    # -- reading -----------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not event.spontaneous() and self._snapshot is not None:
            self.refresh()

    def _apply(self, snapshot: SettingsSnapshot) -> None:
        selected = self.selected_app()
        self._snapshot = snapshot
        self._syncing = True
        try:
            self.model.set_rows(snapshot.rows)
            if not (selected and self.select_app(selected.app_id)) and snapshot.rows:
                self.select_app(snapshot.rows[0].app.app_id)
            self.table.setVisible(bool(snapshot.rows))
            self.empty_label.setVisible(not snapshot.rows)
            if not (self.retention_spin.hasFocus() and self.retention_spin.value() != self._retention_shown):
                self.retention_spin.setValue(snapshot.retention_days)
            self._retention_shown = snapshot.retention_days
            self.notifications_check.setChecked(snapshot.notifications)
            self.new_app_prompts_check.setChecked(snapshot.new_app_prompts)
            self.start_at_login_check.setChecked(snapshot.start_at_login)
            self.pause_all_check.setChecked(snapshot.paused_all)
            for widget in self._globals:
                widget.setEnabled(True)
            self.keyring_label.setText(snapshot.keyring_status)
        finally:
            self._syncing = False
        self._sync_detail()
        if snapshot.problems:
            self._show_banner(" ".join(snapshot.problems), error=True)
        if self._credentials_for is not None:
            self._open_pending_credentials()
        self.loaded.emit()

    def _selected_row(self) -> AppRow | None:
        index = self.table.selectionModel().currentIndex()
        if not index.isValid() or not self.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            return None
        return self.model.row(index.row())

    def _sync_detail(self) -> None:
        row = self._selected_row()
        keyring = self._snapshot is not None and self._snapshot.keyring_available
        self._syncing, was_syncing = True, self._syncing
        try:
            if row is None:
                self.detail_label.setText("Select an app to change its settings.")
                self.policy_combo.setCurrentIndex(-1)
            else:
                app = row.app
                self.detail_label.setText(
                    f"{app.name} by {app.vendor}: {STATUS_LABELS.get(app.status, app.status).lower()}, "
                    f"sends to {row.host}. Saved scope: {scope_summary(app.scope, app.manifest)}."
                )
                self.policy_combo.setCurrentIndex(self.policy_combo.findData(app.policy.value))
        finally:
            self._syncing = was_syncing
        self.policy_combo.setEnabled(row is not None)
        self.allow_button.setEnabled(row is not None and row.app.status != AppStatus.ALLOWED)
        self.block_button.setEnabled(row is not None and row.app.status != AppStatus.BLOCKED)
        self.set_credentials_button.setEnabled(row is not None and row.needs_secret and keyring)
        self.clear_credentials_button.setEnabled(row is not None and row.credentials == STORED)
        self.remove_button.setEnabled(row is not None)
        sends_otlp = row is not None and bool(row.app.manifest.otlp_service_names)
        self.connect_button.setEnabled(sends_otlp and self._otlp_address is not None)
        if row is not None and not sends_otlp:
            self.connect_button.setToolTip(f"{row.app.name}'s manifest has no [otlp] table: it sends no OpenTelemetry.")
        else:
            self.connect_button.setToolTip(
                "Puts the lines that point this app's OpenTelemetry SDK at Telemetry Tray on the clipboard: "
                "set them in its environment."
            )
        if not self._syncing and (row is None or row.app.app_id != self._connected_app):
            # One app's token is never shown under another's name (a read in progress
            # reselects the same app: that is no change).
            self._forget_connection()
        if row is not None and not row.needs_secret:
            self.set_credentials_button.setToolTip(f"{row.app.vendor} needs no credentials.")
        elif row is not None and not keyring:
            self.set_credentials_button.setToolTip("No OS keyring is available; see the line below.")
        else:
            self.set_credentials_button.setToolTip("")

    # -- changes -----------------------------------------------------------------------

    def _policy_chosen(self, index: int) -> None:
        row = self._selected_row()
        policy = self.policy_combo.itemData(index)
        if self._syncing or row is None or not isinstance(policy, str) or policy == row.app.policy:
            return
        app_id, broker = row.app.app_id, self._broker
        self._change(lambda: broker.set_policy(app_id, policy))

    def _allow(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        app_id, broker = row.app.app_id, self._broker
        self._change(lambda: broker.set_consent(app_id, True))

    def _block(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        app = row.app
        app_id, broker = app.app_id, self._broker

        def left() -> tuple[int, int]:
            """What blocking deletes: the app's reports waiting here, and its approved batches
            not sent yet (read off the UI thread)."""
            with broker.reading():
                reports = sum(b.reports for b in broker.pending() if b.app_id == app_id)
                unsent = sum(1 for d in broker.undelivered() if d.app_id == app_id)
            return reports, unsent

        def ask(counts: tuple[int, int]) -> None:
            reports, unsent = counts
            parts = []
            if reports:
                parts.append(f"{reports} report{'s' if reports != 1 else ''} waiting here")
            if unsent:
                parts.append(f"{unsent} approved batch{'es' if unsent != 1 else ''} not sent yet")
            deleted = f"Blocking deletes {' and '.join(parts)}. " if parts else "Nothing of it is waiting here. "
            if not self._confirm(
                self,
                f"Block {app.name}?",
                f"{app.name} will not be able to send telemetry. {deleted}The reports it sends are refused "
                "until you allow it again.",
                f"Block and delete {reports} report{'s' if reports != 1 else ''}" if reports else "Block",
            ):
                return
            self._change(lambda: broker.set_consent(app_id, False))

        self._run(left, ask, self._show_error)

    def _remove(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        app = row.app
        secret = " Its vendor credentials are removed from the OS keyring." if row.credentials == STORED else ""
        if not self._confirm(
            self,
            f"Remove {app.name}?",
            f"Telemetry Tray forgets {app.name}: its batches that were not sent yet are discarded and its "
            f"settings are deleted.{secret} The history keeps its receipts. The app has to register "
            "again before it can send anything.",
            "Remove",
        ):
            return
        app_id, credentials = app.app_id, self._credentials

        def removed(removal: object) -> None:
            if isinstance(removal, Removal) and removal.problem:
                self._show_banner(removal.problem, error=True)

        # The core clears its secret too, whatever the last look at the keyring said.
        self._change(lambda: credentials.remove_app(app_id), removed)

    def _ask_secret(self) -> None:
        row = self._selected_row()
        if row is None or self._snapshot is None:
            return
        dialog = CredentialsDialog(self, row.app, self._snapshot.keyring_status)
        app = row.app
        dialog.accepted.connect(lambda: self._store_secret(app, dialog.take_secret()))
        dialog.finished.connect(lambda _: dialog.deleteLater())
        dialog.open()

    def _store_secret(self, app: AppInfo, secret: str) -> None:
        app_id, credentials = app.app_id, self._credentials

        def store() -> int:
            return credentials.set(app_id, secret)

        def stored(waiting: object) -> None:
            note = f"Credentials for {app.name} are stored in the OS keyring."
            if isinstance(waiting, int) and waiting:
                note += f" {waiting} batch(es) that waited for them will be sent now."
            self._show_banner(note, error=False)

        self._change(store, stored)

    def _clear_secret(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        app = row.app
        if not self._confirm(
            self,
            f"Clear the credentials for {app.name}?",
            f"The secret for {app.vendor} is removed from the OS keyring. Approved batches of {app.name} "
            "wait until you set credentials again.",
            "Clear",
        ):
            return
        app_id, credentials = app.app_id, self._credentials
        self._change(lambda: credentials.clear(app_id))

    def _connect(self) -> None:
        row = self._selected_row()
        address = self._otlp_address
        if row is None or address is None:
            return
        app, credentials = row.app, self._credentials

        def connect() -> tuple[Connection, str]:
            url, problem = address()
            return credentials.connect(app.app_id, otlp_url=url), problem

        def connected(result: tuple[Connection, str]) -> None:
            connection, problem = result
            text = connection.text()
            self._connected_app = connection.app_id
            self.connect_text.setPlainText(text)
            self.connect_text.show()
            QGuiApplication.clipboard().setText(text)
            note = [f"Copied the lines that point {connection.name}'s OpenTelemetry SDK at Telemetry Tray: "
                    "set them in its environment."]  # fmt: skip
            if connection.replaced:
                note.append("A new token was issued: the one given out before no longer works.")
            if not connection.kept:
                note.append(f"The token is shown only this once and stored nowhere else. {connection.no_keyring}")
            if problem:
                note.append(problem)
            self._show_banner(" ".join(note), error=bool(problem) or not connection.kept)

        self._change(connect, connected)

    def _forget_connection(self) -> None:
        self._connected_app = ""
        self.connect_text.clear()
        self.connect_text.hide()

    def hideEvent(self, event: QHideEvent) -> None:
        # The lines hold a token: closed, the window does not keep them for whoever opens it
        # next (minimising, a spontaneous hide, keeps them).
        if not event.spontaneous():
            self._forget_connection()
        super().hideEvent(event)

    def _retention_entered(self) -> None:
        days = self.retention_spin.value()
        if self._syncing or self._snapshot is None or days == self._retention_shown:
            return
        self._retention_shown = days
        broker = self._broker
        self._change(lambda: broker.set_retention_days(days))

    def _preference_toggled(self, key: str, on: bool) -> None:
        if self._syncing:
            return
        broker = self._broker
        self._change(lambda: broker.set_preference(key, "on" if on else "off"))

    def _start_at_login_toggled(self, on: bool) -> None:
        if self._syncing:
            return
        broker, autostart = self._broker, self._autostart

        def apply() -> None:
            if on:
                autostart.enable()
            else:
                autostart.disable()
            broker.set_preference("start_at_login", "on" if on else "off")

        self._change(apply)

    def _pause_all_toggled(self, on: bool) -> None:
        if self._syncing:
            return
        broker = self._broker
        self._change(lambda: broker.set_paused_all(on))

    # -- running work --------------------------------------------------------------------

    def finish_changes(self, msecs: int) -> None:
        """Wait (at most ``msecs``) for changes still being applied: before the app quits."""
        self._pool.waitForDone(msecs)

    def _change(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None) -> None:
        """Run a change in the background; then say so, and read everything again."""

        def done(result: Any) -> None:
            self._hide_banner()
            if on_done is not None:
                on_done(result)
            self.changed.emit()
            self.refresh()

        def failed(exc: BaseException) -> None:
            self._show_error(exc)
            self.refresh()  # the controls go back to what is true

        self._run(fn, done, failed)

    def _run(
        self, fn: Callable[[], Any], on_done: Callable[[Any], None], on_failed: Callable[[BaseException], None]
    ) -> None:
        self._pending += 1

        def done(result: Any) -> None:
            try:
                on_done(result)
            finally:
                self._pending -= 1

        def failed(exc: BaseException) -> None:
            try:
                on_failed(exc)
            finally:
                self._pending -= 1

        run_task(fn, done, failed, pool=self._pool)

    def _show_error(self, exc: BaseException) -> None:
        if isinstance(exc, TrayError):
            text = f"{exc.title}: {told(exc)}"
        else:
            text = f"Something went wrong: {' '.join(str(exc).split()) or type(exc).__name__}"
        self._show_banner(text, error=True)

    def _show_banner(self, text: str, *, error: bool) -> None:
        self.banner_label.setText(text)
        self.banner.setProperty("error", error)
        self._banner_tone = Tone.ERROR if error else Tone.INFO
        self._style_banner()
        self.banner.setAccessibleDescription(text)
        self.banner.show()

    def _style_banner(self) -> None:
        if self._banner_tone is not None:
            self.banner.setStyleSheet(banner_style(self.palette(), self._banner_tone, "#banner"))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._style_banner()  # colours follow the palette (a switch to a dark theme)

    def _hide_banner(self) -> None:
        self.banner.hide()
        self.banner_label.clear()
