"""Render the application icon's hicolor PNGs from resources/icons/telemetry-tray.svg.

    python tools/render_icons.py                 # writes resources/icons/hicolor/<n>x<n>/apps/
    python tools/render_icons.py --preview a.png # also a preview sheet of every tray state

Run it after changing the SVG and commit the PNGs. The preview shows each icon at its real
tray sizes (and zoomed, with --zoom) on a light and a dark panel; the mask variants are
tinted as macOS tints template images (black on light, white on dark).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter

from tray_app.ui.icons import (
    APP_ICON_NAME,
    APP_SIZES,
    TRAY_SIZES,
    TrayState,
    icons_dir,
    render_svg,
    tray_image,
)

PANELS = (QColor("#F3F3F3"), QColor("#1F1F1F"))


def hicolor_path(size: int) -> Path:
    return icons_dir() / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ICON_NAME}.png"


def render_hicolor() -> list[Path]:
    written = []
    for size in APP_SIZES:
        path = hicolor_path(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not render_svg(APP_ICON_NAME, size).save(str(path)):
            raise SystemExit(f"could not write {path}")
        written.append(path)
    return written


def _tinted(image: QImage, colour: QColor) -> QImage:
    """A template image as macOS shows it: its alpha, in the panel's text colour."""
    out = QImage(image.size(), QImage.Format.Format_ARGB32_Premultiplied)
    out.fill(colour)
    painter = QPainter(out)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
    painter.drawImage(0, 0, image)
    painter.end()
    return out


def preview(path: Path, zoom: int, sizes: tuple[int, ...] = TRAY_SIZES) -> None:
    rows: list[tuple[TrayState | None, int, bool]] = [
        (TrayState.QUIET, 0, False),
        (TrayState.WAITING, 0, False),
        (TrayState.WAITING, 7, False),
        (TrayState.WAITING, 42, False),
        (TrayState.WAITING, 250, False),
        (TrayState.PAUSED, 0, False),
        (TrayState.ERROR, 0, False),
        (TrayState.QUIET, 0, True),
        (TrayState.WAITING, 42, True),
        (TrayState.PAUSED, 0, True),
        (TrayState.ERROR, 0, True),
        (None, 0, False),  # the application icon
    ]
    margin = 6
    panel_w = sum(s + margin for s in sizes) * zoom + margin
    row_h = (max(sizes) + margin) * zoom
    sheet = QImage(panel_w * len(PANELS), row_h * len(rows) + margin, QImage.Format.Format_ARGB32)
    painter = QPainter(sheet)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
    for p, panel in enumerate(PANELS):
        painter.fillRect(p * panel_w, 0, panel_w, sheet.height(), panel)
        ink = QColor("#000000") if panel.lightness() > 128 else QColor("#FFFFFF")
        for r, (state, count, mask) in enumerate(rows):
            x = p * panel_w + margin
            for size in sizes:
                if state is None:
                    image = render_svg(APP_ICON_NAME, size)
                else:
                    image = tray_image(state, count, mask=mask, size=size)
                    if mask:
                        image = _tinted(image, ink)
                target = QRectF(x, r * row_h + margin, size * zoom, size * zoom)
                painter.drawImage(target, image)
                x += (size + margin) * zoom
    painter.end()
    sheet.save(str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preview", type=Path, help="also write a preview sheet of every icon here")
    parser.add_argument("--zoom", type=int, default=1, help="scale the preview (nearest neighbour)")
    parser.add_argument(
        "--sizes",
        type=lambda v: tuple(int(n) for n in v.split(",")),
        default=TRAY_SIZES,
        help="comma-separated sizes for the preview (default: the tray sizes)",
    )
    parser.add_argument("--no-hicolor", action="store_true", help="do not write the hicolor PNGs")
    args = parser.parse_args(argv)
    app = QGuiApplication.instance() or QGuiApplication([])
    if not args.no_hicolor:
        for path in render_hicolor():
            print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    if args.preview:
        preview(args.preview, max(1, args.zoom), args.sizes)
        print(args.preview)
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
