"""Tests of the shells: the CLI and SDK as processes, the HTTP endpoint on 127.0.0.1, the bundle."""
