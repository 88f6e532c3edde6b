"""The promises of DESIGN.md as whole-system tests: crashes, full disks, secrets, load, the layers."""
