from __future__ import annotations

from typing import Any

from pobsync_models.commandbase import PobsyncCommand, format_table
from pobsync_models.models import GlobalConfig, Host
from pobsync_models.specs import host_spec


class Command(PobsyncCommand):
    help = "List the configured hosts in a table."
    cli_name = "hosts"

    def handle(self, *args: Any, **opts: Any) -> None:
        hosts = list(Host.objects.order_by("name"))
        if not hosts:
            self.stdout.write("no hosts configured (add one with `pobsync configure-host`)")
            return
        config = GlobalConfig.load() or GlobalConfig(backup_root="/")
        rows = []
        for host in hosts:
            spec = host_spec(host, config)
            rows.append(
                (
                    host.name,
                    host.address,
                    spec.ssh.user,
                    spec.ssh.port,
                    ", ".join(host.sources),
                    "yes" if host.enabled else "no",
                )
            )
        self.stdout.write(
            format_table(("host", "address", "user", "port", "sources", "enabled"), rows)
        )
