"""The review's "What this batch says" panel, drawn from a real broker's summary of a real
batch (real SQLite, offscreen Qt): the findings in words, most serious first, and per field
its values as bars as long as their share of the reports."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from pytestqt.qtbot import QtBot

from tests.support.builders import allowed
from tray_app.core import Broker, FindingKind, Manifest
from tray_app.ui.disclosure_panel import DisclosurePanel, FieldBars, field_heading, finding_tone
from tray_app.ui.look import Tone, contrast, notice_style

APP = "org.example.photoedit"


def _batch(broker: Broker, photoedit: Manifest, reports: int = 20) -> str:
    allowed(broker, photoedit)
    events = ["export"] * 12 + ["crop"] * 5 + ["filter"] * 3
    broker.ingest(
        APP,
        [
            {"event": events[i % 20], "ts": f"2026-11-24T{9 + i % 3:02d}:15:00Z", "install_id": "a1b2c3d4e5f6",
             "app_version": "3.1.4"}
            for i in range(reports)
        ],
    )  # fmt: skip
    (closed,) = broker.close_batches(force=True)
    return closed.batch_id


def test_the_panel_says_what_stands_out_first_and_draws_each_fields_values(
    qtbot: QtBot, broker: Broker, photoedit: Manifest
) -> None:
    batch = _batch(broker, photoedit)
    scope = broker.edited_scope(batch, include=["install_id"], coarsen={"ts": "hour"})
    view = broker.view(batch, scope)
    assert view.summary is not None
    panel = DisclosurePanel()
    qtbot.addWidget(panel)
    panel.resize(420, 600)
    panel.show_disclosure(view.summary)
    panel.show()
    qtbot.waitExposed(panel)

    kinds = [label.property("finding") for label in panel.finding_labels]
    assert kinds[0] == FindingKind.IDENTIFYING  # the pseudonymous install id, first
    assert FindingKind.ACTIVE_HOURS in kinds  # ts to the hour shows when the person was active
    texts = panel.texts()
    assert any("install_id" in text for text in texts[: len(kinds)])
    # Identifying and pseudonymous fields first among the fields, then the rest.
    headings = [label.text() for label in panel.field_labels]
    assert headings[0].startswith("install_id: 1 value in 20 reports")
    event = next(bars for bars in panel.bars if bars.summary.name == "event")
    assert field_heading(event.summary) in headings
    assert [row for row in event.rows] == [("'export'", 12), ("'crop'", 5), ("'filter'", 3)]
    # Each bar is its share of the field's reports: 12/20, 5/20, 3/20.
    assert [round(event.bar_fraction(i), 2) for i in range(3)] == [0.6, 0.25, 0.15]
    assert "'export': 12" in event.accessibleName()
    assert event.isVisible() and event.height() >= 3 * 16

    # Coarsening ts to the day: the picture changes, and the hours are no longer shown.
    coarser = broker.view(batch, broker.edited_scope(batch, include=["install_id"], coarsen={"ts": "day"}))
    panel.show_disclosure(coarser.summary)
    assert FindingKind.ACTIVE_HOURS not in [label.property("finding") for label in panel.finding_labels]
    ts = next(bars for bars in panel.bars if bars.summary.name == "ts")
    assert len(ts.rows) == 1 and ts.rows[0][1] == 20


def test_counts_mode_draws_the_folded_counts_and_says_what_other_holds(
    qtbot: QtBot, broker: Broker, photoedit: Manifest
) -> None:
    batch = _batch(broker, photoedit)
    view = broker.view(batch, broker.edited_scope(batch, mode="aggregate"))
    panel = DisclosurePanel()
    qtbot.addWidget(panel)
    panel.show_disclosure(view.summary)
    folded = [label.text() for label in panel.finding_labels if label.property("finding") == FindingKind.FOLDED]
    assert folded and "(other)" in folded[0]
    event = next(bars for bars in panel.bars if bars.summary.name == "event")
    labels = dict(event.rows)
    assert labels.get("(other)") == 8  # crop 5 and filter 3 are below min_count: counted together


def test_nothing_to_say_and_an_empty_scope_are_said(qtbot: QtBot, broker: Broker, photoedit: Manifest) -> None:
    panel = DisclosurePanel()
    qtbot.addWidget(panel)
    panel.show_disclosure(None)
    assert not panel.bars and "nothing to summarise" in panel.empty.text()
    batch = _batch(broker, photoedit)
    everything_out = broker.edited_scope(batch, exclude=list(broker.batch_scope(batch).fields))
    panel.show_disclosure(broker.view(batch, everything_out).summary)
    assert not panel.bars and not panel.empty.isHidden() and "no fields" in panel.empty.text()


def test_findings_read_on_a_dark_palette(qtbot: QtBot) -> None:
    dark = QPalette()
    dark.setColor(QPalette.ColorRole.Window, QColor("#202124"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#e8eaed"))
    dark.setColor(QPalette.ColorRole.Base, QColor("#171717"))
    style = notice_style(dark, finding_tone(FindingKind.LINKS_EARLIER))
    colours = [QColor(part.split(";")[0].strip()) for part in style.split("color:")[1:]]
    assert colours and all(c.isValid() for c in colours)
    assert max(contrast(c, QColor("#202124")) for c in colours) >= 4.5
    assert finding_tone(FindingKind.IDENTIFYING) == Tone.WARNING


def test_bars_never_overflow_their_area() -> None:
    from tray_app.core import FieldSummary

    summary = FieldSummary("n", "integer", "anonymous", 2, 10, (("1", 10), ("2", 0)), 0)
    bars = FieldBars(summary, "records")
    assert bars.bar_fraction(0) == 1.0 and bars.bar_fraction(1) == 0.0
