# Integrity (issue 13): snapshot verification state, verify runs, verify schedules and
# jobs. Depends on both 0004 migrations (events and job kinds landed side by side).

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pobsync_models", "0010_storages"),
    ]

    operations = [
        migrations.AddField(
            model_name="globalconfig",
            name="verify_outdated_days",
            field=models.PositiveIntegerField(
                default=30, validators=[django.core.validators.MinValueValidator(1)]
            ),
        ),
        migrations.AddField(
            model_name="globalconfig",
            name="verify_sample_percent",
            field=models.FloatField(
                default=5.0,
                validators=[
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(100.0),
                ],
            ),
        ),
        migrations.AddField(
            model_name="schedule",
            name="kind",
            field=models.CharField(
                choices=[("backup", "Backup"), ("verify", "Verify")],
                default="backup",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="snapshotrecord",
            name="corrupt_files",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="snapshotrecord",
            name="corrupt_paths",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="snapshotrecord",
            name="fully_verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="snapshotrecord",
            name="integrity",
            field=models.CharField(
                choices=[
                    ("unverified", "Unverified"),
                    ("verified", "Verified"),
                    ("corrupt", "Corrupt"),
                ],
                default="unverified",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="snapshotrecord",
            name="verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="backupjob",
            name="kind",
            field=models.CharField(
                choices=[("backup", "Backup"), ("restore", "Restore"), ("verify", "Verify")],
                default="backup",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="VerifyRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("running", "Running"),
                            ("ok", "Ok"),
                            ("problems", "Problems"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="running",
                        max_length=16,
                    ),
                ),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("worker_id", models.CharField(blank=True, max_length=128)),
                ("snapshots", models.PositiveIntegerField(default=0)),
                ("sample_percent", models.FloatField(blank=True, null=True)),
                (
                    "files_checked",
                    models.BigIntegerField(default=0, help_text="manifest entries looked at"),
                ),
                ("files_read", models.BigIntegerField(default=0, help_text="distinct inodes read")),
                ("bytes_read", models.BigIntegerField(default=0)),
                ("problems", models.PositiveIntegerField(default=0)),
                ("message", models.TextField(blank=True)),
                (
                    "details",
                    models.JSONField(blank=True, default=list, help_text="the first problems"),
                ),
                (
                    "host",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="verify_runs",
                        to="pobsync_models.host",
                    ),
                ),
                (
                    "job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="verify_runs",
                        to="pobsync_models.backupjob",
                    ),
                ),
            ],
            options={
                "ordering": ["-started_at", "-id"],
                "indexes": [
                    models.Index(fields=["host", "-started_at"], name="verify_host_started_idx")
                ],
            },
        ),
    ]
