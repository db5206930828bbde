from __future__ import annotations

from django.apps import AppConfig


class PobsyncRunnerConfig(AppConfig):
    name = "pobsync_runner"
    verbose_name = "pobsync runner"
