from __future__ import annotations

from pobsync_models.management.host_switch import HostSwitchCommand


class Command(HostSwitchCommand):
    help = "Enable a disabled host again: its schedules queue backups again."
    cli_name = "enable-host"
    enable = True
