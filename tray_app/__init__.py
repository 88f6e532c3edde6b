"""Telemetry Tray: hold programs' telemetry until a person decides what is sent."""

__version__ = "0.1.0"
