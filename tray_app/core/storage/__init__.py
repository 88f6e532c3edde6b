"""Rows and files in and out: the SQLite store, its migrations, the spool. No business rules."""
