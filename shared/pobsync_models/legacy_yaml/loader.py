"""Safe loading of one YAML file: size limit, UTF-8, no object construction, no bombs.

Invariants: a file is read at most MAX_FILE_BYTES (+1 to detect more); only
yaml.SafeLoader's constructors run (plain scalars, lists, mappings); a document whose
aliases would expand to more than MAX_NODES nodes, or refer to themselves, is refused
before anything is constructed; a key repeated in one mapping is an error instead of
YAML's silent "last one wins". Every failure is a LoadError with one line.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FILE_BYTES = 1024 * 1024
# A host file has a few hundred nodes; this leaves room for long source and exclude
# lists while refusing "billion laughs" documents long before they use real memory.
MAX_NODES = 100_000


class LoadError(Exception):
    """One line saying why a file cannot be read as a configuration document."""


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_duplicate_keys(node: MappingNode) -> None:
    seen: set[str] = set()
    for key, _value in node.value:
        if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in seen:
            raise LoadError(
                f"line {key.start_mark.line + 1}: key {key.value!r} appears twice in one mapping"
            )
        seen.add(key.value)


def check_node_graph(root: Node, limit: int = MAX_NODES) -> None:
    """Refuse alias cycles and documents that expand to more than `limit` nodes.

    Iterative (a deeply nested document must not exhaust the Python stack here) and
    memoised per node, so a shared subtree is measured once but counted every time it
    is referenced: that count is what a consumer walking the data would see.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > limit:
                raise LoadError(
                    f"the document expands to more than {limit} values through aliases "
                    "(a YAML bomb?); refused"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if isinstance(node, MappingNode):
            _check_duplicate_keys(node)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise LoadError(
                    f"line {child.start_mark.line + 1}: an alias refers to a value that "
                    "contains it (recursive YAML); refused"
                )
            if id(child) not in sizes:
                stack.append((child, False))


class GuardedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that checks the composed node graph before constructing it."""

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        if node is not None:
            check_node_graph(node)
        return node


def _one_line(text: str, limit: int = 120) -> str:
    """PyYAML's messages can quote the document (a tag, a character): keep one short
    line of them, never the file's content."""
    first = text.strip().splitlines()[0] if text.strip() else "invalid YAML"
    return first if len(first) <= limit else first[: limit - 3] + "..."


def loads(text: str) -> Any:
    """Parse one YAML document with GuardedSafeLoader; LoadError on any problem."""
    try:
        return yaml.load(text, Loader=GuardedSafeLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise LoadError(f"{where}{_one_line(what)}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"invalid YAML: {_one_line(str(exc))}") from None
    except RecursionError:
        raise LoadError("the document is nested too deeply; refused") from None


def load_file(path: Path) -> Any:
    """Read and parse `path`: a regular file (not a symbolic link: a link could point at
    any file this user can read, whose content an error message would then echo) of at
    most MAX_FILE_BYTES of UTF-8."""
    try:
        info = path.lstat()
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise LoadError("is a symbolic link; refused (copy the file itself into place)")
    if not stat.S_ISREG(info.st_mode):
        raise LoadError("not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise LoadError(
            f"file is {info.st_size} bytes, over the {MAX_FILE_BYTES} byte limit; refused"
        )
    try:
        # O_NOFOLLOW: a file swapped for a link after the lstat() is refused too.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("is a symbolic link; refused") from None
        raise LoadError(f"cannot read: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise LoadError("not a regular file")
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise LoadError(f"file is over the {MAX_FILE_BYTES} byte limit; refused")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not UTF-8 text (byte {exc.start} is invalid)") from None
    return loads(text)
