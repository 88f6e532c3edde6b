"""Decisions that say what they did: approve, discard, allow, block (asked first, with what
it deletes), a held batch that says why it cannot be approved and offers the fix, the
consent prompt, and "Only counts" in words. Real widgets offscreen, a real broker and
vendor, real clicks where a person clicks."""

from __future__ import annotations

import math
from contextlib import closing
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from tests.support.builders import allowed, tiny
from tests.support.fake_vendor import vendor
from tests.ui.test_ui_review import _choose_in_drop_down, _open_coarsen_editor, seen_text
from tray_app.core import Broker, ConflictError, Manifest, bucket_words, level_words, other_words
from tray_app.core.forwarder import Forwarder
from tray_app.core.platform.secrets import SecretStore
from tray_app.core.rules.bucket_words import bucket_bounds
from tray_app.core.rules.coarsening import bucket
from tray_app.ui.review_window import ReviewWindow, ScopeModel


class NoKeyring(SecretStore):
    def get(self, app_id: str) -> str | None:
        raise AssertionError("not asked for a vendor without auth")


@pytest.fixture
def window(qtbot: QtBot, broker: Broker) -> ReviewWindow:
    w = ReviewWindow(broker)
    qtbot.addWidget(w)
    w.show()
    return w


def _pending(broker: Broker, manifest: Manifest, reports: list[dict[str, Any]]) -> str:
    broker.ingest(manifest.app_id, reports)
    (closed,) = broker.close_batches(force=True)
    return closed.batch_id


def _loaded(qtbot: QtBot, w: ReviewWindow, batch_id: str) -> None:
    qtbot.waitUntil(
        lambda: w._current is not None and w._current.batch.batch_id == batch_id and w.payload_info.text() != "",
        timeout=5000,
    )
    qtbot.waitUntil(lambda: w._payload_current and not w._rendering, timeout=5000)


def _click(qtbot: QtBot, button: Any) -> None:
    qtbot.waitUntil(lambda: button.isVisible() and button.isEnabled(), timeout=5000)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def _answer(qtbot: QtBot, window: ReviewWindow, text: str | None) -> str:
    """Click ``text`` (None: Cancel) in the question the window asks; return its text."""
    qtbot.waitUntil(lambda: window.question is not None and window.question.isVisible(), timeout=5000)
    box = window.question
    assert box is not None
    asked = f"{box.windowTitle()}\n{box.text()}"
    button = (
        box.button(QMessageBox.StandardButton.Cancel)
        if text is None
        else next(b for b in box.buttons() if b.text() == text)
    )
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    return asked


def _click_row(qtbot: QtBot, w: ReviewWindow, index: QModelIndex) -> None:
    w.tree.scrollTo(index)
    QTest.mouseClick(w.tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     w.tree.visualRect(index).center())  # fmt: skip


def _group_child(w: ReviewWindow, name: str) -> QModelIndex:
    model = w.tree.model()
    for row in range(model.rowCount()):
        top = model.index(row, 0)
        if top.data() == name:
            return model.index(0, 0, top)
    raise AssertionError(f"no group {name!r}")


def _row(model: ScopeModel, name: str) -> int:
    return next(r for r in range(model.rowCount()) if model.spec(r).name == name)


# -- approve and discard say what they did ----------------------------------------------


def test_approve_says_what_will_be_sent_and_then_that_it_was_sent(
    qtbot: QtBot, window: ReviewWindow, broker: Broker
) -> None:
    with vendor([200]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _pending(broker, manifest, [{"event": "a"}, {"event": "b"}])
        window.refresh()
        _loaded(qtbot, window, batch)
        size = window._current.payload.size if window._current and window._current.payload else 0
        with qtbot.waitSignal(window.decided, timeout=5000):
            _click(qtbot, window.approve_button)
        assert (
            seen_text(window.banner) == f"Approved Tiny's batch of 2 reports: {size:,} bytes will be sent to 127.0.0.1."
        )
        window.refresh()  # not sent yet: it still says so
        qtbot.wait(300)
        assert seen_text(window.banner).startswith("Approved Tiny's batch")
        with closing(Forwarder(broker.deliveries, NoKeyring())) as forwarder:
            forwarder.deliver_due()
        assert len(v.bodies()) == 1 and len(v.bodies()[0]) == size
        window.refresh()  # as the tray does when a delivery finished
        qtbot.waitUntil(
            lambda: seen_text(window.banner) == f"Sent {size:,} bytes to 127.0.0.1 (Tiny, 2 reports).", timeout=5000
        )


def test_a_refused_batch_says_so_once_the_vendor_refused_it(qtbot: QtBot, window: ReviewWindow, broker: Broker) -> None:
    with vendor([400]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _pending(broker, manifest, [{"event": "a"}])
        window.refresh()
        _loaded(qtbot, window, batch)
        with qtbot.waitSignal(window.decided, timeout=5000):
            _click(qtbot, window.approve_button)
        with closing(Forwarder(broker.deliveries, NoKeyring())) as forwarder:
            forwarder.deliver_due()
        window.refresh()
        qtbot.waitUntil(lambda: "refused Tiny's batch" in seen_text(window.banner), timeout=5000)
        assert "History has its answer" in seen_text(window.banner)


def test_remembering_the_scope_says_that_later_batches_go_without_asking(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest
) -> None:
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit, [{"event": "crop", "app_version": "3.1.4"}] * 2)
    window.refresh()
    _loaded(qtbot, window, batch)
    QTest.mouseClick(window.remember, Qt.MouseButton.LeftButton, pos=window.remember.rect().topLeft() + _inset())
    assert window.remember.isChecked()
    with qtbot.waitSignal(window.decided, timeout=5000):
        _click(qtbot, window.approve_button)
    notice = seen_text(window.banner)
    assert notice.startswith("Approved PhotoEdit's batch of 2 reports: ")
    assert notice.endswith(
        "PhotoEdit's next batches will be sent like this without asking; Settings can make it ask again."
    )
    assert broker.app(photoedit.app_id).policy == "approve"


def _inset() -> Any:
    from PySide6.QtCore import QPoint

    return QPoint(8, 8)  # on the check box itself, not its label's far end


def test_discard_says_how_many_reports_were_deleted(qtbot: QtBot, window: ReviewWindow, broker: Broker) -> None:
    manifest = tiny()
    allowed(broker, manifest)
    batch = _pending(broker, manifest, [{"event": "a"}] * 10)
    window.refresh()
    _loaded(qtbot, window, batch)
    with qtbot.waitSignal(window.decided, timeout=5000):
        _click(qtbot, window.discard_button)
    assert seen_text(window.banner) == "Discarded Tiny's batch: its 10 reports were deleted and nothing was sent."
    assert broker.batch_summary(batch).status == "discarded"


# -- consent: the prompt, Allow, Block --------------------------------------------------


def _asking(qtbot: QtBot, window: ReviewWindow, broker: Broker, notesync: Manifest, reports: int) -> None:
    broker.register(notesync)
    if reports:
        broker.ingest(notesync.app_id, [{"sync_result": "ok"}] * reports)
        broker.close_batches(force=True)  # held: it is not allowed yet
    window.refresh()
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 2, timeout=5000)


def test_the_consent_prompt_says_what_is_held_what_block_deletes_and_keeps_details_behind_a_toggle(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, notesync: Manifest
) -> None:
    _asking(qtbot, window, broker, notesync, 3)
    seen = seen_text(window.consent_text)
    assert "NoteSync by NoteSync Ltd wants to send telemetry to metrics.notesync.net" in seen
    assert "It has already sent 3 reports (1 batch): they are held here, and nothing has left this computer." in seen
    assert "Block: the 3 reports it left here are deleted, and its reports are refused" in seen
    assert "Allow: nothing is sent until you approve a batch" in seen
    assert not window.consent_details.isVisible()
    assert window.details_toggle.arrowType() == Qt.ArrowType.RightArrow
    _click(qtbot, window.details_toggle)
    assert window.consent_details.isVisible() and window.details_toggle.arrowType() == Qt.ArrowType.DownArrow
    details = seen_text(window.consent_details)
    assert notesync.privacy_policy in details and notesync.endpoint in details
    assert all(f.name in details for f in notesync.fields)
    _click(qtbot, window.details_toggle)
    assert not window.consent_details.isVisible()


def test_block_in_the_review_asks_first_saying_how_many_reports_it_deletes(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, notesync: Manifest
) -> None:
    _asking(qtbot, window, broker, notesync, 3)
    _click(qtbot, window.block_button)
    asked = _answer(qtbot, window, None)  # Cancel
    assert asked.startswith("Block NoteSync?\nNoteSync has left 3 reports here (1 batch); blocking deletes them")
    qtbot.wait(200)
    assert broker.app(notesync.app_id).status == "awaiting_consent"
    assert sum(b.reports for b in broker.pending()) == 3  # nothing deleted
    _click(qtbot, window.block_button)
    _answer(qtbot, window, "Block and delete 3 reports")
    qtbot.waitUntil(lambda: broker.app(notesync.app_id).status == "blocked", timeout=5000)
    assert broker.pending() == []
    qtbot.waitUntil(lambda: seen_text(window.banner).startswith("Blocked NoteSync"), timeout=5000)
    assert seen_text(window.banner) == (
        "Blocked NoteSync: the 3 reports it left were deleted and nothing was sent. Its reports are refused "
        "until you allow it again in Settings."
    )


def test_allow_says_what_happens_next(qtbot: QtBot, window: ReviewWindow, broker: Broker, notesync: Manifest) -> None:
    _asking(qtbot, window, broker, notesync, 4)
    _click(qtbot, window.allow_button)
    qtbot.waitUntil(lambda: broker.app(notesync.app_id).status == "allowed", timeout=5000)
    qtbot.waitUntil(lambda: seen_text(window.banner).startswith("Allowed NoteSync"), timeout=5000)
    assert seen_text(window.banner) == (
        "Allowed NoteSync: each batch waits for your review. The 4 reports it sent before wait here for you."
    )


def test_a_held_batch_cannot_be_approved_says_why_and_offers_the_button_that_fixes_it(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, notesync: Manifest
) -> None:
    _asking(qtbot, window, broker, notesync, 2)
    _click_row(qtbot, window, _group_child(window, "NoteSync"))
    qtbot.waitUntil(lambda: window._current is not None and window.reason.isVisible(), timeout=5000)
    assert window._current is not None and window._current.batch.status == "held"
    assert not window.approve_button.isEnabled() and not window.remember.isEnabled()
    assert window.discard_button.isEnabled()
    assert seen_text(window.reason).startswith("Held: NoteSync is not allowed to send telemetry yet")
    assert window.allow_here_button.isVisible() and window.allow_here_button.text() == "Allo&w NoteSync"
    assert "telemetry-tray" not in seen_text(window.reason)  # words, not a command
    batch = window._current.batch.batch_id
    _click(qtbot, window.allow_here_button)
    qtbot.waitUntil(lambda: window.approve_button.isEnabled(), timeout=5000)
    assert window._current is not None and window._current.batch.batch_id == batch  # the same batch, now decidable
    assert not window.reason.isVisible() and not window.allow_here_button.isVisible()
    assert seen_text(window.banner).startswith("Allowed NoteSync: each batch waits for your review.")


def test_an_error_about_an_app_goes_once_the_app_is_allowed_elsewhere(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, notesync: Manifest
) -> None:
    _asking(qtbot, window, broker, notesync, 1)
    batch = broker.pending()[0].batch_id
    _click_row(qtbot, window, _group_child(window, "NoteSync"))
    qtbot.waitUntil(lambda: window._current is not None and window.reason.isVisible(), timeout=5000)
    with pytest.raises(ConflictError) as refused:
        broker.approve(batch)  # what approving it said before the button was disabled
    window._fail(refused.value)
    assert "not allowed to send telemetry yet" in seen_text(window.banner)
    window.refresh()
    qtbot.wait(300)
    assert window.banner.isVisible()  # its cause is still there
    broker.set_consent(notesync.app_id, True)  # in Settings
    window.refresh()
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: window.approve_button.isEnabled(), timeout=5000)


# -- "Only counts", buckets, week -------------------------------------------------------


def test_bucket_words_name_exactly_the_values_each_bucket_holds() -> None:
    assert bucket_words(1024) == "1024–2047"
    assert bucket_words("1024") == "1024–2047"
    assert bucket_words(0) == "0" and bucket_words(1) == "1" and bucket_words(2) == "2–3"
    assert bucket_words(-8) == "-8 to -5" and bucket_words(-1) == "-1"
    assert bucket_words(1024, integer=False) == "1024 to under 2048"
    assert bucket_words("(other)") == "(other)"
    with pytest.raises(ValueError, match="not the lower bound"):
        bucket_bounds(12)
    for value in [*range(-300, 5000), 0.5, 1.5, -0.5, -1.5, -2.0, -2.5, 1023.9, 2.0**40 + 0.5]:
        low, high = bucket_bounds(bucket(value))
        assert low <= value < high, value
    for lower in (1, 2, 4, 1024, -1, -2, -4, -1024):
        low, high = bucket_bounds(lower)
        assert bucket(low) == lower and bucket(math.nextafter(high, low)) == lower


def test_only_counts_says_what_other_means_and_labels_buckets_as_ranges(
    qtbot: QtBot, window: ReviewWindow, broker: Broker
) -> None:
    fields = [
        {"name": "event", "type": "string", "description": "what happened", "required": True},
        {"name": "n", "type": "integer", "description": "a size", "coarsen": "bucket"},
    ]
    manifest = tiny(fields=fields, min_count=3)
    allowed(broker, manifest)
    values = [1500, 1100, 1030, 2000, 1024, 5, 300, 70]  # five in 1024–2047; 4, 256 and 64 once each
    batch = _pending(broker, manifest, [{"event": "e", "n": n} for n in values])
    window.refresh()
    _loaded(qtbot, window, batch)
    rule = seen_text(window.coarsen_help)  # records: the rule, under the scope
    assert "n is sent as the lower end of its power-of-two range" in rule and "meaning 1024–2047" in rule
    assert not window.payload_legend.isVisible()
    before = window._shown_sha
    _click(qtbot, window.aggregate)
    qtbot.waitUntil(lambda: window._shown_sha != before and window._payload_current, timeout=5000)
    payload = window._current.payload.obj() if window._current and window._current.payload else {}
    assert payload["aggregates"]["n"] == {"1024": 5, "(other)": 3}
    legend = seen_text(window.payload_legend)
    assert legend.startswith("n: 1024 = 1024–2047\n")  # the buckets sent, as ranges
    assert other_words(3) in legend and "fewer than 3 times" in other_words(3)
    assert "(other)" in seen_text(window.mode_help) and "fewer than 3 times" in seen_text(window.mode_help)
    assert window.aggregate.toolTip() and window.records.toolTip()


def test_week_and_bucket_are_explained_where_they_are_chosen(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest
) -> None:
    allowed(broker, photoedit)
    batch = _pending(broker, photoedit, [{"event": "crop", "ts": "2026-11-26T10:11:12Z", "duration_ms": 700}])
    window.refresh()
    _loaded(qtbot, window, batch)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    model = window.scope_model
    editor = _open_coarsen_editor(qtbot, window, "ts")
    tips = {editor.itemText(i): editor.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(editor.count())}
    assert tips["week"] == f"Sent as {level_words('week')}." and "Monday" in tips["week"]
    assert tips["exact"] == "Sent as it is."
    _choose_in_drop_down(qtbot, editor, "week")
    qtbot.waitUntil(lambda: '"ts": "2026-11-23T00:00:00Z"' in window.payload.toPlainText(), timeout=5000)
    assert "ts is sent as its week only: the Monday, at midnight UTC, that starts its (ISO) week" in seen_text(
        window.coarsen_help
    )
    tip = model.index(_row(model, "ts"), ScopeModel.COARSEN).data(Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("ts is sent as its week only") and "day: its day only" in tip
    # Bucketing a number is explained the same way.
    row = _row(model, "duration_ms")
    assert "duration_ms" in model.scope().fields
    model.setData(model.index(row, ScopeModel.COARSEN), "bucket", Qt.ItemDataRole.EditRole)
    qtbot.waitUntil(lambda: '"duration_ms": 512' in window.payload.toPlainText(), timeout=5000)
    assert "duration_ms is sent as the lower end of its power-of-two range" in seen_text(window.coarsen_help)
