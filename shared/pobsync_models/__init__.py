"""pobsync_models: the shared Django app that owns pobsync's data and domain rules."""

from __future__ import annotations

__version__ = "0.1.0"
