"""The retention planner: which snapshots a policy keeps, and why. A pure function.

The rule (restic `forget` / borg `prune` calendar buckets, all times UTC):

* Only complete snapshots count. They are walked newest first.
* Each keep_* rule works on its own, independently of the others: it keeps the newest
  snapshot of each period (hour, day, ISO week, month, year; for keep_last every
  snapshot is its own period) until it has kept its count. Periods without a snapshot
  are skipped, not counted.
* A snapshot kept by any rule is kept; every rule that kept it is named in the reason,
  with its bucket (``daily 2026-11-27``, ``weekly 2026-W48``).

Safety rules on top, whatever the policy says:

* an empty policy (every count 0) keeps everything;
* the newest complete snapshot is never pruned;
* a name in ``protected_names`` (the base of a running backup, the snapshot a queued or
  running restore reads) is never pruned; given as a mapping, its value is the reason;
* a snapshot dated after ``now`` is kept (a clock went wrong; never guess);
* partials never satisfy a rule: a partial older than the newest complete snapshot is
  pruned, a newer one (or any partial when there is no complete one) is kept because
  it seeds the next run.

Records are anything with ``name`` and ``state`` (SnapshotRecord, or `Snapshot` here);
records in other states (pruned, missing) are not planned. A snapshot's time is its
name (a UTC timestamp, pobsync_models.specs.SnapshotName).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from pobsync_models.specs import RetentionPolicy, SnapshotName

COMPLETE = "complete"
PARTIAL = "partial"


class RetentionItem(Protocol):
    name: str
    state: str


@dataclass(frozen=True)
class Snapshot:
    """A minimal record for callers that have no SnapshotRecord (benchmarks, tests)."""

    name: str
    state: str = COMPLETE


@dataclass(frozen=True)
class Decision:
    name: str
    state: str
    keep: bool
    reasons: tuple[str, ...]

    @property
    def action(self) -> str:
        return "keep" if self.keep else "prune"

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


# Buckets come straight from the name ("2026-11-27T203045Z": hour = first 13
# characters, day = 10, month = 7, year = 4); only ISO weeks need a date. No datetime
# per record keeps 100,000 records well under a second.
def _weekly(name: str) -> str:
    year, week, _ = date(int(name[0:4]), int(name[5:7]), int(name[8:10])).isocalendar()
    return f"{year:04d}-W{week:02d}"


# (rule label, policy field, bucket of a name); keep_last is handled on its own.
BUCKET_RULES: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("hourly", "keep_hourly", lambda name: name[:13]),
    ("daily", "keep_daily", lambda name: name[:10]),
    ("weekly", "keep_weekly", _weekly),
    ("monthly", "keep_monthly", lambda name: name[:7]),
    ("yearly", "keep_yearly", lambda name: name[:4]),
)
_NAME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{6}Z(?:-(\d+))?")


def snapshot_sort_key(name: str) -> tuple[str, int]:
    """Chronological order of names, including the same-second suffix (-1, -2, -10)."""
    m = _NAME_RE.fullmatch(name)
    if m is None:
        SnapshotName(name)  # raises the usual ValueError
        raise ValueError(name)
    return name[:18], int(m.group(1) or 0)


def plan_retention(
    records: Iterable[RetentionItem],
    policy: RetentionPolicy,
    now: datetime,
    *,
    protected_names: frozenset[str] | Mapping[str, str] = frozenset(),
) -> list[Decision]:
    """One Decision per complete or partial record, newest first. Pure: no I/O."""
    dated = []
    for record in records:
        if record.state in (COMPLETE, PARTIAL):
            dated.append((snapshot_sort_key(record.name), record.name, record.state))
    dated.sort(reverse=True)
    complete = [(key[0], name) for key, name, state in dated if state == COMPLETE]

    reasons: dict[str, list[str]] = {name: [] for _, name, _ in dated}
    if policy.is_empty:
        for name in reasons:
            reasons[name].append("empty policy keeps everything")
    else:
        for i, (_, name) in enumerate(complete[: policy.keep_last]):
            reasons[name].append(f"last #{i + 1}")
        for label, field, bucket_of in BUCKET_RULES:
            left = getattr(policy, field)
            last_bucket = None
            for _, name in complete:
                if left <= 0:
                    break
                bucket = bucket_of(name)
                if bucket != last_bucket:
                    reasons[name].append(f"{label} {bucket}")
                    last_bucket = bucket
                    left -= 1

    now_key = SnapshotName.for_time(now).value[:18]
    newest_complete = complete[0] if complete else None
    decisions = []
    for (when, _), name, state in dated:
        why = reasons[name]
        if state == PARTIAL:
            if newest_complete is None or when >= newest_complete[0]:
                why.append("partial newer than the newest complete snapshot (seeds the next run)")
        elif not why and newest_complete is not None and name == newest_complete[1]:
            why.append("newest complete snapshot (always kept)")
        if name in protected_names:
            if isinstance(protected_names, Mapping):
                why.append(protected_names[name])
            else:
                why.append("base of a running backup")
        if not why and when > now_key:
            why.append("dated in the future (clock skew?): kept")
        if why:
            decisions.append(Decision(name, state, True, tuple(why)))
        elif state == PARTIAL:
            decisions.append(
                Decision(name, state, False, ("partial older than the newest complete snapshot",))
            )
        else:
            decisions.append(Decision(name, state, False, ("no rule keeps it",)))
    return decisions
