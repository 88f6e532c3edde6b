"""The Qt-free core of Telemetry Tray: every rule lives here; shells only call it.

The public face is :class:`Broker` (the service), the data it hands out, and the
exception tree in :mod:`tray_app.core.errors`.
"""

from .broker import AppInfo, BatchSummary, BatchView, Broker, IngestResult, Overview, Registration
from .errors import TrayError
from .manifest import Manifest, load_manifest, parse_manifest
from .paths import Locations
from .payload import Payload
from .scope import Scope

__all__ = [
    "AppInfo",
    "BatchSummary",
    "BatchView",
    "Broker",
    "IngestResult",
    "Locations",
    "Manifest",
    "Overview",
    "Payload",
    "Registration",
    "Scope",
    "TrayError",
    "load_manifest",
    "parse_manifest",
]
