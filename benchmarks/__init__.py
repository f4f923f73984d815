"""Benchmarks of callsid-resolver against the official SDK's walk, on the local emulator."""
