"""The rules of Telemetry Tray as pure functions and values: no I/O, no threads, no SQL."""
