"""Tests of the PySide6 shell with real widgets (offscreen) and a real tray host under Xvfb."""
