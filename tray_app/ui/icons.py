"""Tray and application icons, rendered from the SVGs in ``resources/icons``.

The tray glyph is a small rising bar chart held in an inbox tray. Every state has two
SVGs: a colour one (a dark slate glyph with a light halo, so it reads on light and dark
panels alike) and a ``-mask`` one (black shapes with alpha only, for macOS template
images, ``QIcon.setIsMask(True)``). The states:

* quiet: the glyph alone;
* waiting: the glyph with a blue badge; with a pending count the badge becomes a pill
  holding the number (1-99, then "99+"), painted at run time over the rendered SVG;
* paused: the glyph with a grey pause badge;
* error: the glyph with a red-orange warning triangle.

Icons are rendered as pixmaps at every tray size and its double, so they stay crisp at
any scale factor; each (state, count, mask) is rendered once and cached. Rendering needs a
``QGuiApplication``. A missing or broken SVG never raises: a drawn placeholder stands in
and a warning is logged.
"""

from __future__ import annotations

import enum
import logging
import sys
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QIcon,
    QImage,
    QPainter,
    QPainterPath,
    QPixmap,
)
from PySide6.QtSvg import QSvgRenderer

log = logging.getLogger(__name__)

#: Logical sizes the tray icon is rendered at; each is also rendered at twice the size.
TRAY_SIZES: tuple[int, ...] = (16, 22, 24, 32, 48, 64)
#: Sizes of the application icon (the hicolor sizes).
APP_SIZES: tuple[int, ...] = (16, 22, 24, 32, 48, 64, 128, 256)
APP_ICON_NAME = "telemetry-tray"

ACCENT = QColor("#1A73E8")  # the waiting badge, as in tray-waiting.svg
HALO = QColor("#FFFFFF")
BADGE_TEXT = QColor("#FFFFFF")
MAX_COUNT = 99


class TrayState(enum.Enum):
    QUIET = "quiet"
    WAITING = "waiting"
    PAUSED = "paused"
    ERROR = "error"


def icons_dir() -> Path:
    """The folder holding the icon files: in a PyInstaller bundle, or at the repo root."""
    candidates: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if isinstance(bundle, str):
        candidates.append(Path(bundle) / "resources" / "icons")
    candidates.append(Path(__file__).resolve().parents[2] / "resources" / "icons")
    for folder in candidates:
        if folder.is_dir():
            return folder
    return candidates[-1]


def icon_path(name: str) -> Path:
    """``resources/icons/<name>.svg``."""
    return icons_dir() / f"{name}.svg"


def svg_name(state: TrayState, *, mask: bool = False) -> str:
    """The SVG's name (without ``.svg``) for a tray state."""
    return f"tray-{state.value}-mask" if mask else f"tray-{state.value}"


def badge_text(count: int) -> str:
    """What the waiting badge shows: nothing for no count, 1-99, then ``99+``."""
    if count <= 0:
        return ""
    return str(count) if count <= MAX_COUNT else f"{MAX_COUNT}+"


def tray_icon(state: TrayState, count: int = 0, *, mask: bool = False) -> QIcon:
    """The tray icon for ``state``; for WAITING with ``count > 0``, with the count in its badge.

    ``mask=True`` gives the monochrome template variant (for macOS), already marked as a
    mask. The icon holds pixmaps at every size of :data:`TRAY_SIZES` and their doubles.
    """
    text = badge_text(count) if state is TrayState.WAITING else ""
    key = (state, text, mask)
    icon = _tray_cache.get(key)
    if icon is None:
        icon = QIcon()
        for size in _pixel_sizes(TRAY_SIZES):
            icon.addPixmap(QPixmap.fromImage(_tray_image(state, text, mask, size)))
        icon.setIsMask(mask)
        _tray_cache[key] = icon
    return icon


def tray_image(state: TrayState, count: int = 0, *, mask: bool = False, size: int = 32) -> QImage:
    """One rendering of the tray icon, ``size`` pixels square (for previews and tests)."""
    text = badge_text(count) if state is TrayState.WAITING else ""
    return _tray_image(state, text, mask, size)


def app_icon() -> QIcon:
    """The colourful application icon (windows, the .desktop file), at every hicolor size."""
    global _app_icon
    if _app_icon is None:
        icon = QIcon()
        for size in APP_SIZES:
            icon.addPixmap(QPixmap.fromImage(render_svg(APP_ICON_NAME, size)))
        _app_icon = icon
    return _app_icon


def clear_cache() -> None:
    """Forget every rendered icon (after the icon files changed, and in tests)."""
    global _app_icon
    _tray_cache.clear()
    _app_icon = None
    _warned.clear()


def render_svg(name: str, size: int) -> QImage:
    """``resources/icons/<name>.svg`` rendered ``size`` pixels square on transparency.

    A missing or invalid file gives a drawn placeholder and a logged warning, never an error.
    """
    image = _blank(size)
    path = icon_path(name)
    renderer = QSvgRenderer(str(path)) if path.is_file() else None
    if renderer is None or not renderer.isValid():
        if name not in _warned:
            _warned.add(name)
            why = "is missing" if renderer is None else "is not a valid SVG"
            log.warning("icon %s %s; drawing a placeholder", path, why)
        _draw_placeholder(image, mask=name.endswith("-mask"))
        return image
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


# --------------------------------------------------------------------------- internals

_tray_cache: dict[tuple[TrayState, str, bool], QIcon] = {}
_app_icon: QIcon | None = None
_warned: set[str] = set()


def _pixel_sizes(sizes: tuple[int, ...]) -> list[int]:
    return sorted({s for size in sizes for s in (size, 2 * size)})


def _blank(size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    return image


def _tray_image(state: TrayState, text: str, mask: bool, size: int) -> QImage:
    if not text:
        return render_svg(svg_name(state, mask=mask), size)
    # The count pill replaces the waiting SVG's dot: it is drawn on the bare glyph, so no
    # edge of the dot can peek out from under a pill that is smaller at some size.
    image = render_svg(svg_name(TrayState.QUIET, mask=mask), size)
    _draw_count_badge(image, text, mask=mask)
    return image


def _draw_placeholder(image: QImage, *, mask: bool) -> None:
    """A plain rounded square with a bar in it: clearly an icon, clearly not the real one."""
    size = image.width()
    unit = size / 32
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    outer = QRectF(2 * unit, 2 * unit, 28 * unit, 28 * unit)
    inner = outer.adjusted(3 * unit, 3 * unit, -3 * unit, -3 * unit)
    path = QPainterPath()
    path.addRoundedRect(outer, 5 * unit, 5 * unit)
    hole = QPainterPath()
    hole.addRoundedRect(inner, 3 * unit, 3 * unit)
    bar = QPainterPath()
    bar.addRect(QRectF(13 * unit, 9 * unit, 6 * unit, 14 * unit))
    if mask:
        painter.fillPath(path.subtracted(hole).united(bar), QColor(0, 0, 0))
    else:
        painter.fillPath(path, QColor("#22303C"))
        painter.fillPath(hole, HALO)
        painter.fillPath(bar, QColor("#22303C"))
    painter.end()


# A 3x5 pixel font for the badge at small sizes, where any real font would blur.
_PIXEL_FONT: dict[str, tuple[str, ...]] = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "011", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    "+": ("000", "010", "111", "010", "000"),
}


def _pixel_text(text: str, cell: int) -> tuple[QPainterPath, float, float]:
    """The text as a path of square cells, origin top-left; with its width and height."""
    path = QPainterPath()
    x = 0
    for char in text:
        rows = _PIXEL_FONT[char]
        for row, bits in enumerate(rows):
            for col, bit in enumerate(bits):
                if bit == "1":
                    path.addRect(QRectF((x + col) * cell, row * cell, cell, cell))
        x += len(rows[0]) + 1
    width = (x - 1) * cell
    return path.simplified(), float(width), float(5 * cell)


def _font_text(text: str, pixel_size: int) -> tuple[QPainterPath, float, float]:
    """The text in the bold UI font, as a path whose ink box starts at the origin."""
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
    font.setBold(True)
    font.setPixelSize(pixel_size)
    font.setStyleStrategy(QFont.StyleStrategy.PreferAntialias)
    path = QPainterPath()
    path.addText(0, 0, font, text)
    ink = path.boundingRect()
    # Centre on the digits' real ink height (the cap height), not the font's line box.
    digits = QFontMetricsF(font).tightBoundingRect("0123456789")
    path.translate(-ink.left(), -digits.top())
    return path, ink.width(), digits.height()


def _has_fonts() -> bool:
    return bool(QFontDatabase.families())


def _draw_count_badge(image: QImage, text: str, *, mask: bool) -> None:
    """Paint a pill holding ``text`` at the bottom right, over the SVG's badge dot."""
    size = image.width()
    unit = size / 32
    gap = max(1.0, round(2 * unit))  # the halo (colour) or knock-out (mask) around the pill

    if size >= 32 and _has_fonts():
        height = float(round(size * 0.47))
        pad_x = round(height * 0.28)
        pixel_size = round(height * 0.62)
        path, text_w, text_h = _font_text(text, pixel_size)
        while text_w + 2 * pad_x > size and pixel_size > 6:
            pixel_size -= 1
            path, text_w, text_h = _font_text(text, pixel_size)
        width = max(height, text_w + 2 * pad_x)
        text_x = (width - text_w) / 2
        text_y = (height - text_h) / 2
    else:
        cell = max(1, size // 16)
        path, text_w, text_h = _pixel_text(text, cell)
        height = max(text_h + 2 * cell, float(round(size * 0.42)))
        if (height - text_h) % 2:  # keep the digits on whole pixels
            height -= 1
        width = max(height, text_w + 2 * cell)
        if (width - text_w) % 2:
            width += 1
        text_x = (width - text_w) // 2
        text_y = (height - text_h) // 2

    pill = QRectF(size - width, size - height, width, height)
    radius = height / 2
    body = QPainterPath()
    body.addRoundedRect(pill, radius, radius)
    rim = QPainterPath()
    rim.addRoundedRect(pill.adjusted(-gap, -gap, gap, gap), radius + gap, radius + gap)
    path.translate(pill.left() + text_x, pill.top() + text_y)

    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if mask:
        black = QColor(0, 0, 0)
        # Square off the knock-out's right side too, so no sliver of the glyph is left
        # between the pill's rounded end and the icon's edge.
        corner = QPainterPath()
        corner.addRect(QRectF(pill.center().x(), pill.top() - gap, size, size))
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        painter.fillPath(rim.united(corner), black)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
        painter.fillPath(body, black)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationOut)
        painter.fillPath(path, black)
    else:
        painter.fillPath(rim, HALO)
        painter.fillPath(body, ACCENT)
        painter.fillPath(path, BADGE_TEXT)
    painter.end()
