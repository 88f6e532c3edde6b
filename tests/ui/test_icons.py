"""The tray and application icons: real Qt rendering (offscreen), real SVG files."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import PySide6
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from tray_app.ui import icons
from tray_app.ui.icons import (
    APP_ICON_NAME,
    APP_SIZES,
    TRAY_SIZES,
    TrayState,
    app_icon,
    badge_text,
    icon_path,
    render_svg,
    svg_name,
    tray_icon,
    tray_image,
)

ROOT = Path(__file__).resolve().parents[2]
ICON_DIR = ROOT / "resources" / "icons"
SIZES = (16, 22, 32, 64)
STATES = list(TrayState)
TRAY_SVGS = [svg_name(state, mask=mask) for state in STATES for mask in (False, True)]

pytestmark = pytest.mark.usefixtures("qapp")


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    icons.clear_cache()
    yield
    icons.clear_cache()


# --------------------------------------------------------------------------- helpers


def pixels(image: QImage) -> Iterator[QColor]:
    for y in range(image.height()):
        for x in range(image.width()):
            yield image.pixelColor(x, y)


def opaque_count(image: QImage, threshold: int = 128) -> int:
    return sum(1 for c in pixels(image) if c.alpha() >= threshold)


def over(image: QImage, background: QColor) -> QImage:
    """The icon as it looks on a panel of ``background``."""
    out = QImage(image.size(), QImage.Format.Format_ARGB32)
    out.fill(background)
    painter = QPainter(out)
    painter.drawImage(0, 0, image)
    painter.end()
    return out


def luminance(c: QColor) -> float:
    return 0.2126 * c.red() + 0.7152 * c.green() + 0.0722 * c.blue()


def differing(a: QImage, b: QImage, tolerance: int = 48) -> int:
    """How many pixels differ by more than ``tolerance`` in some channel."""
    assert a.size() == b.size()
    count = 0
    for y in range(a.height()):
        for x in range(a.width()):
            p, q = a.pixelColor(x, y), b.pixelColor(x, y)
            if (
                max(
                    abs(p.red() - q.red()),
                    abs(p.green() - q.green()),
                    abs(p.blue() - q.blue()),
                    abs(p.alpha() - q.alpha()),
                )
                > tolerance
            ):
                count += 1
    return count


def as_argb(image: QImage) -> QImage:
    return image.convertToFormat(QImage.Format.Format_ARGB32)


# --------------------------------------------------------------------------- the binding


def test_pyside_does_not_drop_references_to_none() -> None:
    """Every icon render makes hundreds of calls to Qt methods that return nothing.

    PySide6 6.12.0 on Python 3.11 drops a reference to None on each such call, so a Qt
    process aborts ("Fatal Python error: none_dealloc") after a few thousand of them. From
    Python 3.12 None is immortal and its count never moves; 6.11.3 on 3.11 is fine.
    """
    colour = QColor()
    before = sys.getrefcount(None)
    for _ in range(200):
        colour.setRed(1)
    lost = before - sys.getrefcount(None)
    assert lost <= 0, (
        f"{PySide6.__version__} on Python {sys.version.split()[0]} lost {lost} references to None "
        "in 200 calls of a void method: this combination crashes; use another PySide6 or Python >= 3.12"
    )


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", [*TRAY_SVGS, APP_ICON_NAME])
def test_every_icon_svg_exists_and_parses(name: str) -> None:
    path = icon_path(name)
    assert path == ICON_DIR / f"{name}.svg"
    assert path.is_file()
    renderer = QSvgRenderer(str(path))
    assert renderer.isValid()
    size = renderer.defaultSize()
    assert size.width() == size.height() > 0


def test_no_stray_svgs() -> None:
    """Every SVG in resources/icons is one the code knows (so none is left unused)."""
    assert {p.stem for p in ICON_DIR.glob("*.svg")} == {*TRAY_SVGS, APP_ICON_NAME}


def test_icon_path_prefers_a_pyinstaller_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "resources" / "icons").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert icon_path("tray-quiet") == tmp_path / "resources" / "icons" / "tray-quiet.svg"


def test_icon_path_ignores_a_bundle_without_icons(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert icon_path("tray-quiet") == ICON_DIR / "tray-quiet.svg"


@pytest.mark.parametrize("size", APP_SIZES)
def test_hicolor_pngs_exist_at_every_size(size: int) -> None:
    path = ICON_DIR / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ICON_NAME}.png"
    image = QImage(str(path))
    assert not image.isNull(), f"missing or unreadable: {path}"
    assert (image.width(), image.height()) == (size, size)
    assert image.hasAlphaChannel()
    # Rounded corners are transparent; the body is opaque.
    assert image.pixelColor(0, 0).alpha() == 0
    assert image.pixelColor(size // 2, size // 2).alpha() == 255
    # And they are up to date with the SVG (run tools/render_icons.py after editing it).
    fresh = as_argb(render_svg(APP_ICON_NAME, size))
    assert differing(as_argb(image), fresh, tolerance=16) <= size * size // 100


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("mask", [False, True], ids=["colour", "mask"])
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.value)
@pytest.mark.parametrize("size", SIZES)
def test_every_state_renders_at_every_size(state: TrayState, mask: bool, size: int) -> None:
    image = tray_image(state, 3, mask=mask, size=size)
    assert (image.width(), image.height()) == (size, size)
    # A real glyph: a good part of the square is covered, and not all of it.
    covered = opaque_count(image)
    assert size * size * 0.25 < covered < size * size * 0.95
    # Transparent background: the corners of the square are empty.
    assert image.pixelColor(0, 0).alpha() == 0


@pytest.mark.parametrize("mask", [False, True], ids=["colour", "mask"])
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.value)
def test_tray_icon_holds_every_size_and_its_double(state: TrayState, mask: bool) -> None:
    icon = tray_icon(state, 5, mask=mask)
    assert not icon.isNull()
    assert icon.isMask() is mask
    available = {s.width() for s in icon.availableSizes()}
    assert available >= set(TRAY_SIZES) | {2 * s for s in TRAY_SIZES}
    for size in TRAY_SIZES:
        pixmap = icon.pixmap(size, size)
        assert pixmap.width() == size
        assert opaque_count(pixmap.toImage()) > 0


@pytest.mark.parametrize("mask", [False, True], ids=["colour", "mask"])
@pytest.mark.parametrize("size", SIZES)
def test_the_count_is_drawn_in_the_badge(size: int, mask: bool) -> None:
    seven = tray_image(TrayState.WAITING, 7, mask=mask, size=size)
    forty_two = tray_image(TrayState.WAITING, 42, mask=mask, size=size)
    dot = tray_image(TrayState.WAITING, 0, mask=mask, size=size)
    assert differing(seven, forty_two) >= 3
    assert differing(dot, seven) >= 3
    # Above 99 every count looks the same: "99+".
    assert (
        differing(
            tray_image(TrayState.WAITING, 100, mask=mask, size=size),
            tray_image(TrayState.WAITING, 12345, mask=mask, size=size),
        )
        == 0
    )
    assert (
        differing(
            tray_image(TrayState.WAITING, 99, mask=mask, size=size),
            tray_image(TrayState.WAITING, 100, mask=mask, size=size),
        )
        >= 3
    )


def test_badge_text() -> None:
    assert [badge_text(n) for n in (-2, 0, 1, 9, 10, 99, 100, 5000)] == ["", "", "1", "9", "10", "99", "99+", "99+"]


@pytest.mark.parametrize("state", [TrayState.QUIET, TrayState.PAUSED, TrayState.ERROR], ids=lambda s: s.value)
def test_only_the_waiting_state_shows_a_count(state: TrayState) -> None:
    assert differing(tray_image(state, 42), tray_image(state, 0)) == 0
    assert tray_icon(state, 42) is tray_icon(state)


def test_icons_are_cached_by_state_count_and_mask() -> None:
    assert tray_icon(TrayState.WAITING, 5) is tray_icon(TrayState.WAITING, 5)
    assert tray_icon(TrayState.WAITING, 150) is tray_icon(TrayState.WAITING, 999)  # both "99+"
    assert tray_icon(TrayState.WAITING, 5) is not tray_icon(TrayState.WAITING, 6)
    assert tray_icon(TrayState.WAITING, 5) is not tray_icon(TrayState.WAITING, 5, mask=True)
    assert app_icon() is app_icon()


@pytest.mark.parametrize("count", [0, 42, 250])
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.value)
@pytest.mark.parametrize("size", [*SIZES, 128])
def test_masks_are_black_with_alpha_only(state: TrayState, count: int, size: int) -> None:
    image = tray_image(state, count, mask=True, size=size)
    seen = [c for c in pixels(image) if c.alpha() > 0]
    assert seen
    assert all(c.red() == c.green() == c.blue() == 0 for c in seen)
    # Knock-outs, not grey: the mask has cut-outs between its parts (fully transparent
    # pixels inside the glyph's bounds) rather than lighter shapes.
    assert any(c.alpha() == 255 for c in seen)


@pytest.mark.parametrize("size", SIZES)
def test_states_differ_visibly(size: int) -> None:
    images = {state: tray_image(state, size=size) for state in STATES}
    # The error mark is clearly there: many pixels change, and some of them are warm.
    quiet, error = images[TrayState.QUIET], images[TrayState.ERROR]
    assert differing(quiet, error, tolerance=64) >= size * size // 12
    warm = [c for c in pixels(error) if c.alpha() > 200 and c.red() > 160 and c.blue() < 90]
    assert len(warm) >= size * size // 40
    for a in STATES:
        for b in STATES:
            if a is not b:
                assert differing(images[a], images[b]) >= size * size // 40, (a, b)


@pytest.mark.parametrize("count", [0, 42])
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.value)
@pytest.mark.parametrize("size", SIZES)
def test_colour_icons_read_on_light_and_dark_panels(state: TrayState, count: int, size: int) -> None:
    """A dark glyph with a light halo: plenty of it stands out from white and from black."""
    image = tray_image(state, count, size=size)
    need = size * size // 10
    on_white = over(image, QColor("white"))
    on_black = over(image, QColor("black"))
    stand_out_on_white = sum(1 for c in pixels(on_white) if 255 - luminance(c) > 120)
    stand_out_on_black = sum(1 for c in pixels(on_black) if luminance(c) > 120)
    assert stand_out_on_white >= need
    assert stand_out_on_black >= need
    # Mid-grey panels too: both dark and light ink are present.
    dark = sum(1 for c in pixels(image) if c.alpha() > 200 and luminance(c) < 80)
    light = sum(1 for c in pixels(image) if c.alpha() > 200 and luminance(c) > 200)
    assert dark >= need
    assert light >= size * size // 20


def test_app_icon_is_colourful_at_every_hicolor_size() -> None:
    icon = app_icon()
    assert {s.width() for s in icon.availableSizes()} >= set(APP_SIZES)
    image = icon.pixmap(64, 64).toImage()
    hues = {c.hsvHue() // 30 for c in pixels(image) if c.alpha() == 255 and c.hsvSaturation() > 100}
    assert len(hues) >= 3  # the blue-teal ground and the coloured bars


# --------------------------------------------------------------------------- failures


def test_a_missing_svg_gives_a_placeholder_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(icons, "icons_dir", lambda: tmp_path)
    with caplog.at_level(logging.WARNING, logger=icons.__name__):
        icon = tray_icon(TrayState.QUIET)
        mask_icon = tray_icon(TrayState.WAITING, 3, mask=True)
        app = app_icon()
    for each in (icon, mask_icon, app):
        assert not each.isNull()
        assert opaque_count(each.pixmap(32, 32).toImage()) > 32 * 32 // 8
    assert all(c.red() == c.green() == c.blue() == 0 for c in pixels(mask_icon.pixmap(32, 32).toImage()) if c.alpha())
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "tray-quiet.svg is missing" in messages
    assert "telemetry-tray.svg is missing" in messages
    # One warning per file, not one per size.
    assert sum("tray-quiet.svg" in r.getMessage() for r in caplog.records) == 1


def test_a_broken_svg_gives_a_placeholder_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tray-error.svg").write_text("<svg this is not")
    monkeypatch.setattr(icons, "icons_dir", lambda: tmp_path)
    with caplog.at_level(logging.WARNING, logger=icons.__name__):
        image = tray_image(TrayState.ERROR, size=32)
    assert opaque_count(image) > 32 * 32 // 8
    assert any("is not a valid SVG" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- the tool


def _render_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_icons", ROOT / "tools" / "render_icons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preview_sheet(tmp_path: Path) -> None:
    """The preview tool runs; its sheet shows the icons on a light and a dark panel."""
    sheet_path = tmp_path / "preview.png"
    assert _render_tool().main(["--no-hicolor", "--preview", str(sheet_path)]) == 0
    sheet = QImage(str(sheet_path))
    assert not sheet.isNull()
    left = sheet.pixelColor(1, 1)
    right = sheet.pixelColor(sheet.width() - 2, 1)
    assert luminance(left) > 200 and luminance(right) < 60
    assert sheet.pixelColor(sheet.width() // 4, sheet.height() // 2) != Qt.GlobalColor.transparent
