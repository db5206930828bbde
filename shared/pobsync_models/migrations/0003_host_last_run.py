"""Denormalise each host's run status onto Host (see pobsync_models.run_status) and
backfill it from the existing BackupRun rows."""

from __future__ import annotations

from django.db import migrations, models


def backfill(apps, schema_editor) -> None:
    from pobsync_models.run_status import backfill_run_status

    backfill_run_status(
        apps.get_model("pobsync_models", "Host"), apps.get_model("pobsync_models", "BackupRun")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("pobsync_models", "0002_web_snapshot_state_idx"),
    ]

    operations = [
        migrations.AddField(
            model_name="host",
            name="last_run_outcome",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="Outcome of the newest finished run (blank: none finished yet).",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="host",
            name="last_run_at",
            field=models.DateTimeField(
                blank=True, editable=False, help_text="When that run started.", null=True
            ),
        ),
        migrations.AddField(
            model_name="host",
            name="last_success_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When the newest run with outcome success or warning finished.",
                null=True,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
