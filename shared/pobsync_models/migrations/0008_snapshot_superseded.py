"""SnapshotRecord gains the state "superseded": a partial a later run continued (its
directory became that run's). Until now such partials were marked "pruned", which the
dashboard counted as deleted by retention. Existing ones are told apart by how the seed
was marked: pruned_at set to exactly the started_at of the host's run that took it
(retention sets pruned_at to the time it applied, which is no record's start)."""

from __future__ import annotations

from django.db import migrations, models
from django.db.models import Exists, OuterRef


def mark_superseded(apps, schema_editor) -> None:
    record = apps.get_model("pobsync_models", "SnapshotRecord")
    taker = record.objects.filter(host_id=OuterRef("host_id"), started_at=OuterRef("pruned_at"))
    record.objects.filter(state="pruned", pruned_at__isnull=False).filter(Exists(taker)).update(
        state="superseded", pruned_at=None
    )


def unmark_superseded(apps, schema_editor) -> None:
    record = apps.get_model("pobsync_models", "SnapshotRecord")
    record.objects.filter(state="superseded").update(state="pruned")


class Migration(migrations.Migration):
    dependencies = [
        ("pobsync_models", "0007_alerts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="snapshotrecord",
            name="state",
            field=models.CharField(
                choices=[
                    ("complete", "Complete"),
                    ("partial", "Partial"),
                    ("pruned", "Pruned"),
                    ("superseded", "Superseded"),
                    ("missing", "Missing"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(mark_superseded, unmark_superseded),
    ]
