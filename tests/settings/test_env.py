from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from pobsync_models.env import env_bool, env_ciphers, env_int, env_list, env_secret


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("YES", True), ("off", False), ("0", False)]
)
def test_it_reads_documented_boolean_words(monkeypatch, raw, expected):
    monkeypatch.setenv("POBSYNC_X", raw)
    assert env_bool("POBSYNC_X") is expected


def test_it_refuses_an_ambiguous_boolean(monkeypatch):
    monkeypatch.setenv("POBSYNC_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="POBSYNC_X='maybe' is not a boolean"):
        env_bool("POBSYNC_X")


def test_it_uses_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("POBSYNC_X", raising=False)
    assert env_bool("POBSYNC_X", True) is True
    assert env_int("POBSYNC_X", 7) == 7
    assert env_list("POBSYNC_X", ["a"]) == ["a"]


def test_it_refuses_a_non_integer_and_a_too_small_integer(monkeypatch):
    monkeypatch.setenv("POBSYNC_X", "ten")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("POBSYNC_X", 1)
    monkeypatch.setenv("POBSYNC_X", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env_int("POBSYNC_X", 1, minimum=0)


def test_it_splits_comma_lists(monkeypatch):
    monkeypatch.setenv("POBSYNC_X", " a.example, b.example ,,")
    assert env_list("POBSYNC_X", []) == ["a.example", "b.example"]


def test_it_reads_a_secret_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.delenv("POBSYNC_S", raising=False)
    monkeypatch.setenv("POBSYNC_S_FILE", str(secret))
    assert env_secret("POBSYNC_S") == "from-a-file"


def test_it_refuses_a_secret_set_twice_or_an_unreadable_file(monkeypatch, tmp_path):
    monkeypatch.setenv("POBSYNC_S", "inline")
    monkeypatch.setenv("POBSYNC_S_FILE", str(tmp_path / "key"))
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_secret("POBSYNC_S")
    monkeypatch.delenv("POBSYNC_S")
    with pytest.raises(ImproperlyConfigured, match="POBSYNC_S_FILE"):
        env_secret("POBSYNC_S")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", "auto"), ("auto", "auto"), (" ssh ", "ssh"),
     ("aes128-gcm@openssh.com,chacha20-poly1305@openssh.com",
      "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com")],
)  # fmt: skip
def test_it_reads_the_ssh_cipher_choice(monkeypatch, raw, expected):
    monkeypatch.setenv("POBSYNC_X", raw)
    assert env_ciphers("POBSYNC_X") == expected


@pytest.mark.parametrize("raw", ["aes128-gcm@openssh.com, aes256-ctr", "+aes", "a;b", "x,,y", "-o"])
def test_it_refuses_a_cipher_list_ssh_would_not_read_as_one(monkeypatch, raw):
    monkeypatch.setenv("POBSYNC_X", raw)
    with pytest.raises(ImproperlyConfigured, match="POBSYNC_X=.* is not auto, ssh or a comma"):
        env_ciphers("POBSYNC_X")
