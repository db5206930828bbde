"""Integrity tests reuse the engine fixture (a backup root and a host behind the real sshd)."""

from tests.engine.conftest import Engine, engine  # noqa: F401
