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
* a name in ``protected_names`` (the base of a running backup) is never pruned;
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pobsync_models.specs import RetentionPolicy, SnapshotName

COMPLETE = "complete"
PARTIAL = "partial"

_SEQ_RE = re.compile(r"-(\d+)$")


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


def _hourly(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H")


def _daily(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _weekly(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def _monthly(t: datetime) -> str:
    return t.strftime("%Y-%m")


def _yearly(t: datetime) -> str:
    return t.strftime("%Y")


# (rule label, policy field, bucket of a time); keep_last is handled on its own.
BUCKET_RULES: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("hourly", "keep_hourly", _hourly),
    ("daily", "keep_daily", _daily),
    ("weekly", "keep_weekly", _weekly),
    ("monthly", "keep_monthly", _monthly),
    ("yearly", "keep_yearly", _yearly),
)


def snapshot_sort_key(name: str) -> tuple[datetime, int]:
    """Chronological order of names, including the same-second suffix (-1, -2, -10)."""
    m = _SEQ_RE.search(name.rsplit("Z", 1)[-1])
    return SnapshotName(name).time, int(m.group(1)) if m else 0


def plan_retention(
    records: Iterable[RetentionItem],
    policy: RetentionPolicy,
    now: datetime,
    *,
    protected_names: frozenset[str] = frozenset(),
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
            for when, name in complete:
                if left <= 0:
                    break
                bucket = bucket_of(when)
                if bucket != last_bucket:
                    reasons[name].append(f"{label} {bucket}")
                    last_bucket = bucket
                    left -= 1

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
            why.append("base of a running backup")
        if not why and when > now:
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
