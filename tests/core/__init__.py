"""Tests of the core by subject: rules, storage, platform and the services, with real files."""
