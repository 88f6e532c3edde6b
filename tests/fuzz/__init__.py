"""Bad input of every kind, generated: manifests, reports, and raw bytes at the endpoint."""
