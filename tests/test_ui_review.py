"""The review window, with real widgets (offscreen), a real broker, a real vendor."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QWidget
from pytestqt.qtbot import QtBot

from tests.conftest import allowed, tiny
from tests.vendor import vendor
from tray_app.core import Broker, Manifest
from tray_app.core.errors import StoreError
from tray_app.core.forwarder import Forwarder
from tray_app.core.payload import canonical_bytes
from tray_app.core.secrets import SecretStore
from tray_app.ui.review import ReviewWindow, ScopeModel

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
        Forwarder(broker, NoKeyring()).deliver_due()
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
        assert Forwarder(broker, NoKeyring()).deliver_due() == []
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
    assert "90 days" in text and "account_email" in text
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
    monkeypatch.setattr("tray_app.ui.review.PREVIEW_LIMIT", 300)
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
    assert broker._preview is not None
    window.close()
    assert broker._preview is None


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
        Forwarder(broker, NoKeyring()).deliver_due()
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
