"""The container files keep the rules that the compose test cannot see on this machine
(docker-compose 1.x compatibility, no secrets or ports in compose.yaml, every service
reachable by the brief's commands). Fast: no Docker needed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
POBSYNC_SERVICES = [name for name, spec in SERVICES.items() if "build" in spec]
DOCKERFILES = {svc: REPO / f"services/{svc}/Dockerfile" for svc in ("web", "scheduler", "runner")}


def test_it_has_no_top_level_name_and_no_ports() -> None:
    assert "name" not in COMPOSE  # docker-compose 1.x rejects it
    assert all("ports" not in spec for spec in SERVICES.values())
    override = yaml.safe_load((REPO / "compose.override.yaml").read_text())["services"]
    assert set(override) == {"web", "web-mariadb"}
    assert all(p.startswith("127.0.0.1:") for s in override.values() for p in s["ports"])


def test_it_offers_the_brief_services_and_the_mariadb_profile() -> None:
    assert {"web", "scheduler", "runner", "migrate"} <= set(SERVICES)
    profiled = {n for n, s in SERVICES.items() if s.get("profiles") == ["mariadb"]}
    assert profiled == {
        "mariadb",
        "migrate-mariadb",
        "web-mariadb",
        "scheduler-mariadb",
        "runner-mariadb",
    }
    assert SERVICES["mariadb"]["image"] == "${MARIADB_IMAGE:-mariadb:11}"
    assert "healthcheck" in SERVICES["mariadb"]


def test_it_migrates_once_before_anything_else_starts() -> None:
    for name in POBSYNC_SERVICES:
        if name.startswith("migrate"):
            assert SERVICES[name]["command"] == ["pobsync", "django", "migrate", "--no-input"]
            assert SERVICES[name]["restart"] == "no"
            continue
        migrate = "migrate-mariadb" if name.endswith("-mariadb") else "migrate"
        assert SERVICES[name]["depends_on"] == {
            migrate: {"condition": "service_completed_successfully"}
        }


def test_it_runs_every_pobsync_service_under_init_with_env_only_secrets() -> None:
    for name in POBSYNC_SERVICES:
        spec = SERVICES[name]
        assert spec["init"] is True, name
        env = spec["environment"]
        assert env["POBSYNC_SECRET_KEY"] == "${POBSYNC_SECRET_KEY:-}", name
        assert "container_name" not in spec  # would forbid --scale
    assert "POBSYNC_DB_PASSWORD" in SERVICES["web-mariadb"]["environment"]["DATABASE_URL"]


def test_it_mounts_keys_and_backups_only_into_runners() -> None:
    for name in POBSYNC_SERVICES:
        mounts = {v.split(":")[1] for v in SERVICES[name].get("volumes", [])}
        is_runner = name.startswith("runner")
        command = SERVICES[name].get("command", [])
        serves = command[command.index("--storage") + 1] if "--storage" in command else None
        assert ("/opt/pobsync/ssh" in mounts) is is_runner, name
        # a runner serving one storage mounts that storage's disk and no other
        assert ("/opt/pobsync/backups" in mounts) is (is_runner and serves is None), name
        if serves is not None:
            assert is_runner and f"/srv/{serves}" in mounts, name
        assert "/opt/pobsync" in mounts, name


def test_it_shows_two_runners_each_with_its_own_storage_volume() -> None:
    storage_runners = {n: s for n, s in SERVICES.items() if s.get("profiles") == ["storages"]}
    assert set(storage_runners) == {"runner-disk1-mariadb", "runner-disk2-mariadb"}
    volumes = [
        {v for v in s["volumes"] if v.split(":")[1].startswith("/srv/")}
        for s in storage_runners.values()
    ]
    assert all(len(v) == 1 for v in volumes) and volumes[0] != volumes[1]


def test_it_builds_every_image_from_a_substitutable_base() -> None:
    heads = []
    for svc, path in DOCKERFILES.items():
        text = path.read_text()
        lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert lines[0] == "ARG BASE_IMAGE=python:3.12-slim", svc
        assert lines[1] == "FROM ${BASE_IMAGE} AS build", svc
        assert "FROM ${BASE_IMAGE}" in lines, svc  # the runtime stage too
        assert "# syntax=" not in text
        assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE), svc
        assert "curl" not in text
        heads.append(text.split("# ---- runtime")[0].split("ARG BASE_IMAGE", 1)[1])
    # the build stage is the same text everywhere, so the images share its layers
    assert len(set(heads)) == 1
    assert "USER pobsync" in DOCKERFILES["web"].read_text()
    assert "USER pobsync" in DOCKERFILES["scheduler"].read_text()
    assert "USER root" in DOCKERFILES["runner"].read_text()


def test_it_keeps_env_files_out_of_the_build_context() -> None:
    rules = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in rules  # deny everything, then allow the source tree
    assert "!.env" not in rules
    example = (REPO / ".env.example").read_text()
    for variable in ("POBSYNC_SECRET_KEY", "POBSYNC_DB_PASSWORD", "POBSYNC_ALLOWED_HOSTS"):
        assert f"\n{variable}=" in example
