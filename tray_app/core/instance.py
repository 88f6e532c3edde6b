"""The running instance as other processes see it: ``endpoint.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .paths import Locations


@dataclass(frozen=True)
class Endpoint:
    url: str
    pid: int
    version: str


def running_endpoint(locations: Locations) -> Endpoint | None:
    """The instance's endpoint if its file exists and its process is alive."""
    try:
        obj = json.loads(locations.endpoint_file.read_text(encoding="utf-8"))
        endpoint = Endpoint(str(obj["url"]), int(obj["pid"]), str(obj["version"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return endpoint if _alive(endpoint.pid) else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
