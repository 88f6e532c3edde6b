"""The environment that points an app's own SDK at the tray (``telemetry-tray connect APP``).

Pure: from the app's manifest, where the tray's receiver listens and the app's token, the
variables a stock SDK reads, in order, and their spelling as shell lines. Only
OpenTelemetry today; a Sentry DSN (``http://TOKEN@127.0.0.1:PORT/1``) is a branch of
:func:`sdk_kind` and :func:`sdk_environment` to come.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from ..errors import InputError
from .manifest import Manifest

__all__ = ["OTLP_PROTOCOL", "SdkEnvironment", "SdkKind", "sdk_environment", "sdk_kind"]

# The encoding the receiver and every stock exporter share (OTLP/JSON exporters are beta).
OTLP_PROTOCOL = "http/protobuf"


class SdkKind(StrEnum):
    """Which SDK an app points at the tray, by the manifest's tables."""

    OTLP = "otlp"  # an OpenTelemetry SDK: the manifest has [otlp] service_names


@dataclass(frozen=True)
class SdkEnvironment:
    """Environment variables, in the order they are printed."""

    kind: SdkKind
    # They hold the app's token: a repr (a log line, a traceback) never shows them.
    variables: tuple[tuple[str, str], ...] = field(repr=False)

    def to_obj(self) -> dict[str, str]:
        """The shape of ``connect --json``: name → value, unquoted."""
        return dict(self.variables)

    def lines(self) -> tuple[str, ...]:
        """``NAME=VALUE`` lines a POSIX shell can source (``set -a; . ./lines``), values
        quoted only where a shell would read them otherwise."""
        return tuple(f"{name}={shlex.quote(value)}" for name, value in self.variables)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines())


def sdk_kind(manifest: Manifest) -> SdkKind:
    """The SDK ``manifest``'s app can point at the tray; :class:`InputError` when none."""
    if manifest.otlp_service_names:
        return SdkKind.OTLP
    raise InputError(
        f"{manifest.name}'s manifest has no [otlp] table, so there is nothing to connect: add "
        '[otlp] service_names = ["..."] (the service.name its OpenTelemetry SDK sends) and register it again.',
        title="Nothing to connect",
    )


def sdk_environment(manifest: Manifest, *, otlp_url: str, token: str) -> SdkEnvironment:
    """What points ``manifest``'s app at the receiver at ``otlp_url`` with ``token``.

    The receiver refuses traces and cumulative sums (``otlp_wire.point_refusal``), so the
    lines turn the trace exporter off and ask for delta temporality, and the service name is
    the first one the manifest lets the token send under."""
    kind = sdk_kind(manifest)
    assert kind == SdkKind.OTLP
    return SdkEnvironment(
        kind,
        (
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url),
            # A W3C-baggage-style list whose values are percent-decoded: the space is %20.
            ("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{quote(token, safe='')}"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", OTLP_PROTOCOL),
            ("OTEL_SERVICE_NAME", manifest.otlp_service_names[0]),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
        ),
    )
