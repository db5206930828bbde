from __future__ import annotations

from django.apps import AppConfig


class PobsyncWebConfig(AppConfig):
    name = "pobsync_web"
    verbose_name = "pobsync web"
