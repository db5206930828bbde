"""The legacy YAML format: which keys exist, their YAML types, and their model fields.

This module checks shapes and types only (a mapping where a mapping belongs, a whole
number where a count belongs, no unknown keys) and turns a document into model field
values. Whether a value is acceptable (absolute path, port range, cron expression,
allowed rsync option, safe host name) is decided by the models' own validators, run by
pobsync_models.legacy_yaml.plan. docs/legacy-yaml.md describes the same format for
operators; keep the two in step.

A file is the whole truth for what it describes: a key left out takes the value a fresh
object gets (the model default; for host settings that means "inherit global.yaml").
"""

from __future__ import annotations

import datetime
import difflib
from dataclasses import dataclass, field
from typing import Any

from pobsync_models.models import GlobalConfig, Host, Schedule
from pobsync_models.models.config import DEFAULT_RETENTION
from pobsync_models.specs import RETENTION_FIELDS
from pobsync_models.validators import excerpt

RULES = tuple(f.removeprefix("keep_") for f in RETENTION_FIELDS)

# YAML key (dotted path) <-> model field. The order is the order export writes.
GLOBAL_KEYS: dict[str, str] = {
    "backup_root": "backup_root",
    "ssh.user": "ssh_user",
    "ssh.port": "ssh_port",
    "ssh.key": "ssh_key_path",
    "ssh.known_hosts": "known_hosts_path",
    "ssh.connect_timeout": "connect_timeout",
    "rsync_timeout": "rsync_timeout",
    "max_running_jobs": "max_running_jobs",
    **{f"retention.{rule}": f"keep_{rule}" for rule in RULES},
    "bwlimit": "bwlimit",
    "hooks.pre": "pre_hook",
    "hooks.post": "post_hook",
    "hooks.timeout": "hook_timeout",
}
HOST_KEYS: dict[str, str] = {
    "name": "name",
    "address": "address",
    "user": "ssh_user",
    "port": "ssh_port",
    "key": "ssh_key_path",
    "sources": "sources",
    "excludes": "excludes",
    "rsync_options": "rsync_options",
    "warning_exit_codes": "warning_exit_codes",
    **{f"retention.{rule}": f"keep_{rule}" for rule in RULES},
    "enabled": "enabled",
    "bwlimit": "bwlimit",
    "hooks.pre": "pre_hook",
    "hooks.post": "post_hook",
    "hooks.timeout": "hook_timeout",
    "hooks.pre_may_fail": "pre_may_fail",
    "hooks.remote_pre": "remote_pre",
    "hooks.remote_post": "remote_post",
    "hooks.dumps": "dumps",
    "hooks.dump_compress": "dump_compress",
    "hooks.dumps_may_fail": "dumps_may_fail",
}
SCHEDULE_KEYS: dict[str, str] = {
    "cron": "cron",
    "timezone": "timezone",
    "prune": "prune",
    "enabled": "enabled",
}
GLOBAL_TOP = (
    "backup_root",
    "ssh",
    "rsync_timeout",
    "max_running_jobs",
    "retention",
    "bwlimit",
    "hooks",
)
GLOBAL_HOOK_KEYS = ("pre", "post", "timeout")
HOST_HOOK_KEYS = (
    "pre",
    "post",
    "timeout",
    "pre_may_fail",
    "remote_pre",
    "remote_post",
    "dumps",
    "dump_compress",
    "dumps_may_fail",
)
SSH_KEYS = ("user", "port", "key", "known_hosts", "connect_timeout")
HOST_TOP = (
    "name",
    "address",
    "user",
    "port",
    "key",
    "sources",
    "excludes",
    "rsync_options",
    "warning_exit_codes",
    "retention",
    "schedule",
    "schedules",
    "enabled",
    "bwlimit",
    "hooks",
)

GLOBAL_FIELD_KEYS = {f: k for k, f in GLOBAL_KEYS.items()}
HOST_FIELD_KEYS = {f: k for k, f in HOST_KEYS.items()}

INHERIT = "inherit"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, printed as `file: key: what is wrong`."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        if self.key:
            return f"{self.file}: {self.key}: {self.message}"
        return f"{self.file}: {self.message}"


@dataclass
class ScheduleDoc:
    key: str  # "schedules[0]", for messages
    values: dict[str, Any]
    invalid: set[str] = field(default_factory=set)


@dataclass
class GlobalDoc:
    file: str
    values: dict[str, Any]
    invalid: set[str] = field(default_factory=set)  # model fields already reported


@dataclass
class HostDoc:
    file: str
    name: str
    values: dict[str, Any]
    invalid: set[str] = field(default_factory=set)
    schedules: list[ScheduleDoc] = field(default_factory=list)


_BAD = object()  # a value whose problem has been recorded


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {excerpt(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        return f"the date {value}"
    return f"a {type(value).__name__}"


def _key_text(name: object) -> str:
    """A key read from the file, as a problem's location: plain keys as they are, any
    other (long, odd characters) as a short quoted excerpt."""
    text = str(name)
    if len(text) <= 40 and text.replace("_", "").replace("-", "").isalnum():
        return text
    return excerpt(text)


class _Checker:
    """Collects the problems of one file while converting its values."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, key: str, message: str) -> object:
        self.problems.append(Problem(self.file, key, message))
        return _BAD

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        """The mapping with string keys; unknown keys are reported and dropped."""
        if value is None and not key:
            self.problem("", "the file is empty")
            return None
        if not isinstance(value, dict):
            # At the top level the "value" is the whole file: never quote it (a file that
            # is not a configuration at all may hold anything).
            got = _kind(value) if key or not isinstance(value, str) else "text"
            self.problem(key or "(top level)", f"expected a mapping of keys, got {got}")
            return None
        result: dict[str, Any] = {}
        for name, item in value.items():
            path = f"{key}.{_key_text(name)}" if key else _key_text(name)
            if not isinstance(name, str):
                self.problem(path, "keys must be text")
            elif name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
                self.problem(path, f"unknown key ({hint})")
            else:
                result[name] = item
        return result

    def text(self, value: Any, key: str, *, empty_ok: bool = True) -> Any:
        if value is None and empty_ok:
            return ""
        if not isinstance(value, str):
            return self.problem(key, f"expected text, got {_kind(value)}")
        return value

    def whole(self, value: Any, key: str, *, inherit: bool = False) -> Any:
        if value is None and inherit:
            return None
        if inherit and value == INHERIT:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            extra = f" or '{INHERIT}'" if inherit else ""
            return self.problem(key, f"expected a whole number{extra}, got {_kind(value)}")
        return value

    def flag(self, value: Any, key: str) -> Any:
        if not isinstance(value, bool):
            return self.problem(key, f"expected true or false, got {_kind(value)}")
        return value

    def items(self, value: Any, key: str, item_type: type, what: str) -> Any:
        if value is None:
            return []
        if not isinstance(value, list):
            return self.problem(key, f"expected a list of {what}, got {_kind(value)}")
        ok = True
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, item_type):
                self.problem(f"{key}[{index}]", f"expected {what[:-1]}, got {_kind(item)}")
                ok = False
        return list(value) if ok else _BAD


def _store(values: dict[str, Any], invalid: set[str], model_field: str, value: Any) -> None:
    if value is _BAD:
        invalid.add(model_field)
    else:
        values[model_field] = value


def _or_empty(top: dict[str, Any], key: str) -> Any:
    """A section written as `key:` with nothing after it is an empty section."""
    value = top.get(key)
    return {} if value is None else value


def _default(model: type, model_field: str) -> Any:
    return model._meta.get_field(model_field).get_default()


def parse_global(data: Any, file: str) -> tuple[GlobalDoc | None, list[Problem]]:
    check = _Checker(file)
    top = check.mapping(data, "", GLOBAL_TOP)
    if top is None:
        return None, check.problems
    values: dict[str, Any] = {}
    invalid: set[str] = set()
    if "backup_root" not in top:
        check.problem("backup_root", "missing (the absolute path snapshots are written under)")
        invalid.add("backup_root")
    else:
        root = check.text(top["backup_root"], "backup_root", empty_ok=False)
        if isinstance(root, str):
            root = root.rstrip("/") or "/"
        _store(values, invalid, "backup_root", root)

    ssh = check.mapping(_or_empty(top, "ssh"), "ssh", SSH_KEYS)
    ssh = ssh if ssh is not None else {}
    for name in SSH_KEYS:
        model_field = GLOBAL_KEYS[f"ssh.{name}"]
        if name not in ssh:
            values[model_field] = _default(GlobalConfig, model_field)
        elif name in {"port", "connect_timeout"}:
            _store(values, invalid, model_field, check.whole(ssh[name], f"ssh.{name}"))
        else:
            _store(values, invalid, model_field, check.text(ssh[name], f"ssh.{name}"))
    if not isinstance(_or_empty(top, "ssh"), dict):
        invalid.update(GLOBAL_KEYS[f"ssh.{n}"] for n in SSH_KEYS)

    for name in ("rsync_timeout", "max_running_jobs"):
        if name in top:
            _store(values, invalid, name, check.whole(top[name], name))
        else:
            values[name] = _default(GlobalConfig, name)

    # No retention section: the defaults a fresh configure-global sets. A section: exactly
    # the rules it lists (a rule left out is unused).
    if "retention" not in top:
        for model_field in RETENTION_FIELDS:
            values[model_field] = DEFAULT_RETENTION.get(model_field)
    else:
        rules = check.mapping(_or_empty(top, "retention"), "retention", RULES)
        for rule in RULES:
            model_field = f"keep_{rule}"
            if rules is None:
                invalid.add(model_field)
            elif rule in rules:
                value = check.whole(rules[rule], f"retention.{rule}")
                _store(values, invalid, model_field, value)
            else:
                values[model_field] = None
    _parse_hooks(top, check, values, invalid, GlobalConfig, GLOBAL_HOOK_KEYS)
    return GlobalDoc(file, values, invalid), check.problems


def _parse_hooks(
    top: dict[str, Any],
    check: _Checker,
    values: dict[str, Any],
    invalid: set[str],
    model: type,
    allowed: tuple[str, ...],
) -> None:
    """`bwlimit` and the `hooks` section (docs/hooks.md); left out means the default."""
    keys = HOST_KEYS if model is Host else GLOBAL_KEYS
    if "bwlimit" in top:
        _store(values, invalid, "bwlimit", check.text(top["bwlimit"], "bwlimit"))
    else:
        values["bwlimit"] = ""
    hooks = check.mapping(_or_empty(top, "hooks"), "hooks", allowed)
    if hooks is None:
        invalid.update(keys[f"hooks.{name}"] for name in allowed)
        return
    for name in allowed:
        field, key = keys[f"hooks.{name}"], f"hooks.{name}"
        if name not in hooks:
            values[field] = _default(model, field)
            continue
        value = hooks[name]
        if name in ("pre", "post") and model is Host and value in (None, INHERIT):
            values[field] = None
        elif name == "timeout":
            _store(values, invalid, field, check.whole(value, key, inherit=model is Host))
        elif name in ("pre_may_fail", "dump_compress", "dumps_may_fail"):
            _store(values, invalid, field, check.flag(value, key))
        elif name == "dumps":
            _store(values, invalid, field, _dump_mapping(value, key, check))
        else:
            _store(values, invalid, field, check.items(value, key, str, "strings"))


def _dump_mapping(value: Any, key: str, check: _Checker) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        return check.problem(
            key, f"expected a mapping of NAME to a command list, got {_kind(value)}"
        )
    dumps = {}
    for name, argv in value.items():
        parsed = check.items(argv, f"{key}.{name}", str, "strings")
        if parsed is _BAD:
            return _BAD
        dumps[str(name)] = parsed
    return dumps


def parse_schedule(data: Any, key: str, check: _Checker) -> ScheduleDoc | None:
    entry = check.mapping(data, key, tuple(SCHEDULE_KEYS))
    if entry is None:
        return None
    doc = ScheduleDoc(key, {})
    if "cron" not in entry:
        check.problem(f"{key}.cron", "missing (a 5-field cron expression, e.g. '15 2 * * *')")
        doc.invalid.add("cron")
    else:
        cron = check.text(entry["cron"], f"{key}.cron", empty_ok=False)
        _store(doc.values, doc.invalid, "cron", cron.strip() if isinstance(cron, str) else cron)
    if "timezone" in entry:
        tz = check.text(entry["timezone"], f"{key}.timezone", empty_ok=False)
        _store(doc.values, doc.invalid, "timezone", tz)
    else:
        doc.values["timezone"] = _default(Schedule, "timezone")
    for name in ("prune", "enabled"):
        if name in entry:
            _store(doc.values, doc.invalid, name, check.flag(entry[name], f"{key}.{name}"))
        else:
            doc.values[name] = _default(Schedule, name)
    return doc


def parse_host(data: Any, file: str, name: str) -> tuple[HostDoc | None, list[Problem]]:
    """`name` is the host name taken from the file name (already checked to be safe)."""
    check = _Checker(file)
    top = check.mapping(data, "", HOST_TOP)
    if top is None:
        return None, check.problems
    doc = HostDoc(file, name, {})
    if "name" in top:
        given = check.text(top["name"], "name", empty_ok=False)
        if isinstance(given, str) and given != name:
            check.problem(
                "name",
                f"{excerpt(given)} does not match the file name (a host's file must be named "
                f"<name>.yaml; rename the file or fix the key)",
            )
    if "address" not in top:
        check.problem("address", "missing (the host name or IP address to connect to)")
        doc.invalid.add("address")
    else:
        _store(doc.values, doc.invalid, "address", check.text(top["address"], "address"))

    for key in ("user", "key"):
        model_field = HOST_KEYS[key]
        value = check.text(top[key], key) if key in top else _default(Host, model_field)
        _store(doc.values, doc.invalid, model_field, value)
    port = check.whole(top["port"], "port", inherit=True) if "port" in top else None
    _store(doc.values, doc.invalid, "ssh_port", port)

    lists = {
        "sources": (str, "absolute paths"),
        "excludes": (str, "rsync patterns"),
        "rsync_options": (str, "option strings"),
        "warning_exit_codes": (int, "whole numbers"),
    }
    for key, (item_type, what) in lists.items():
        value = check.items(top[key], key, item_type, what) if key in top else []
        _store(doc.values, doc.invalid, key, value)

    rules = check.mapping(_or_empty(top, "retention"), "retention", RULES)
    for rule in RULES:
        model_field = f"keep_{rule}"
        if rules is None:
            doc.invalid.add(model_field)
        elif rule in rules:
            value = check.whole(rules[rule], f"retention.{rule}", inherit=True)
            _store(doc.values, doc.invalid, model_field, value)
        else:
            doc.values[model_field] = None

    if "enabled" in top:
        _store(doc.values, doc.invalid, "enabled", check.flag(top["enabled"], "enabled"))
    else:
        doc.values["enabled"] = True
    _parse_hooks(top, check, doc.values, doc.invalid, Host, HOST_HOOK_KEYS)

    if "schedule" in top and "schedules" in top:
        check.problem("schedule", "use either 'schedule' (one) or 'schedules' (a list), not both")
    elif "schedule" in top:
        if top["schedule"] is not None:
            parsed = parse_schedule(top["schedule"], "schedule", check)
            if parsed is not None:
                doc.schedules.append(parsed)
    elif top.get("schedules") is not None:
        entries = top["schedules"]
        if not isinstance(entries, list):
            check.problem("schedules", f"expected a list of schedules, got {_kind(entries)}")
        else:
            for index, entry in enumerate(entries):
                parsed = parse_schedule(entry, f"schedules[{index}]", check)
                if parsed is not None:
                    doc.schedules.append(parsed)
    _check_duplicate_schedules(doc, check)
    return doc, check.problems


def _check_duplicate_schedules(doc: HostDoc, check: _Checker) -> None:
    seen: dict[tuple[str, str], str] = {}
    for schedule in doc.schedules:
        if schedule.invalid & {"cron", "timezone"}:
            continue
        ident = (" ".join(schedule.values["cron"].split()), schedule.values["timezone"])
        if ident in seen:
            check.problem(
                schedule.key, f"the same cron and timezone as {seen[ident]}; merge the two"
            )
        else:
            seen[ident] = schedule.key
