"""Lay out the Linux install tree from the PyInstaller bundle, and pack it as a tarball.

    python packaging/linux/stage.py            # after `make package`, which runs it on Linux

writes ``dist/telemetry-tray-<version>-linux-<machine>.tar.gz`` holding one folder,
``telemetry-tray-<version>/``, to be unpacked over a prefix (``~/.local``, ``/usr/local``,
``/opt/telemetry-tray``) with ``--strip-components=1``::

    bin/telemetry-tray                                  -> ../lib/telemetry-tray/telemetry-tray
    lib/telemetry-tray/                                 the bundle
    share/applications/<APP_ID>.desktop                 the menu entry
    share/metainfo/<APP_ID>.metainfo.xml                AppStream, for software centres
    share/icons/hicolor/<n>x<n>/apps/telemetry-tray.png and scalable/apps/telemetry-tray.svg

The autostart entry is not installed: the Settings switch writes the person's own
(docs/packaging.md says why). Standard library only.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tarfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROGRAM = "telemetry-tray"
ICON = "telemetry-tray"


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def app_id() -> str:
    """The id the desktop file and metainfo are named for (the one file named *.metainfo.xml)."""
    (metainfo,) = HERE.glob("*.metainfo.xml")
    return metainfo.name.removesuffix(".metainfo.xml")


def stage(bundle: Path, tree: Path) -> Path:
    """Copy ``bundle`` (dist/telemetry-tray) and the desktop files into ``tree``; return ``tree``."""
    if not (bundle / PROGRAM).is_file():
        raise SystemExit(f"stage: no bundle at {bundle}; run `make package` first")
    if tree.exists():
        shutil.rmtree(tree)
    ident = app_id()
    shutil.copytree(bundle, tree / "lib" / PROGRAM, symlinks=True)
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / PROGRAM).symlink_to(Path("..") / "lib" / PROGRAM / PROGRAM)
    _copy(HERE / f"{ident}.desktop", tree / "share" / "applications" / f"{ident}.desktop")
    _copy(HERE / f"{ident}.metainfo.xml", tree / "share" / "metainfo" / f"{ident}.metainfo.xml")
    icons = ROOT / "resources" / "icons"
    for png in sorted((icons / "hicolor").glob(f"*/apps/{ICON}.png")):
        _copy(png, tree / "share" / "icons" / "hicolor" / png.relative_to(icons / "hicolor"))
    _copy(icons / f"{ICON}.svg", tree / "share" / "icons" / "hicolor" / "scalable" / "apps" / f"{ICON}.svg")
    return tree


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(0o644)


def pack(tree: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    return archive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the bundle is and the tarball goes")
    args = parser.parse_args()
    name = f"{PROGRAM}-{project_version()}"
    tree = stage(args.dist / PROGRAM, args.dist / "linux" / name)
    archive = pack(tree, args.dist / f"{name}-linux-{platform.machine()}.tar.gz")
    print(f"stage: {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
