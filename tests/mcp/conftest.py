"""The resolver suite's `make` fixture (a resolver factory run through both twins), shared."""

from ..test_resolver import make

__all__ = ["make"]
