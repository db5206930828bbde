"""Compare parsed YAML documents with the database, validate with the models, apply.

Invariants:
- every document is validated with the models' own validators (full_clean) before
  anything is written; any problem anywhere raises ImportRefusedError with all of them;
- the whole import is one transaction; a dry run computes the same plan and writes
  nothing;
- hosts without a file are only deleted with prune_missing, never while running;
- schedules that are created, or whose cron, timezone or enabled flag change, get
  next_run_at = NULL: the scheduler computes it on its next tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from pobsync_models.hostconfig import (
    NEW,
    Change,
    prepare_global,
    prepare_host,
    save_changes,
)
from pobsync_models.legacy_yaml.reader import ConfigFiles
from pobsync_models.legacy_yaml.schema import (
    GLOBAL_FIELD_KEYS,
    HOST_FIELD_KEYS,
    SCHEDULE_KEYS,
    HostDoc,
    Problem,
    ScheduleDoc,
)
from pobsync_models.models import GlobalConfig, Host, Schedule

RESCHEDULE_FIELDS = frozenset({"cron", "timezone", "enabled"})


class ImportRefusedError(Exception):
    """Raised with every problem found; nothing has been written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass
class ScheduleStep:
    action: str  # "create", "update" or "delete"
    schedule: Schedule
    key: str = ""  # where the file has it ("schedules[1]"); empty for a delete
    changes: list[Change] = field(default_factory=list)

    def describe(self) -> str:
        if self.action == "delete":
            return f"schedule {self.schedule.cron!r} ({self.schedule.timezone}): deleted"
        if self.action == "create":
            return f"{self.key}: created ({self.schedule.cron!r}, {self.schedule.timezone})"
        shown = [c for c in self.changes if c.field in SCHEDULE_KEYS]
        return f"{self.key}: " + ", ".join(_show_change(c, {}) for c in shown)


@dataclass
class HostStep:
    host: Host
    created: bool
    changes: list[Change]
    schedules: list[ScheduleStep]

    @property
    def changed(self) -> bool:
        return self.created or bool(self.changes) or bool(self.schedules)


@dataclass
class ImportPlan:
    config: GlobalConfig
    config_created: bool
    config_changes: list[Change]
    hosts: list[HostStep]
    deletions: list[Host]
    kept_without_file: list[str]

    @property
    def changed(self) -> bool:
        return (
            self.config_created
            or bool(self.config_changes)
            or any(h.changed for h in self.hosts)
            or bool(self.deletions)
        )

    def report(self, *, dry_run: bool) -> list[str]:
        """Human-readable lines, one per changed object plus indented details."""
        would = "would be " if dry_run else ""
        lines: list[str] = []
        if self.config_created:
            lines.append(f"global configuration: {would}created")
        elif self.config_changes:
            lines.append(f"global configuration: {would}updated")
            lines += [f"  {_show_change(c, GLOBAL_FIELD_KEYS)}" for c in self.config_changes]
        for step in self.hosts:
            if step.created:
                count = len(step.schedules)
                lines.append(
                    f"host {step.host.name}: {would}created"
                    + (f" with {count} schedule{'s' if count != 1 else ''}" if count else "")
                )
            elif step.changed:
                lines.append(f"host {step.host.name}: {would}updated")
                lines += [f"  {_show_change(c, HOST_FIELD_KEYS)}" for c in step.changes]
                lines += [f"  {s.describe()}" for s in step.schedules]
        for host in self.deletions:
            lines.append(
                f"host {host.name}: {would}deleted with its schedules, jobs, runs and "
                "snapshot records (no file; --prune-missing); snapshot directories on disk "
                "are kept"
            )
        unchanged = sum(1 for h in self.hosts if not h.changed)
        created = sum(1 for h in self.hosts if h.created)
        updated = sum(1 for h in self.hosts if h.changed and not h.created)
        if self.changed:
            lines.append(
                f"hosts: {created} {would}created, {updated} {would}updated, "
                f"{len(self.deletions)} {would}deleted, {unchanged} unchanged"
            )
        else:
            lines.append(
                f"nothing changed: the database already matches the files "
                f"(global configuration and {len(self.hosts)} host"
                f"{'s' if len(self.hosts) != 1 else ''})"
            )
        if self.kept_without_file:
            lines.append(
                "kept (in the database but without a file; --prune-missing deletes them): "
                + ", ".join(self.kept_without_file)
            )
        return lines


def _show_value(value: Any) -> str:
    if value is None or value == "":
        return "(default)"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _show_change(change: Change, keys: dict[str, str]) -> str:
    key = keys.get(change.field, change.field)
    if change.old is NEW:
        return f"{key}: {_show_value(change.new)}"
    return f"{key}: {_show_value(change.old)} -> {_show_value(change.new)}"


def _problems(file: str, error: ValidationError, keys: dict[str, str], prefix: str = ""):
    if not hasattr(error, "error_dict"):
        return [Problem(file, prefix.rstrip("."), m) for m in error.messages]
    found = []
    for model_field, errors in error.error_dict.items():
        key = "" if model_field == "__all__" else prefix + keys.get(model_field, model_field)
        for message in ValidationError(errors).messages:
            found.append(Problem(file, key or prefix.rstrip("."), message))
    return found


def _validated_schedules(doc: HostDoc, problems: list[Problem]) -> list[Schedule]:
    """Unsaved Schedule objects for the document's schedules, validated by the model."""
    schedules = []
    for entry in doc.schedules:
        schedule = Schedule(**entry.values)
        try:
            schedule.full_clean(exclude=["host", *entry.invalid])
        except ValidationError as exc:
            problems += _problems(doc.file, exc, SCHEDULE_KEYS, prefix=f"{entry.key}.")
        schedules.append(schedule)
    return schedules


def _ident(values: dict[str, Any] | Schedule) -> tuple[str, str]:
    if isinstance(values, Schedule):
        return (" ".join(values.cron.split()), values.timezone)
    return (" ".join(values["cron"].split()), values["timezone"])


def _schedule_steps(host: Host, created: bool, entries: list[ScheduleDoc]) -> list[ScheduleStep]:
    """Pair the file's schedules with the host's: same cron and timezone first, then the
    rest in order (an edited cron updates that schedule in place); create or delete
    what is left over."""
    existing = [] if created else list(host.schedules.order_by("id"))
    pairs: dict[int, Schedule] = {}
    unmatched = list(existing)
    for index, entry in enumerate(entries):
        match = next((s for s in unmatched if _ident(s) == _ident(entry.values)), None)
        if match is not None:
            pairs[index] = match
            unmatched.remove(match)
    for index in range(len(entries)):
        if index not in pairs and unmatched:
            pairs[index] = unmatched.pop(0)

    steps = []
    for index, entry in enumerate(entries):
        current = pairs.get(index)
        if current is None:
            schedule = Schedule(**entry.values)
            schedule.next_run_at = None
            steps.append(ScheduleStep("create", schedule, entry.key))
            continue
        changes = []
        for name, value in entry.values.items():
            if getattr(current, name) != value:
                changes.append(Change(name, getattr(current, name), value))
                setattr(current, name, value)
        if changes:
            if RESCHEDULE_FIELDS & {c.field for c in changes} and current.next_run_at:
                changes.append(Change("next_run_at", current.next_run_at, None))
                current.next_run_at = None
            steps.append(ScheduleStep("update", current, entry.key, changes))
    steps += [ScheduleStep("delete", s) for s in unmatched]
    return steps


def plan_import(files: ConfigFiles, *, prune_missing: bool = False) -> ImportPlan:
    """Validate everything against the models and the database; raise ImportRefusedError
    with every problem, or return the plan. Reads only."""
    problems = list(files.problems)
    if files.global_doc is None and not files.hosts:
        raise ImportRefusedError(problems)  # nothing to compare: no need for the database
    config = None
    config_created = False
    config_changes: list[Change] = []
    if files.global_doc is not None:
        doc = files.global_doc
        try:
            config, config_created, config_changes = prepare_global(doc.values, exclude=doc.invalid)
        except ValidationError as exc:
            problems += _problems(doc.file, exc, GLOBAL_FIELD_KEYS)

    steps = []
    for doc in files.hosts:
        schedule_count = len(problems)
        _validated_schedules(doc, problems)
        try:
            host, created, changes = prepare_host(doc.name, doc.values, exclude=doc.invalid)
        except ValidationError as exc:
            problems += _problems(doc.file, exc, HOST_FIELD_KEYS)
            continue
        if len(problems) > schedule_count or doc.invalid:
            continue
        changes = [c for c in changes if c.field != "name"]
        schedule_steps = _schedule_steps(host, created, doc.schedules)
        steps.append(HostStep(host, created, changes, schedule_steps))

    names = {doc.name for doc in files.hosts}
    absent = list(Host.objects.exclude(name__in=names).order_by("name"))
    deletions: list[Host] = []
    kept: list[str] = []
    for host in absent:
        if not prune_missing:
            kept.append(host.name)
        elif host.running_job_id is not None:
            problems.append(
                Problem(
                    "--prune-missing",
                    f"host {host.name}",
                    f"has no file but is running job {host.running_job_id}; "
                    "import again when it has finished",
                )
            )
        else:
            deletions.append(host)

    if problems or config is None:
        # Grouped by file, in the order found within a file.
        raise ImportRefusedError(sorted(problems, key=lambda p: p.file))
    return ImportPlan(config, config_created, config_changes, steps, deletions, kept)


def apply_plan(plan: ImportPlan) -> None:
    """Write a plan from plan_import; call inside the same transaction as the plan."""
    save_changes(plan.config, plan.config_created, plan.config_changes)
    for step in plan.hosts:
        save_changes(step.host, step.created, step.changes)
        for schedule_step in step.schedules:
            schedule = schedule_step.schedule
            if schedule_step.action == "delete":
                schedule.delete()
            elif schedule_step.action == "create":
                schedule.host = step.host
                schedule.save()
            else:
                save_changes(schedule, False, schedule_step.changes)
    for host in plan.deletions:
        host.delete()


def import_config(
    files: ConfigFiles, *, prune_missing: bool = False, dry_run: bool = False
) -> ImportPlan:
    """Plan and (unless dry_run) apply in ONE transaction, so what was validated is
    exactly what is written."""
    with transaction.atomic():
        plan = plan_import(files, prune_missing=prune_missing)
        if not dry_run:
            apply_plan(plan)
    return plan
