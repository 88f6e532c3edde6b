"""What the tests share: builders, the real program as a process, a fake vendor, fuzz inputs."""
