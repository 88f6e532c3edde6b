"""How the windows look: colours from the palette, a focus outline that shows, and window
sizes that fit the screen a window opens on.

* Colours: nothing is hard-coded. Each tone (information, success, warning, error, neutral)
  is a hue whose lightness is chosen against the palette's own background until its contrast
  is at least 4.5:1 (WCAG AA for text), and its tint (a banner's background) is the
  palette's window colour mixed with it, so a dark palette gets light text on dark tints.
* The focus outline: Fusion's is a faint line. :func:`install_focus_ring` draws a 2 px ring
  in the palette's highlight colour around the widget with the keyboard focus (not after a
  mouse click, like a browser's ``:focus-visible``), above every other child of its window.
* Sizes: :func:`fit_to_screen` sizes a window for the available geometry of the screen it
  opens on (under the cursor: where the tray icon was clicked), keeping room for the window
  manager's frame, and centres it there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QCursor, QGuiApplication, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QApplication, QWidget
from shiboken6 import Shiboken

from .local_time import local, window_words

__all__ = [
    "FocusRing",
    "Tone",
    "banner_style",
    "batch_labels",
    "contrast",
    "fit_to_screen",
    "install_focus_ring",
    "notice_style",
    "on_colour",
    "tint",
    "tone_colour",
]

# Room for the window manager's title bar and borders, which a window does not know before
# it is shown: its frame must fit the screen, not only its contents.
FRAME_ALLOWANCE = QSize(16, 48)
MIN_TEXT_CONTRAST = 4.5  # WCAG AA, normal text
MIN_RING_CONTRAST = 3.0  # WCAG 2.2 "focus appearance": the ring against what is around it


class Tone(StrEnum):
    INFO = "info"
    GOOD = "good"
    WARNING = "warning"
    ERROR = "error"
    NEUTRAL = "neutral"


_HUES = {Tone.GOOD: 130, Tone.WARNING: 28, Tone.ERROR: 356}


def _luminance(colour: QColor) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def _readable(hue: int, saturation: float, against: QColor, dark: bool) -> QColor:
    """The colour of ``hue`` nearest the middle lightness that reads on ``against``."""
    lightness = 0.62 if dark else 0.38
    step = 0.03 if dark else -0.03
    colour = QColor.fromHslF(hue / 360, saturation, lightness)
    while contrast(colour, against) < MIN_TEXT_CONTRAST and 0.0 < lightness + step < 1.0:
        lightness += step
        colour = QColor.fromHslF(hue / 360, saturation, lightness)
    return colour


def tone_colour(palette: QPalette, tone: Tone) -> QColor:
    """Text in ``tone`` that reads on the palette's base and window colours."""
    dark = is_dark(palette)
    # Against the harder of the two backgrounds a text may sit on.
    base, window = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Window)
    against = base if abs(_luminance(base) - 0.18) < abs(_luminance(window) - 0.18) else window
    if tone == Tone.NEUTRAL:
        # Between the text and its background: quieter than text, still readable.
        text = palette.color(QPalette.ColorRole.WindowText)
        colour = _mix(text, palette.color(QPalette.ColorRole.Window), 0.35)
        return colour if contrast(colour, against) >= MIN_TEXT_CONTRAST else text
    if tone == Tone.INFO:
        highlight = palette.color(QPalette.ColorRole.Highlight)
        return _readable(int(max(0, highlight.hslHue())), max(0.5, highlight.hslSaturationF()), against, dark)
    return _readable(_HUES[tone], 0.75, against, dark)


def _mix(a: QColor, b: QColor, amount: float) -> QColor:
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * amount,
        a.greenF() + (b.greenF() - a.greenF()) * amount,
        a.blueF() + (b.blueF() - a.blueF()) * amount,
    )


def tint(palette: QPalette, tone: Tone) -> QColor:
    """A background in ``tone`` for text in the palette's window text colour."""
    window = palette.color(QPalette.ColorRole.Window)
    return _mix(window, tone_colour(palette, tone), 0.22 if is_dark(palette) else 0.14)


def on_colour(background: QColor) -> QColor:
    """Black or white, whichever reads better on ``background``."""
    white, black = QColor(255, 255, 255), QColor(0, 0, 0)
    return white if contrast(white, background) >= contrast(black, background) else black


def banner_style(palette: QPalette, tone: Tone, selector: str) -> str:
    """A style sheet for a banner frame (``selector``, e.g. ``#banner``) and its labels."""
    colour, background = tone_colour(palette, tone), tint(palette, tone)
    text = palette.color(QPalette.ColorRole.WindowText)
    if contrast(text, background) < MIN_TEXT_CONTRAST:
        text = on_colour(background)
    return (
        f"{selector} {{ background: {background.name()}; border: 1px solid {colour.name()}; border-radius: 4px; }}"
        f"{selector} QLabel {{ color: {text.name()}; background: transparent; }}"
    )


def notice_style(palette: QPalette, tone: Tone, padding: str = "6px") -> str:
    """A style sheet for one label that stands out (a notice, a warning): a strong
    background in ``tone`` with the text that reads on it."""
    background = tone_colour(palette, tone)
    if tone == Tone.INFO:
        background = palette.color(QPalette.ColorRole.Highlight)
    if is_dark(palette):
        # A light tone on a dark palette: the strong background is its darker shade.
        background = QColor.fromHslF(background.hslHueF(), background.hslSaturationF(), 0.32)
    return f"color: {on_colour(background).name()}; background: {background.name()}; padding: {padding};"


# -- labels that tell batches apart ----------------------------------------------------------


class _Windowed(Protocol):
    @property
    def batch_id(self) -> str: ...
    @property
    def app_id(self) -> str: ...
    @property
    def window_start(self) -> str: ...
    @property
    def window_end(self) -> str: ...
    @property
    def created_at(self) -> str: ...
    @property
    def closed_at(self) -> str | None: ...


def _clock(at: str | None, day: str) -> str:
    if not at:
        return "now"
    try:
        here = local(at)
    except ValueError:
        return at
    return here.strftime("%H:%M") if str(here.date()) == day else here.strftime("%Y-%m-%d %H:%M")


def batch_labels(batches: Sequence[_Windowed]) -> dict[str, str]:
    """A label per batch id: its window in local time (``2026-12-01``), and where an app has
    several batches of one window (a new manifest version or *close now* split it), the
    part of the window each holds (``2026-12-01, 09:12–11:40``), numbered if even that is
    the same."""
    labels = {b.batch_id: window_words(b.window_start, b.window_end) for b in batches}
    groups: dict[tuple[str, str], list[_Windowed]] = {}
    for batch in batches:
        groups.setdefault((batch.app_id, labels[batch.batch_id]), []).append(batch)
    for (_app, label), same in groups.items():
        if len(same) < 2:
            continue
        day = label[:10]
        for batch in same:
            labels[batch.batch_id] = f"{label}, {_clock(batch.created_at, day)}–{_clock(batch.closed_at, day)}"
        counts = Counter(labels[b.batch_id] for b in same)
        numbered: Counter[str] = Counter()
        for batch in same:
            text = labels[batch.batch_id]
            if counts[text] > 1:
                numbered[text] += 1
                labels[batch.batch_id] = f"{text} (#{numbered[text]})"
    return labels


# -- sizes ----------------------------------------------------------------------------


def screen_area(window: QWidget) -> QRect:
    """The available geometry of the screen ``window`` opens on: the one under the cursor
    (where the tray icon was clicked), else the window's own, else the primary one."""
    screen = QGuiApplication.screenAt(QCursor.pos()) or window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(window: QWidget, width: int, height: int) -> QSize:
    """Size ``window`` to ``width`` × ``height``, or as much of it as its screen's available
    geometry allows with room for the frame, and centre it on that screen. Returns the size."""
    area = screen_area(window)
    room = area.size() - FRAME_ALLOWANCE
    size = QSize(min(width, room.width()), min(height, room.height()))
    # Never below what the layout needs, unless the screen is smaller still.
    least = window.minimumSizeHint()
    size = size.expandedTo(QSize(min(least.width(), room.width()), min(least.height(), room.height())))
    window.resize(size)
    top_left = area.center() - QPoint(size.width() // 2, (size.height() + FRAME_ALLOWANCE.height() // 2) // 2)
    window.move(max(area.left(), top_left.x()), max(area.top(), top_left.y()))
    return size


# -- the focus outline ---------------------------------------------------------------------


class FocusRing(QWidget):
    """A 2 px outline in the highlight colour around the focused widget of one window."""

    WIDTH = 2
    GAP = 1  # between the widget and the ring

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setObjectName("focusRing")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.target: QWidget | None = None
        self._watched: list[QWidget] = []
        self.hide()

    def follow(self, widget: QWidget | None) -> None:
        for watched in self._watched:
            if Shiboken.isValid(watched):
                watched.removeEventFilter(self)
        self._watched = []
        self.target = widget
        if widget is not None:
            ancestor: QWidget | None = widget
            while ancestor is not None and ancestor is not self.parentWidget():
                ancestor.installEventFilter(self)
                self._watched.append(ancestor)
                ancestor = ancestor.parentWidget()
        self.place()

    def place(self) -> None:
        target, window = self.target, self.parentWidget()
        if target is None or window is None or not Shiboken.isValid(target) or not target.isVisible():
            self.hide()
            return
        visible = target.visibleRegion().boundingRect()
        if visible.isEmpty():
            self.hide()
            return
        outset = self.WIDTH + self.GAP
        rect = QRect(target.mapTo(window, visible.topLeft()), visible.size()).adjusted(-outset, -outset, outset, outset)
        self.setGeometry(rect.intersected(window.rect()))
        self.show()
        self.raise_()
        self.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.Move, QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.Hide):
            self.place()
        return False

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(ring_colour(self.palette()), self.WIDTH)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        inset = self.WIDTH / 2
        painter.drawRoundedRect(self.rect().toRectF().adjusted(inset, inset, -inset, -inset), 3, 3)
        painter.end()


def ring_colour(palette: QPalette) -> QColor:
    """The highlight colour, made to stand out from the window background (3:1)."""
    colour = palette.color(QPalette.ColorRole.Highlight)
    window = palette.color(QPalette.ColorRole.Window)
    step = 0.04 if is_dark(palette) else -0.04
    lightness = colour.lightnessF()
    while contrast(colour, window) < MIN_RING_CONTRAST and 0.0 < lightness + step < 1.0:
        lightness += step
        colour = QColor.fromHslF(max(0.0, colour.hslHueF()), colour.hslSaturationF(), lightness)
    return colour


class _Rings(QObject):
    """Moves each window's ring to the widget that took the focus."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._rings: list[FocusRing] = []
        app.focusChanged.connect(self._changed)

    def _changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        self._rings = [ring for ring in self._rings if Shiboken.isValid(ring)]  # gone with their windows
        for other in self._rings:
            if new is None or other.parentWidget() is not new.window():
                other.follow(None)
        if new is None:
            return
        window = new.window()
        if window is new or window.windowType() == Qt.WindowType.Popup or isinstance(new, FocusRing):
            return
        found = [r for r in self._rings if r.parentWidget() is window]
        ring = found[0] if found else FocusRing(window)
        if not found:
            self._rings.append(ring)
        # A click shows where the focus went by itself; the ring is for the keyboard (and
        # for a window that opens with the focus somewhere).
        ring.follow(None if QGuiApplication.mouseButtons() != Qt.MouseButton.NoButton else new)


def install_focus_ring() -> None:
    """Draw the focus outline in every window of this application (once; later calls do nothing)."""
    app = QApplication.instance()
    if not isinstance(app, QApplication) or app.findChild(_Rings) is not None:
        return
    _Rings(app)
