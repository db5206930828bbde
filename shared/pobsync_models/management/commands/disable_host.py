from __future__ import annotations

from pobsync_models.management.host_switch import HostSwitchCommand


class Command(HostSwitchCommand):
    help = "Disable a host: its schedules stop queueing backups (nothing is deleted)."
    cli_name = "disable-host"
    enable = False
