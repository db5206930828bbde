"""The safe YAML loader: what it refuses, and that it refuses it with one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pobsync_models.legacy_yaml.loader import MAX_FILE_BYTES, LoadError, load_file, loads

BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


def test_it_refuses_a_billion_laughs_document():
    with pytest.raises(LoadError, match=r"expands to more than 100000 values .*YAML bomb"):
        loads(BOMB)


def test_it_allows_a_few_ordinary_aliases():
    data = loads("common: &ex ['*.tmp', '/proc/**']\nexcludes: *ex\n")
    assert data["excludes"] == ["*.tmp", "/proc/**"]


def test_it_refuses_a_recursive_alias():
    with pytest.raises(LoadError, match="recursive YAML"):
        loads("a: &a [1, *a]\n")


def test_it_refuses_python_object_tags():
    with pytest.raises(LoadError, match="could not determine a constructor"):
        loads("x: !!python/object/apply:os.system ['true']\n")


def test_it_refuses_a_key_given_twice():
    with pytest.raises(LoadError, match="line 2: key 'address' appears twice"):
        loads("address: a\naddress: b\n")


def test_it_reports_syntax_errors_with_line_and_column():
    with pytest.raises(LoadError, match=r"^line 1, column 5: mapping values are not allowed"):
        loads("a: b: c\n")


def test_it_refuses_absurd_nesting_without_a_traceback():
    with pytest.raises(LoadError, match="nested too deeply"):
        loads("[" * 50_000)


def test_it_refuses_a_file_over_the_size_limit(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(LoadError, match=r"over the 1048576 byte limit; refused"):
        load_file(path)


def test_it_refuses_text_that_is_not_utf8(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("address: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(LoadError, match="not UTF-8"):
        load_file(path)


def test_it_refuses_a_fifo_instead_of_blocking_on_it(tmp_path: Path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    with pytest.raises(LoadError, match="not a regular file"):
        load_file(path)


def test_it_reads_unicode_and_a_byte_order_mark(tmp_path: Path):
    path = tmp_path / "u.yaml"
    path.write_bytes("\ufeffsources: [/srv/d\u00e5ta, /home/j\u00fcrgen]\n".encode())
    assert load_file(path) == {"sources": ["/srv/d\u00e5ta", "/home/j\u00fcrgen"]}
