"""The loopback HTTP endpoint and the running instance that hosts it: shells over the core."""
