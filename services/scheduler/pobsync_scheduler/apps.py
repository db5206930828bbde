from __future__ import annotations

from django.apps import AppConfig


class PobsyncSchedulerConfig(AppConfig):
    name = "pobsync_scheduler"
    verbose_name = "pobsync scheduler"
