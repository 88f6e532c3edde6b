"""The History window over a real broker: rows, filters, exact payload bytes, export, verify."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QAbstractItemView, QComboBox, QLabel, QLineEdit, QPlainTextEdit
from pytestqt.qtbot import QtBot

from tests.support.builders import Clock, allowed, tiny
from tray_app.core import Broker
from tray_app.core.errors import StoreError
from tray_app.core.rules.receipts import Receipt, verify_chain
from tray_app.ui.history_window import HistoryModel, HistoryWindow, describe, summarize

OTHER = "org.example.other"
TIMEOUT_MS = 10_000


@dataclass
class Decided:
    delivered: str  # approved, then delivered with HTTP 200
    discarded: str
    approved: str  # approved (another app), not delivered yet


def _close_one(broker: Broker, app_id: str, reports: list[dict[str, object]]) -> str:
    broker.ingest(app_id, reports)
    (closed,) = broker.close_batches(force=True)
    return closed.batch_id


@pytest.fixture
def decided(broker: Broker) -> Decided:
    m = tiny()
    allowed(broker, m)
    allowed(broker, tiny(app_id=OTHER, name="Other", endpoint="https://other.example.net/in"))
    first = _close_one(broker, m.app_id, [{"event": "open", "n": 3}, {"event": "save", "n": 5}])
    broker.approve(first)
    (claim,) = broker.deliveries.claim("t")
    assert claim.batch_id == first
    broker.deliveries.finish(claim, status=200, request_id="r-1", elapsed_ms=12.5)
    second = _close_one(broker, m.app_id, [{"event": "quit"}])
    broker.discard(second)
    third = _close_one(broker, OTHER, [{"event": "sync", "n": 1}])
    broker.approve(third)
    return Decided(first, second, third)


@pytest.fixture
def window(qtbot: QtBot, broker: Broker) -> Iterator[HistoryWindow]:
    win = HistoryWindow(broker)
    qtbot.addWidget(win)
    yield win
    # No background task may outlive the broker it reads from.
    QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)


def _shown(qtbot: QtBot, win: HistoryWindow) -> None:
    with qtbot.waitSignal(win.loaded, timeout=TIMEOUT_MS):
        win.show()


def _select(qtbot: QtBot, win: HistoryWindow, action: str, batch_id: str) -> Receipt:
    receipt = next(r for r in win.model.receipts() if r.action == action and r.batch_id == batch_id)
    with qtbot.waitSignal(win.payload_shown, timeout=TIMEOUT_MS) as blocker:
        assert win.select_seq(receipt.seq)
    assert blocker.args == [batch_id]
    assert win.current_receipt() == receipt
    return receipt


def _form_text(win: HistoryWindow) -> str:
    return "\n".join(label.text() for label in win.receipt_box.findChildren(QLabel))


def _choose(combo: QComboBox, data: str | None) -> None:
    index = combo.findData(data)
    assert index >= 0, data
    combo.setCurrentIndex(index)


def test_rows_appear_newest_first(qtbot: QtBot, window: HistoryWindow, decided: Decided) -> None:
    _shown(qtbot, window)
    rows = window.visible_receipts()
    assert [r.action for r in rows] == ["approved", "discarded", "delivered", "approved"]
    assert [r.seq for r in rows] == [4, 3, 2, 1]
    assert window.count_label.text() == "4 receipts"
    proxy = window.proxy
    headers = [proxy.headerData(c, Qt.Orientation.Horizontal) for c in range(proxy.columnCount())]
    assert headers == ["When", "Action", "App", "Batch", "Summary"]
    delivered = proxy.index(2, HistoryModel.SUMMARY).data()
    assert "HTTP 200 OK" in delivered and "t.example.org" in delivered and "request r-1" in delivered
    assert proxy.index(1, HistoryModel.ACTION).data() == "Discarded"
    assert proxy.index(0, HistoryModel.APP).data() == "Other"
    assert proxy.index(0, HistoryModel.BATCH).data() == decided.approved[:12]
    # Sorting by another column and back keeps every row.
    window.table.sortByColumn(HistoryModel.APP, Qt.SortOrder.AscendingOrder)
    assert {r.seq for r in window.visible_receipts()} == {1, 2, 3, 4}


def test_filters_narrow_the_rows(qtbot: QtBot, window: HistoryWindow, decided: Decided) -> None:
    _shown(qtbot, window)
    apps = [window.app_filter.itemText(i) for i in range(window.app_filter.count())]
    assert apps == ["All apps", f"Other ({OTHER})", "Tiny (org.example.tiny)"]
    outcomes = [window.outcome_filter.itemData(i) for i in range(window.outcome_filter.count())]
    assert outcomes == [None, "approved", "discarded", "delivered", "retrying", "failed", "expired"]

    _choose(window.app_filter, OTHER)
    assert [(r.app_id, r.batch_id) for r in window.visible_receipts()] == [(OTHER, decided.approved)]
    assert window.count_label.text() == "1 of 4 receipts shown"

    _choose(window.app_filter, None)
    _choose(window.outcome_filter, "approved")
    assert {r.batch_id for r in window.visible_receipts()} == {decided.delivered, decided.approved}

    _choose(window.app_filter, "org.example.tiny")
    assert [r.batch_id for r in window.visible_receipts()] == [decided.delivered]
    _choose(window.outcome_filter, "failed")
    assert window.visible_receipts() == []
    assert "No receipts match" in window.count_label.text()

    _choose(window.app_filter, None)
    _choose(window.outcome_filter, None)
    window.search.setText("r-1")
    assert [r.action for r in window.visible_receipts()] == ["delivered"]
    window.search.setText(decided.discarded[:10].upper())
    assert [r.action for r in window.visible_receipts()] == ["discarded"]
    window.search.clear()
    assert len(window.visible_receipts()) == 4

    window.set_filters(app_id=OTHER, action="approved")
    assert window.app_filter.currentData() == OTHER
    assert [r.batch_id for r in window.visible_receipts()] == [decided.approved]


def test_an_approved_row_shows_the_exact_stored_bytes(
    qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided
) -> None:
    _shown(qtbot, window)
    _select(qtbot, window, "approved", decided.approved)
    stored = broker.store.payload(decided.approved)
    assert stored is not None
    assert json.loads(window.payload_view.toPlainText()) == json.loads(stored)
    assert window.payload_view.isReadOnly()
    sha = broker.view(decided.approved).payload
    assert sha is not None
    label = window.payload_label.text()
    assert "not delivered yet" in label and sha.sha256[:16] in label and "matches the receipt" in label
    assert f"{len(stored)} bytes" in label
    details = _form_text(window)
    for words in ("Decided by:", "you", "Scope:", "Records with event, n", "other.example.net", "Payload SHA-256:"):
        assert words in details
    assert sha.sha256 in details


def test_a_delivered_row_shows_where_it_went_and_the_vendor_answer(
    qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided
) -> None:
    _shown(qtbot, window)
    _select(qtbot, window, "delivered", decided.delivered)
    details = _form_text(window)
    for words in ("Vendor answer:", "HTTP 200 OK", "Request id:", "r-1", "Attempts:", "t.example.org", "12.5 ms"):
        assert words in details
    assert "The exact bytes sent" in window.payload_label.text()
    stored = broker.store.payload(decided.delivered)
    assert stored is not None
    assert json.loads(window.payload_view.toPlainText()) == json.loads(stored)


def test_rows_without_bytes_say_why(
    qtbot: QtBot, window: HistoryWindow, broker: Broker, clock: Clock, decided: Decided
) -> None:
    _shown(qtbot, window)
    _select(qtbot, window, "discarded", decided.discarded)
    assert "Nothing was sent" in window.payload_label.text()
    assert window.payload_view.toPlainText() == ""

    clock.advance(days=broker.retention_days + 1)
    sweep = broker.apply_retention()
    assert decided.delivered in sweep.purged
    with qtbot.waitSignal(window.loaded, timeout=TIMEOUT_MS):
        window.broker_changed()
    assert window.current_receipt() is not None  # the selection survives a refresh
    _select(qtbot, window, "delivered", decided.delivered)
    assert f"not kept (purged after {broker.retention_days} days)" in window.payload_label.text().lower()
    assert window.payload_view.toPlainText() == ""
    _choose(window.outcome_filter, "expired")
    # The delivered batch's bytes were purged; the approved one expired undelivered.
    assert {r.batch_id for r in window.visible_receipts()} == {decided.delivered, decided.approved}
    _select(qtbot, window, "expired", decided.approved)
    assert "Nothing was sent: the batch expired" in window.payload_label.text()


def test_a_removed_apps_receipts_stay(qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided) -> None:
    broker.remove_app("org.example.tiny")
    _shown(qtbot, window)
    assert window.app_filter.findText("org.example.tiny (removed)") >= 0
    _select(qtbot, window, "delivered", decided.delivered)
    assert "removed together with its app" in window.payload_label.text()


def test_export_writes_a_chain_that_verifies(
    qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided, tmp_path: Path
) -> None:
    _shown(qtbot, window)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "history.json"
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS) as blocker:
        window.export_to(str(target))
    assert blocker.args == [str(target)]
    document = json.loads(target.read_text(encoding="utf-8"))
    check = broker.verify_history()
    assert document["verified"] is True and document["count"] == 4 and document["head"] == check.head
    rebuilt = [
        Receipt(r["seq"], r["at"], r["batch_id"], r["app_id"], r["action"], r["detail"], r["prev_hash"], r["hash"])
        for r in document["receipts"]
    ]
    assert rebuilt == broker.history()
    again = verify_chain(rebuilt)
    assert again.ok and again.count == 4 and again.head == document["head"]
    assert "Exported 4 receipts" in window.status_label.text()
    assert list(out.iterdir()) == [target]  # no temporary file left behind


def test_the_export_button_asks_for_a_path(
    qtbot: QtBot, window: HistoryWindow, decided: Decided, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shown(qtbot, window)
    target = tmp_path / "chosen.json"
    monkeypatch.setattr(window, "choose_export_path", lambda: str(target))
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        QTest.mouseClick(window.export_button, Qt.MouseButton.LeftButton)
    assert json.loads(target.read_text(encoding="utf-8"))["count"] == 4

    monkeypatch.setattr(window, "choose_export_path", lambda: None)  # the person cancelled
    window.export()
    assert window.export_button.isEnabled()


def test_verify_reports_an_intact_chain_then_a_tampered_one(
    qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided, tmp_path: Path
) -> None:
    _shown(qtbot, window)
    with qtbot.waitSignal(window.verified, timeout=TIMEOUT_MS) as blocker:
        QTest.mouseClick(window.verify_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0].ok
    assert window.status_label.text().startswith("✓ History intact: 4 receipts")

    conn = sqlite3.connect(broker.store.path)
    conn.execute("UPDATE receipts SET detail = replace(detail, '\"reports\":2', '\"reports\":1') WHERE seq = 1")
    conn.commit()
    conn.close()
    with qtbot.waitSignal(window.loaded, timeout=TIMEOUT_MS):
        window.refresh()
    with qtbot.waitSignal(window.verified, timeout=TIMEOUT_MS) as blocker:
        window.verify()
    check = blocker.args[0]
    assert not check.ok and check.bad_seq == 1
    status = window.status_label.text()
    assert "FAILED" in status and "receipt 1 was changed after it was written" in status
    assert "#ffffff" in window.status_label.styleSheet()  # visibly marked, not only in words
    assert "cannot be trusted" in status
    assert window.model.bad_seq == 1
    assert window.receipt_warning.isVisible() and "cannot be trusted" in window.receipt_warning.text()
    assert window.current_receipt() is not None and window.current_receipt().seq == 1  # type: ignore[union-attr]

    target = tmp_path / "tampered.json"
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        window.export_to(str(target))
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["verified"] is False and "receipt 1" in document["problem"]
    assert "does NOT verify" in window.status_label.text()


def test_errors_show_in_the_banner_not_as_tracebacks(
    qtbot: QtBot,
    window: HistoryWindow,
    broker: Broker,
    decided: Decided,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _shown(qtbot, window)
    assert window.error_banner.isHidden()
    with qtbot.waitSignal(window.problem, timeout=TIMEOUT_MS) as blocker:
        window.export_to(str(tmp_path / "no-such-dir" / "h.json"))
    assert blocker.args[0].startswith("Cannot use the file")
    assert window.error_banner.isVisible() and window.export_button.isEnabled()

    def broken() -> list[Receipt]:
        raise StoreError("The database is busy: try again.")

    monkeypatch.setattr(broker, "history", broken)
    with qtbot.waitSignal(window.problem, timeout=TIMEOUT_MS) as blocker:
        window.refresh()
    assert blocker.args[0] == "Database problem: The database is busy: try again."
    assert window.error_label.text() == blocker.args[0]
    assert window.refresh_button.isEnabled()
    QTest.mouseClick(window.dismiss_button, Qt.MouseButton.LeftButton)
    assert window.error_banner.isHidden()


def test_a_refresh_shows_new_decisions(qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided) -> None:
    _shown(qtbot, window)
    batch = _close_one(broker, OTHER, [{"event": "again"}])
    broker.discard(batch)
    with qtbot.waitSignal(window.loaded, timeout=TIMEOUT_MS) as blocker:
        window.broker_changed()
    assert blocker.args == [5]
    assert window.visible_receipts()[0].batch_id == batch


def test_background_reads_run_side_by_side(
    qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided, tmp_path: Path
) -> None:
    """Many tasks on several pool threads at once: none may break another's connection."""
    _shown(qtbot, window)
    failures: list[str] = []
    window.problem.connect(failures.append)
    for round_ in range(15):
        for receipt in window.model.receipts():
            window.select_seq(receipt.seq)
        window.refresh()
        window.export_to(str(tmp_path / f"h{round_}.json"))
        window.verify()
        with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
            pass
        QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)
        qtbot.waitUntil(lambda: window.refresh_button.isEnabled() and window.verify_button.isEnabled())
    assert failures == []
    with qtbot.waitSignal(window.payload_shown, timeout=TIMEOUT_MS):
        window.select_seq(1) or window.select_seq(2)
    assert window.payload_view.toPlainText()


def test_an_empty_history(qtbot: QtBot, window: HistoryWindow) -> None:
    _shown(qtbot, window)
    assert window.count_label.text() == "No receipts yet."
    with qtbot.waitSignal(window.verified, timeout=TIMEOUT_MS):
        window.verify()
    assert "History intact: 0 receipts" in window.status_label.text()


def test_every_control_has_an_accessible_name(qtbot: QtBot, window: HistoryWindow, decided: Decided) -> None:
    _shown(qtbot, window)
    _select(qtbot, window, "delivered", decided.delivered)
    controls = [
        w
        for kind in (QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QAbstractItemView)
        for w in window.findChildren(kind)
        # Parts Qt builds inside a control (a line edit's clear button, a combo's list) are named by it.
        if not isinstance(w.parent(), QComboBox | QLineEdit)
        and w.parent() is not None
        and "qt_" not in w.objectName()
        and w.window() is window
    ]
    assert len(controls) >= 9
    assert [w for w in controls if not w.accessibleName()] == []
    for label in window.receipt_box.findChildren(QLabel):
        assert label.accessibleName() or label.buddy() is not None


def test_keyboard_shortcuts(qtbot: QtBot, window: HistoryWindow, decided: Decided, tmp_path: Path) -> None:
    _shown(qtbot, window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT_MS)
    window.table.setFocus()
    QTest.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.search.hasFocus()

    target = tmp_path / "keys.json"
    window.choose_export_path = lambda: str(target)  # type: ignore[method-assign]
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        QTest.keyClick(window.search, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert target.exists()

    QTest.keyClick(window.search, Qt.Key.Key_Escape)
    assert not window.isVisible()


def test_words_for_receipts_leave_nothing_out(broker: Broker, decided: Decided) -> None:
    receipts = broker.history()
    for receipt in receipts:
        assert summarize(receipt)
        labels = [label for label, _ in describe(receipt, "Tiny")]
        assert labels[:4] == ["When", "Outcome", "App", "Batch"] and labels[-3:] == [
            "Receipt",
            "Receipt hash",
            "Previous hash",
        ]
    delivered = next(r for r in receipts if r.action == "delivered")
    rows = dict(describe(delivered))
    assert rows["Vendor answer"] == "HTTP 200 OK" and rows["Request id"] == "r-1" and rows["Attempts"] == "1"
    assert rows["Payload SHA-256"] == delivered.detail["payload_sha256"]
    detail = {"error": "refused", "attempts": 3, "x_y": 1}
    odd = Receipt(9, "2026-11-24T10:30:00Z", "b", "a", "failed", detail, "0", "1")
    rows = dict(describe(odd))
    assert rows["Vendor answer"].startswith("none") and rows["Error"] == "refused" and rows["X y"] == "1"
    assert "no answer: refused" in summarize(odd) and "gave up" in summarize(odd)


def test_a_big_stored_payload_shows_its_start_only(broker: Broker) -> None:
    # Laying out megabytes on the UI thread would freeze the window: the start, and its size.
    from tests.support.builders import allowed, tiny
    from tray_app.core.rules.preview_text import PREVIEW_CHARS
    from tray_app.ui.history_window import load_payload

    app = tiny(app_id="org.example.big")
    allowed(broker, app)
    broker.ingest(app.app_id, [{"event": "e" * 200} for _ in range(2_000)])
    (closed,) = [c for c in broker.close_batches(force=True) if c.app_id == app.app_id]
    approved = broker.approve(closed.batch_id)
    assert approved.payload is not None and approved.payload.size > 2 * PREVIEW_CHARS
    stored = load_payload(broker, closed.batch_id)
    assert stored.sha256 == approved.payload.sha256
    assert len(stored.pretty) < PREVIEW_CHARS + 200
    assert stored.pretty.endswith(f"of {approved.payload.size:,} bytes)")


def test_a_vendors_answer_is_shown_with_its_hidden_characters_spelt_out(
    qtbot: QtBot, window: HistoryWindow, broker: Broker
) -> None:
    # The vendor's words could otherwise reverse what follows them (U+202E), hide in plain
    # sight (U+200B) or drive a terminal the text is copied to (ESC).
    from keyring.backends import fail

    from tests.support.fake_vendor import vendor
    from tray_app.core.forwarder import Forwarder
    from tray_app.core.platform.secrets import SecretStore

    answer = "bad \u202etxt.exe\u200b \x1b[2J\rok".encode()
    with vendor([("body", 400, answer)]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _close_one(broker, manifest.app_id, [{"event": "open"}])
        broker.approve(batch)
        with closing(Forwarder(broker.deliveries, SecretStore(fail.Keyring()))) as forwarder:
            (outcome,) = forwarder.deliver_due()
        assert outcome.status == 400 and len(v.received) == 1
    _shown(qtbot, window)
    receipt = next(r for r in window.model.receipts() if r.batch_id == batch and r.action != "approved")
    assert "\u202e" in str(receipt.detail["error"])  # the receipt keeps the vendor's answer as it came
    source_row = window.model.row_of(receipt.seq)
    assert source_row is not None
    row = window.proxy.mapFromSource(window.model.index(source_row, 0)).row()
    cell = window.table.visualRect(window.proxy.index(row, HistoryModel.SUMMARY))
    with qtbot.waitSignal(window.payload_shown, timeout=TIMEOUT_MS):
        QTest.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         cell.center())  # fmt: skip
    assert window.current_receipt() == receipt
    error = next(label for label in window.receipt_box.findChildren(QLabel) if label.accessibleName() == "Error")
    assert error.text().startswith("HTTP 400: bad \\u202etxt.exe\\u200b \\u001b[2J")
    shown = [label.text() for label in window.receipt_box.findChildren(QLabel)]
    shown += [str(window.proxy.index(row, column).data()) for column in range(window.proxy.columnCount())]
    for text in shown:
        assert not any(char in text for char in "\u202e\u200b\x1b\r"), text


def test_the_window_and_the_cli_export_the_same_bytes(
    qtbot: QtBot,
    window: HistoryWindow,
    broker: Broker,
    decided: Decided,
    home: Path,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tray_app import cli
    from tray_app.core import export_chain

    _shown(qtbot, window)
    from_window, from_cli = tmp_path / "window.json", tmp_path / "cli.json"
    with qtbot.waitSignal(window.exported, timeout=TIMEOUT_MS):
        window.export_to(str(from_window))

    # The CLI's own verb, in this process, on the same home and the same (fixed) clock.
    opened: list[Broker] = []
    real_open = Broker.open.__func__  # type: ignore[attr-defined]

    def open_with_clock(cls: type[Broker], locations: object, clock_: object = None) -> Broker:
        opened.append(real_open(cls, locations, clock))
        return opened[-1]

    monkeypatch.setenv("TELEMETRY_TRAY_HOME", str(home))
    monkeypatch.setattr(Broker, "open", classmethod(open_with_clock))
    try:
        assert cli.main(["history", "--export", str(from_cli)]) == 0
    finally:
        for other in opened:
            other.close()
    assert "Exported 4 receipt(s)" in capsys.readouterr().out

    body = from_window.read_bytes()
    assert from_cli.read_bytes() == body
    assert body == export_chain(broker.history(), "2026-11-24T10:30:00Z")
    for path in (from_window, from_cli):
        assert path.stat().st_mode & 0o777 == 0o600
    document = json.loads(body)
    rebuilt = [
        Receipt(r["seq"], r["at"], r["batch_id"], r["app_id"], r["action"], r["detail"], r["prev_hash"], r["hash"])
        for r in document["receipts"]
    ]
    check = verify_chain(rebuilt)
    assert check.ok and check.count == document["count"] == 4 and check.head == document["head"]
    assert list(document) == ["exported_at", "count", "head", "verified", "receipts"]


def test_a_purge_receipt_is_described_with_its_batch_status() -> None:
    from tray_app.core.rules.receipts import Action, seal
    from tray_app.ui.history_window import describe

    detail = {"purged": "payload", "payload_sha256": "ab" * 32, "status": "delivered"}
    rows = dict(describe(seal(None, "2026-01-01T00:00:00Z", "b" * 32, "org.example.a", Action.EXPIRED, detail)))
    assert rows["Batch status"] == "delivered"
    assert "Vendor answer" not in rows


def test_a_sent_batch_shows_what_it_said_about_the_person(
    qtbot: QtBot, window: HistoryWindow, broker: Broker, decided: Decided
) -> None:
    _shown(qtbot, window)
    _select(qtbot, window, "delivered", decided.delivered)
    panel = window.sent_summary
    headings = [label.text() for label in panel.field_labels]
    # What the delivered bytes said: event sent 2 values in 2 reports, n 2 values.
    assert headings == ["event: 2 values in 2 reports", "n: 2 values in 2 reports"]
    event = next(bars for bars in panel.bars if bars.summary.name == "event")
    assert sorted(event.rows) == [("'open'", 1), ("'save'", 1)]
    # A discarded batch sent nothing: nothing to say.
    _select(qtbot, window, "discarded", decided.discarded)
    assert not panel.bars and "nothing to summarise" in panel.empty.text()
