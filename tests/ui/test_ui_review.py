"""The review window, with real widgets (offscreen), a real broker, a real vendor."""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from typing import Any

import pytest
from PySide6 import QtGui
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QLabel,
    QStyle,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)
from pytestqt.qtbot import QtBot

from tests.support.builders import allowed, tiny
from tests.support.fake_vendor import vendor
from tray_app.core import Broker, Manifest, Scope
from tray_app.core.errors import StoreError
from tray_app.core.forwarder import Forwarder
from tray_app.core.platform.secrets import SecretStore
from tray_app.core.rules.canonical_json import canonical_bytes
from tray_app.ui.review_window import ReviewWindow, ScopeModel

EVENT = {"event": "crop", "ts": "2026-11-24T10:11:12Z", "app_version": "3.1.4", "account_email": "a@b.c"}


class NoKeyring(SecretStore):
    def get(self, app_id: str) -> str | None:
        raise AssertionError("not asked for a vendor without auth")


@pytest.fixture
def window(qtbot: QtBot, broker: Broker) -> ReviewWindow:
    w = ReviewWindow(broker)
    qtbot.addWidget(w)
    w.show()
    return w


def _pending(broker: Broker, manifest: Manifest, reports: list[dict[str, Any]] | None = None) -> str:
    broker.ingest(manifest.app_id, reports or [EVENT, {**EVENT, "event": "open"}])
    (closed,) = broker.close_batches(force=True)
    return closed.batch_id


def _loaded(qtbot: QtBot, w: ReviewWindow, batch_id: str) -> None:
    qtbot.waitUntil(
        lambda: w._current is not None and w._current.batch.batch_id == batch_id and w.approve_button.isEnabled(),
        timeout=5000,
    )


def _shown_payload(w: ReviewWindow) -> dict[str, Any]:
    return dict(json.loads(w.payload.toPlainText()))


def seen_text(label: QLabel) -> str:
    """A label's text as a person reads it on screen (rich text laid out, entities resolved)."""
    text = label.text()
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text)
    )
    if not rich:
        return text
    document = QTextDocument()
    document.setHtml(text)
    return document.toPlainText()


def _row(model: ScopeModel, name: str) -> int:
    return next(r for r in range(model.rowCount()) if model.spec(r).name == name)


def test_a_pending_batch_shows_who_why_and_the_exact_payload(qtbot: QtBot, window: ReviewWindow, broker: Broker,
                                                             photoedit: Manifest) -> None:  # fmt: skip
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    view = broker.view(batch)
    assert view.payload is not None
    assert _shown_payload(window) == view.payload.obj()
    assert view.payload.sha256 in window.payload_info.text()
    summary = window.summary.text()
    for words in ("PhotoEdit", "Example Corp", "telemetry.example.org", "Find which features crash", "90 days"):
        assert words in summary
    assert "a@b.c" not in window.payload.toPlainText()  # identifying: excluded by default
    rows = [window.scope_model.spec(r).name for r in range(window.scope_model.rowCount())]
    assert rows == list(photoedit.field_names)


def test_unticking_a_field_updates_the_payload(qtbot: QtBot, window: ReviewWindow, broker: Broker,
                                               photoedit: Manifest) -> None:  # fmt: skip
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    before = window._shown_sha
    model = window.scope_model
    model.setData(model.index(_row(model, "app_version"), ScopeModel.INCLUDE), Qt.CheckState.Unchecked,
                  Qt.ItemDataRole.CheckStateRole)  # fmt: skip
    qtbot.waitUntil(lambda: window._shown_sha != before and window.approve_button.isEnabled(), timeout=5000)
    assert all("app_version" not in r for r in _shown_payload(window)["reports"])
    model.setData(model.index(_row(model, "ts"), ScopeModel.COARSEN), "day", Qt.ItemDataRole.EditRole)
    qtbot.waitUntil(lambda: "T00:00:00Z" in window.payload.toPlainText() and window.approve_button.isEnabled())
    assert _shown_payload(window)["reports"][0]["ts"] == "2026-11-24T00:00:00Z"
    window.aggregate.click()
    qtbot.waitUntil(lambda: "aggregates" in window.payload.toPlainText() and window.approve_button.isEnabled())


def test_approving_a_narrowed_scope_sends_exactly_the_previewed_bytes(qtbot: QtBot, window: ReviewWindow,
                                                                      broker: Broker) -> None:  # fmt: skip
    with vendor([200]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _pending(broker, manifest, [{"event": "a", "n": 5, "who": "alice"}, {"event": "b", "n": 9}])
        window.refresh()
        _loaded(qtbot, window, batch)
        model = window.scope_model
        model.setData(model.index(_row(model, "n"), ScopeModel.COARSEN), "bucket", Qt.ItemDataRole.EditRole)
        qtbot.waitUntil(lambda: '"n": 8' in window.payload.toPlainText() and window.approve_button.isEnabled())
        shown_sha = window._shown_sha
        shown_bytes = canonical_bytes(_shown_payload(window))
        assert hashlib.sha256(shown_bytes).hexdigest() == shown_sha
        with qtbot.waitSignal(window.decided, timeout=5000):
            qtbot.mouseClick(window.approve_button, Qt.MouseButton.LeftButton)
        assert broker.view(batch).batch.status == "approved"
        with closing(Forwarder(broker.deliveries, NoKeyring())) as forwarder:
            forwarder.deliver_due()
        assert v.bodies() == [shown_bytes]
        assert b"alice" not in v.bodies()[0]


def test_discard_sends_nothing(qtbot: QtBot, window: ReviewWindow, broker: Broker) -> None:
    with vendor([200]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _pending(broker, manifest, [{"event": "a"}])
        window.refresh()
        _loaded(qtbot, window, batch)
        with qtbot.waitSignal(window.decided, timeout=5000):
            qtbot.mouseClick(window.discard_button, Qt.MouseButton.LeftButton)
        assert broker.view(batch).batch.status == "discarded"
        with closing(Forwarder(broker.deliveries, NoKeyring())) as forwarder:
            assert forwarder.deliver_due() == []
        assert v.received == []
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.empty)


def test_remembered_scope_applies_to_the_next_batch(qtbot: QtBot, window: ReviewWindow, broker: Broker,
                                                    photoedit: Manifest) -> None:  # fmt: skip
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    model = window.scope_model
    model.setData(model.index(_row(model, "os_version"), ScopeModel.INCLUDE), Qt.CheckState.Unchecked,
                  Qt.ItemDataRole.CheckStateRole)  # fmt: skip
    qtbot.waitUntil(lambda: "os_version" not in window.payload.toPlainText() and window.approve_button.isEnabled())
    window.remember.setChecked(True)
    with qtbot.waitSignal(window.decided, timeout=5000):
        window.approve()
    nxt = _pending(broker, photoedit)
    view = broker.view(nxt)
    assert view.batch.status == "approved" and view.batch.decided_by == "policy"
    assert view.scope is not None and "os_version" not in view.scope.fields


def test_a_new_app_asks_for_consent(qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest) -> None:
    broker.register(photoedit)
    window.refresh()
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 2, timeout=5000)
    text = window.consent_text.text()
    assert "PhotoEdit by Example Corp wants to send telemetry to telemetry.example.org" in text
    assert "90 days" in text
    # Every field is in the details, behind their toggle.
    assert not window.consent_details.isVisible()
    qtbot.mouseClick(window.details_toggle, Qt.MouseButton.LeftButton)
    assert window.consent_details.isVisible() and "account_email" in window.consent_details.text()
    seen = seen_text(window.consent_details)
    assert "What it may send (identifying and pseudonymous fields start excluded):" in seen
    assert "account_email (identifying, starts excluded): The signed-in account" in seen
    assert "install_id (pseudonymous, starts excluded): A random ID" in seen
    assert "event (anonymous): Which feature was used" in seen
    assert seen.count("starts excluded") == 2
    qtbot.mouseClick(window.allow_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: broker.app(photoedit.app_id).status == "allowed", timeout=5000)


def test_errors_are_shown_not_raised(qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    broker.discard(batch)  # decided elsewhere (the CLI) while the window showed it
    window.approve()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    assert "already discarded" in window.banner.text()


def test_every_control_has_an_accessible_name(window: ReviewWindow) -> None:
    for widget in window.findChildren(QWidget):
        if widget.objectName().startswith("qt_"):
            continue  # Qt's own parts (scroll bar buttons and the like)
        if isinstance(widget, QAbstractButton) or widget in (window.tree, window.scope_view, window.payload):
            assert widget.accessibleName(), widget


def test_a_large_payload_shows_its_start_and_all_of_it_on_request(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tray_app.ui.review_window.PREVIEW_LIMIT", 300)
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit, [EVENT] * 50)
    window.refresh()
    _loaded(qtbot, window, batch)
    assert window.show_all.isVisible()
    assert "Show all of it" in window.payload.toPlainText() and len(window.payload.toPlainText()) < 500
    qtbot.mouseClick(window.show_all, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.show_all.isVisible(), timeout=5000)
    view = broker.view(batch)
    assert view.payload is not None and _shown_payload(window) == view.payload.obj()


def test_a_refresh_keeps_the_scope_being_edited(qtbot: QtBot, window: ReviewWindow, broker: Broker,
                                               photoedit: Manifest, notesync: Manifest) -> None:  # fmt: skip
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    model = window.scope_model
    model.setData(model.index(_row(model, "app_version"), ScopeModel.INCLUDE), Qt.CheckState.Unchecked,
                  Qt.ItemDataRole.CheckStateRole)  # fmt: skip
    qtbot.waitUntil(lambda: "app_version" not in window.payload.toPlainText() and window.approve_button.isEnabled())
    edited_sha = window._shown_sha
    window.remember.setChecked(True)
    broker.register(notesync)  # something else changes meanwhile: the list is refreshed
    window.refresh()
    qtbot.waitUntil(lambda: window.batches.rowCount() == 2, timeout=5000)
    qtbot.wait(400)  # give any (wrong) reload time to land
    assert window._current is not None and window._current.batch.batch_id == batch
    assert "app_version" not in model.scope().fields
    assert window._shown_sha == edited_sha and "app_version" not in window.payload.toPlainText()
    assert window.remember.isChecked()
    window.show_app(notesync.app_id)  # moving elsewhere clears "remember"
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 2, timeout=5000)
    window.show_app(photoedit.app_id)
    _loaded(qtbot, window, batch)
    assert not window.remember.isChecked()


def test_rapid_scope_edits_end_on_the_last_scope_with_few_renders(qtbot: QtBot, window: ReviewWindow, broker: Broker,
                                                                  photoedit: Manifest) -> None:  # fmt: skip
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit, [EVENT] * 2_000)
    window.refresh()
    _loaded(qtbot, window, batch)
    renders: list[object] = []
    original = broker.view
    broker.view = lambda *a, **k: (renders.append(a), original(*a, **k))[1]  # type: ignore[method-assign]
    model = window.scope_model
    index = model.index(_row(model, "app_version"), ScopeModel.INCLUDE)
    for n in range(9):  # as fast as a held-down space bar, on the UI thread
        state = Qt.CheckState.Unchecked if n % 2 == 0 else Qt.CheckState.Checked
        model.setData(index, state, Qt.ItemDataRole.CheckStateRole)
        assert not window.approve_button.isEnabled()
    qtbot.waitUntil(lambda: window.approve_button.isEnabled(), timeout=5000)
    qtbot.wait(200)  # nothing else is on its way
    # Nine edits: the first renders at once, the rest wait and render once, with the last scope.
    assert 1 <= len(renders) <= 3
    assert "app_version" not in model.scope().fields
    shown = broker.view(batch, model.scope()).payload
    assert shown is not None and window._shown_sha == shown.sha256
    assert '"app_version"' not in window.payload.toPlainText()


def test_closing_the_window_lets_go_of_the_decoded_reports(qtbot: QtBot, window: ReviewWindow, broker: Broker,
                                                           photoedit: Manifest) -> None:  # fmt: skip
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    assert broker.previews.kept_batch is not None
    window.close()
    assert broker.previews.kept_batch is None


def test_a_batch_can_be_narrowed_and_approved_with_the_keyboard_alone(qtbot: QtBot, window: ReviewWindow,
                                                                      broker: Broker) -> None:  # fmt: skip
    with vendor([200]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _pending(broker, manifest, [{"event": "a", "n": 5}, {"event": "b", "n": 9}])
        window.refresh()
        _loaded(qtbot, window, batch)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=5000)
        view = window.scope_view
        view.setFocus(Qt.FocusReason.TabFocusReason)
        view.setCurrentIndex(window.scope_model.index(_row(window.scope_model, "n"), ScopeModel.INCLUDE))
        before = window._shown_sha
        qtbot.keyClick(view, Qt.Key.Key_Space)  # untick "n"
        qtbot.waitUntil(lambda: window._shown_sha != before and window.approve_button.isEnabled(), timeout=5000)
        assert '"n"' not in window.payload.toPlainText()
        qtbot.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.AltModifier)  # Only c&ounts
        qtbot.waitUntil(lambda: "aggregates" in window.payload.toPlainText() and window.approve_button.isEnabled())
        shown = canonical_bytes(_shown_payload(window))
        with qtbot.waitSignal(window.decided, timeout=5000):
            qtbot.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)  # &Approve and send
        with closing(Forwarder(broker.deliveries, NoKeyring())) as forwarder:
            forwarder.deliver_due()
        assert v.bodies() == [shown]


def test_invisible_and_bidi_characters_in_reports_are_shown_escaped(qtbot: QtBot, window: ReviewWindow,
                                                                    broker: Broker) -> None:  # fmt: skip
    # An app could otherwise make the preview read differently from the bytes it stands for.
    manifest = tiny()
    allowed(broker, manifest)
    batch = _pending(broker, manifest, [{"event": "ok\u202egnp.exe\u200b"}])
    window.refresh()
    _loaded(qtbot, window, batch)
    text = window.payload.toPlainText()
    assert "\u202e" not in text and "\u200b" not in text
    assert "ok\\u202egnp.exe\\u200b" in text
    view = broker.view(batch)
    assert view.payload is not None and _shown_payload(window) == view.payload.obj()  # still the same JSON


def test_another_failure_during_a_render_does_not_enable_approve(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest
) -> None:
    import threading

    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    gate = threading.Event()
    original = broker.view
    broker.view = lambda *a, **k: (gate.wait(5), original(*a, **k))[1]  # type: ignore[method-assign]
    model = window.scope_model
    model.setData(model.index(_row(model, "app_version"), ScopeModel.INCLUDE), Qt.CheckState.Unchecked,
                  Qt.ItemDataRole.CheckStateRole)  # fmt: skip
    window._fail(StoreError("The database is busy. Try again."))  # e.g. a refresh that failed meanwhile
    assert not window.approve_button.isEnabled()  # the payload on screen is not the scope's yet
    gate.set()
    qtbot.waitUntil(lambda: window.approve_button.isEnabled(), timeout=5000)
    assert '"app_version"' not in window.payload.toPlainText()


def test_a_failed_render_can_be_retried_by_editing_again(qtbot: QtBot, window: ReviewWindow, broker: Broker,
                                                         photoedit: Manifest) -> None:  # fmt: skip
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    original = broker.view
    failures = [StoreError("The database is busy. Try again.")]

    def flaky(*a: Any, **k: Any) -> Any:
        if failures:
            raise failures.pop()
        return original(*a, **k)

    broker.view = flaky  # type: ignore[method-assign]
    model = window.scope_model
    index = model.index(_row(model, "app_version"), ScopeModel.INCLUDE)
    model.setData(index, Qt.CheckState.Unchecked, Qt.ItemDataRole.CheckStateRole)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    assert not window.approve_button.isEnabled() and "try again" in window.payload_info.text()
    model.setData(index, Qt.CheckState.Checked, Qt.ItemDataRole.CheckStateRole)  # the person tries again
    qtbot.waitUntil(lambda: window.approve_button.isEnabled(), timeout=5000)
    shown = original(batch, model.scope()).payload
    assert shown is not None and window._shown_sha == shown.sha256


def test_notices_and_errors_show_their_characters_once_escaped(window: ReviewWindow) -> None:
    for notice in ("Review PhotoEdit's batch", "Tom & Jerry", 'Say "yes"', """It's & "that" <now>"""):
        window.show_notice(notice)
        assert window.banner.isVisible()
        assert seen_text(window.banner) == notice
    # An error's text is the vendor's or the system's: its markup is shown, never applied.
    window._fail(StoreError("""It's <b>bold</b> & "quoted" <img src='x'>"""))
    assert seen_text(window.banner) == """Database problem: It's <b>bold</b> & "quoted" <img src='x'>"""
    window._fail(OSError('disk\'s <i>full</i> & "gone"'))
    assert seen_text(window.banner) == """Something went wrong: disk's <i>full</i> & "gone" (it is in the log)"""


def _open_coarsen_editor(qtbot: QtBot, w: ReviewWindow, name: str) -> QComboBox:
    """Click a field's "Coarsen to" cell, as a person does: its drop-down opens there."""
    view = w.scope_view
    index = w.scope_model.index(_row(w.scope_model, name), ScopeModel.COARSEN)
    view.scrollTo(index)
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view.visualRect(index).center())  # fmt: skip
    qtbot.waitUntil(lambda: isinstance(view.indexWidget(index), QComboBox), timeout=5000)
    editor = view.indexWidget(index)
    assert isinstance(editor, QComboBox)
    return editor


def _choose_in_drop_down(qtbot: QtBot, combo: QComboBox, text: str) -> None:
    """Open the drop-down with a click and click ``text`` in its list."""
    QTest.mouseClick(combo, Qt.MouseButton.LeftButton)
    popup = combo.view()
    qtbot.waitUntil(popup.isVisible, timeout=5000)
    qtbot.wait(QApplication.doubleClickInterval() + 100)  # a release sooner is taken as the opening click's
    item = popup.visualRect(popup.model().index(combo.findText(text), 0))
    QTest.mouseClick(popup.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, item.center())
    qtbot.waitUntil(lambda: not popup.isVisible(), timeout=5000)


def _approved_with(broker: Broker, batch: str, shown_sha: str | None) -> Scope:
    view = broker.view(batch)
    assert view.batch.status == "approved" and view.batch.decided_by == "person"
    assert view.payload is not None and view.payload.sha256 == shown_sha  # exactly what was on screen
    assert view.scope is not None
    return view.scope


def test_approve_clicked_with_a_coarsening_drop_down_open_approves_the_choice(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest
) -> None:
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    editor = _open_coarsen_editor(qtbot, window, "ts")
    assert editor.currentText() == "hour"
    _choose_in_drop_down(qtbot, editor, "day")
    qtbot.waitUntil(lambda: "T00:00:00Z" in window.payload.toPlainText() and window.approve_button.isEnabled())
    assert window.scope_view.indexWidget(window.scope_view.currentIndex()) is editor  # still open
    shown = window._shown_sha
    with qtbot.waitSignal(window.decided, timeout=5000):
        QTest.mouseClick(window.approve_button, Qt.MouseButton.LeftButton)  # the first click counts
    assert _approved_with(broker, batch, shown).coarsen["ts"] == "day"


def test_approve_commits_a_drop_down_not_committed_yet_and_approves_what_is_then_shown(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest
) -> None:
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit)
    window.refresh()
    _loaded(qtbot, window, batch)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    editor = _open_coarsen_editor(qtbot, window, "ts")
    editor.setCurrentText("day")  # shown in the drop-down; the scope does not have it yet
    assert window.scope_model.scope().coarsen["ts"] == "hour" and window.approve_button.isEnabled()
    with qtbot.waitSignal(window.decided, timeout=5000):
        QTest.mouseClick(window.approve_button, Qt.MouseButton.LeftButton)
    # Approved only after the payload for "day" was on screen, with that payload's digest.
    assert '"ts": "2026-11-24T00:00:00Z"' in window.payload.toPlainText()
    assert _approved_with(broker, batch, window._shown_sha).coarsen["ts"] == "day"
    assert window.scope_view.indexWidget(window.scope_view.currentIndex()) is None  # the editor closed


def test_dropped_field_names_are_shown_with_invisible_characters_spelt_out(
    qtbot: QtBot, window: ReviewWindow, broker: Broker
) -> None:
    # Undeclared names come from the app: a blank-looking Hangul filler or a variation
    # selector would make "user\u3164name" read as a harmless other name.
    manifest = tiny()
    allowed(broker, manifest)
    batch = _pending(broker, manifest, [{"event": "a", "user\u3164name": "x", "tag\ufe0f": 1}])
    window.refresh()
    _loaded(qtbot, window, batch)
    seen = seen_text(window.summary)
    assert "Dropped on arrival" in seen
    assert "user\\u3164name (1)" in seen and "tag\\ufe0f (1)" in seen
    assert "\u3164" not in seen and "\ufe0f" not in seen


def _click_checkbox(view: QTableView, index: QModelIndex) -> None:
    """Click a cell's check box where the style draws it, as a person does."""
    view.scrollTo(index)
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = view.visualRect(index)
    option.features |= QStyleOptionViewItem.ViewItemFeature.HasCheckIndicator
    box = view.style().subElementRect(QStyle.SubElement.SE_ItemViewItemCheckIndicator, option, view)
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, box.center())


def test_ticking_a_field_with_a_mouse_click_applies_its_manifest_coarsening(
    qtbot: QtBot, window: ReviewWindow, broker: Broker
) -> None:
    fields = [
        {"name": "event", "type": "string", "description": "what happened", "required": True},
        {"name": "files", "type": "integer", "description": "files open", "sensitivity": "pseudonymous",
         "coarsen": "bucket"},
    ]  # fmt: skip
    manifest = tiny(fields=fields)
    allowed(broker, manifest)
    batch = _pending(broker, manifest, [{"event": "a", "files": 13}, {"event": "b", "files": 700}])
    window.refresh()
    _loaded(qtbot, window, batch)
    model = window.scope_model
    row = _row(model, "files")
    assert "files" not in window.scope_model.scope().fields  # pseudonymous: starts excluded
    assert all("files" not in r for r in _shown_payload(window)["reports"])
    before = window._shown_sha
    _click_checkbox(window.scope_view, model.index(row, ScopeModel.INCLUDE))
    qtbot.waitUntil(lambda: window._shown_sha != before and window.approve_button.isEnabled(), timeout=5000)
    assert model.index(row, ScopeModel.INCLUDE).data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert model.index(row, ScopeModel.COARSEN).data() == "bucket"
    payload = _shown_payload(window)
    assert [r["files"] for r in payload["reports"]] == [8, 512]  # bucketed, as the manifest asks
    assert payload["scope"]["coarsen"] == {"files": "bucket"}
    # The same edit as the core's rule (and the CLI's --include).
    view = broker.view(batch)
    assert view.scope is not None
    assert window.scope_model.scope() == view.scope.edited(view.manifest, include=["files"])
