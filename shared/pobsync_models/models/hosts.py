from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from pobsync_models.models.config import RetentionFields
from pobsync_models.validators import (
    HOST_NAME_MAX,
    validate_address,
    validate_bwlimit,
    validate_dumps,
    validate_exclude_list,
    validate_exit_codes,
    validate_hook_timeout,
    validate_host_name,
    validate_optional_absolute_path,
    validate_optional_http_url,
    validate_remote_command,
    validate_rsync_options,
    validate_server_hook,
    validate_source_list,
    validate_ssh_user,
)


class Host(RetentionFields):
    """A remote machine pobsync pulls from. Empty/NULL fields inherit GlobalConfig.

    `running_job` + `lease_token` are the per-host mutex of the job queue: a runner owns
    the host while running_job is set (see pobsync_models.queue).

    `last_run_outcome`, `last_run_at`, `last_success_at` denormalise the host's run
    history so the dashboard judges every host with one scan of this table; only
    pobsync_models.run_status writes them, with conditional UPDATEs of those columns.
    """

    name = models.CharField(max_length=HOST_NAME_MAX, unique=True, validators=[validate_host_name])
    address = models.CharField(max_length=255, validators=[validate_address])
    ssh_user = models.CharField(max_length=64, blank=True, validators=[validate_ssh_user])
    ssh_port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    ssh_key_path = models.CharField(
        max_length=1024, blank=True, validators=[validate_optional_absolute_path]
    )
    sources = models.JSONField(default=list, blank=True, validators=[validate_source_list])
    excludes = models.JSONField(default=list, blank=True, validators=[validate_exclude_list])
    rsync_options = models.JSONField(default=list, blank=True, validators=[validate_rsync_options])
    warning_exit_codes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_exit_codes],
        help_text="rsync exit codes treated as a warning besides 24 (vanished files).",
    )
    enabled = models.BooleanField(default=True)
    overdue_after_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Overdue when no success for this many hours; empty: twice the schedule's "
        "interval (36 h without a schedule).",
    )
    ping_url = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_optional_http_url],
        help_text="healthchecks.io-style ping URL: /start on claim, success, /fail.",
    )

    # Hooks and dumps (docs/hooks.md). Commands are argv lists, validated on save.
    pre_hook = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_server_hook],
        help_text="Server-side command before rsync, as a JSON argv list with an absolute "
        'executable, e.g. ["/usr/local/bin/lvm-snap", "web1"]. Empty: the global default; '
        "[]: none.",
    )
    post_hook = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_server_hook],
        help_text="Server-side command after every started run, whatever its outcome "
        "(JSON argv list). Empty: the global default; []: none.",
    )
    hook_timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[validate_hook_timeout],
        help_text="Seconds a hook or remote command may run; empty: the global default.",
    )
    pre_may_fail = models.BooleanField(
        default=False, help_text="A failing pre hook (or remote pre) only warns."
    )
    remote_pre = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_remote_command],
        help_text="Command run on the remote before rsync through its own forced-command "
        "key (JSON argv list; see `pobsync ssh-key --command`).",
    )
    remote_post = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_remote_command],
        help_text="Command run on the remote after every started run (JSON argv list).",
    )
    dumps = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_dumps],
        help_text='{"NAME": ["cmd", "arg"]}: each remote command\'s stdout is stored as '
        "_dumps/NAME in the snapshot, over its own forced-command key.",
    )
    dump_compress = models.BooleanField(
        default=False, help_text="gzip dumps on the backup server (_dumps/NAME.gz)."
    )
    dumps_may_fail = models.BooleanField(
        default=False, help_text="A failing dump only warns (the snapshot is committed)."
    )
    bwlimit = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_bwlimit],
        help_text="rsync --bwlimit with a unit, e.g. 5M; empty: the global default.",
    )
    # Restores pushed back to this host use their own key, confined by its
    # authorized_keys line (rrsync) to restore_root; see docs/restore.md.
    restore_root = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_optional_absolute_path],
        help_text="Directory on the host the restore key may write under; blank: no restore "
        "to this host (pobsync ssh-key --restore --root DIR --host NAME sets it).",
    )
    restore_key_path = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_optional_absolute_path],
        help_text="Private key for restores to this host; blank: the default restore key.",
    )
    # NULL means the default storage (pobsync_models.storages.storage_of).
    storage = models.ForeignKey(
        "pobsync_models.Storage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="hosts",
        help_text="Where its snapshots live; empty means the default storage.",
    )
    # Real disk use of all its snapshots, each inode counted once (pobsync_runner.spacescan).
    disk_used_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    disk_used_inodes = models.BigIntegerField(null=True, blank=True, editable=False)
    disk_scanned_at = models.DateTimeField(null=True, blank=True, editable=False)

    running_job = models.ForeignKey(
        "pobsync_models.BackupJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    lease_token = models.CharField(max_length=64, blank=True, editable=False)

    last_run_outcome = models.CharField(
        max_length=16,
        blank=True,
        editable=False,
        help_text="Outcome of the newest finished run (blank: none finished yet).",
    )
    last_run_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When that run started."
    )
    last_success_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the newest run with outcome success or warning finished.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        fields = kwargs.get("update_fields")
        if fields is None or "storage" in fields:
            from pobsync_models.storages import follow_host_storage

            follow_host_storage(self)

    @property
    def last_outcome(self) -> str | None:
        """The newest finished run's outcome, None when none finished yet."""
        return self.last_run_outcome or None
