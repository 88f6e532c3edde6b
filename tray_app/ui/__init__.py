"""The PySide6 shell: tray icon and menu, review window, settings, history.

It holds no business rules and no SQL: every decision goes to the broker, and anything
that may touch the disk or the network runs on the thread pool through
:mod:`tray_app.ui.worker`.
"""
