"""The review's "What this batch says": the batch's summary as a person reads it at a glance.

Above, in plain words, what stands out (:class:`~tray_app.core.Finding`: an identifying field,
a value that links this batch to earlier ones, free text, the hours you were active, what
``(other)`` holds), most serious first; below, per included field, how many distinct values it
sends and its most common ones drawn as bars, so 40,000 reports read as a picture, not JSON.

The summary (:class:`~tray_app.core.Disclosure`) is computed by the core off the UI thread,
with the payload, for the scope shown; this widget only draws it. Colours come from the
palette (:mod:`.look`), so a dark palette is drawn as well as a light one; every bar also
carries its numbers as text (tooltip and accessible name) for a screen reader.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from ..core import Disclosure, FieldSummary, FindingKind, Mode, value_label
from .look import Tone, notice_style, tone_colour

__all__ = ["DisclosurePanel", "FieldBars", "finding_tone"]

BAR_HEIGHT = 16
BAR_GAP = 4
LABEL_SHARE = 0.42  # of the width, for the value's label left of its bar

_TONES = {
    FindingKind.IDENTIFYING: Tone.WARNING,
    FindingKind.LINKS_EARLIER: Tone.WARNING,
    FindingKind.NEARLY_UNIQUE: Tone.WARNING,
    FindingKind.ACTIVE_HOURS: Tone.INFO,
    FindingKind.FOLDED: Tone.NEUTRAL,
    FindingKind.PURGED_EARLIER: Tone.NEUTRAL,
}


def finding_tone(kind: FindingKind) -> Tone:
    """How loudly a finding is drawn: what ties the batch to a person is a warning."""
    return _TONES.get(kind, Tone.INFO)


def field_heading(summary: FieldSummary) -> str:
    """The field's line above its bars ("event: 4 values in 25 reports"), with its noise if any."""
    values = "1 value" if summary.distinct == 1 else f"{summary.distinct} values"
    reports = "1 report" if summary.reports == 1 else f"{summary.reports} reports"
    text = f"{summary.name}: {values} in {reports}"
    if summary.noise is not None:
        text += f" (with noise, ε = {summary.noise:g})"
    return text


class FieldBars(QWidget):
    """One field's most common values as horizontal bars, each as long as its share of the
    reports that have the field, with the value and its count beside it."""

    def __init__(self, summary: FieldSummary, mode: Mode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = summary
        self.rows: list[tuple[str, int]] = [
            (value_label(summary.type, value, mode=mode), count) for value, count in summary.top
        ]
        if summary.other > 0:
            self.rows.append((f"{summary.distinct - len(summary.top)} other values", summary.other))
        words = "; ".join(f"{label}: {count}" for label, count in self.rows)
        self.setToolTip(words)
        self.setAccessibleName(f"{field_heading(summary)}. {words}")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(280, len(self.rows) * (BAR_HEIGHT + BAR_GAP))  # no values: no room taken

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.sizeHint().height())

    def bar_fraction(self, row: int) -> float:
        """How much of the bar area row ``row``'s bar fills: its share of the field's reports."""
        total = max(1, self.summary.reports)
        return min(1.0, self.rows[row][1] / total)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            palette = self.palette()
            metrics = QFontMetrics(self.font())
            width = self.width()
            label_w = int(width * LABEL_SHARE)
            count_w = metrics.horizontalAdvance("000000") + 6
            bar_w = max(10, width - label_w - count_w - 8)
            text = palette.color(QPalette.ColorRole.WindowText)
            fill = palette.color(QPalette.ColorRole.Highlight)
            rest = tone_colour(palette, Tone.NEUTRAL)
            for row, (label, count) in enumerate(self.rows):
                top = row * (BAR_HEIGHT + BAR_GAP)
                painter.setPen(text)
                shown = metrics.elidedText(label, Qt.TextElideMode.ElideMiddle, label_w - 6)
                painter.drawText(
                    QRectF(0, top, label_w - 6, BAR_HEIGHT),
                    int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                    shown,
                )
                length = max(2.0, bar_w * self.bar_fraction(row))
                other_row = self.summary.other > 0 and row == len(self.rows) - 1
                painter.fillRect(QRectF(label_w, top + 2, length, BAR_HEIGHT - 4), rest if other_row else fill)
                painter.drawText(
                    QRectF(label_w + length + 4, top, count_w, BAR_HEIGHT),
                    int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                    f"{count:,}",
                )
        finally:
            painter.end()


class DisclosurePanel(QScrollArea):
    """ "What this batch says": findings first, then a field's bars under its heading."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("disclosure")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        # Text wraps to the panel's width (it never scrolls sideways); bars shrink to fit.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._inner = QWidget()
        self._layout = QVBoxLayout(self._inner)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("<b>What this batch says</b>")
        self.empty = QLabel("Nothing is included: this batch would send no fields.")
        self.empty.setWordWrap(True)
        self.finding_labels: list[QLabel] = []
        self.field_labels: list[QLabel] = []
        self.bars: list[FieldBars] = []
        self._layout.addWidget(self.title)
        self._layout.addWidget(self.empty)
        self._layout.addStretch(1)
        self.setWidget(self._inner)
        self.disclosure: Disclosure | None = None

    def show_disclosure(self, disclosure: Disclosure | None) -> None:
        """Draw ``disclosure`` (None: nothing to say, e.g. a discarded batch)."""
        self.disclosure = disclosure
        for widget in [*self.finding_labels, *self.field_labels, *self.bars]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self.finding_labels, self.field_labels, self.bars = [], [], []
        self.empty.setVisible(disclosure is None or not disclosure.fields)
        if disclosure is None:
            self.empty.setText("There is nothing to summarise for this batch.")
            return
        self.empty.setText("Nothing is included: this batch would send no fields.")
        at = 2  # after the title and the empty line
        palette = self.palette()
        for finding in disclosure.findings:
            label = QLabel(finding.text)
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.PlainText)  # the text quotes values the app sent
            label.setStyleSheet(notice_style(palette, finding_tone(finding.kind), padding="4px"))
            label.setProperty("finding", str(finding.kind))
            self._layout.insertWidget(at, label)
            self.finding_labels.append(label)
            at += 1
        for summary in disclosure.fields:
            heading = QLabel(field_heading(summary))
            heading.setTextFormat(Qt.TextFormat.PlainText)
            heading.setStyleSheet("font-weight: bold; margin-top: 6px;")
            self._layout.insertWidget(at, heading)
            self.field_labels.append(heading)
            bars = FieldBars(summary, disclosure.mode, self._inner)
            self._layout.insertWidget(at + 1, bars)
            self.bars.append(bars)
            at += 2

    def texts(self) -> list[str]:
        """What the panel says, in order (findings, then headings), as a person reads it."""
        return [label.text() for label in [*self.finding_labels, *self.field_labels]]
