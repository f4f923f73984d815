"""Fault suite of issue #15, client / cache / resolver side: real misbehaving servers on loopback,
a Redis of the test's own that is killed and restarted, and hypothesis for open-ended inputs."""
