"""The real `docker compose` stack: images built from the service Dockerfiles on a locally
made Debian base, brought up with docker-compose from compose.yaml on a private dockerd
without any bridge network (every service on the host network, see
tests/support/compose.py), then used the way an operator would:

- SQLite stack (web, scheduler, runner): all healthy; /api/status/ answers 401 to
  anonymous callers and 200 to staff; a staff login reaches /dashboard/; a queued backup
  of a host behind a real sshd on 127.0.0.1 runs in the runner container and its
  snapshot appears on the backup volume.
- MariaDB profile with `--scale runner-mariadb=2` against the machine's MariaDB (a fresh
  database): both runner containers claim queued jobs.
- No bridge network is created; `down -v` removes containers and volumes.

The tests run in file order and share one stack (module fixtures); docs/docker.md gives
the cost (time, disk). Marked docker+slow: `pytest -m "not slow"` skips them.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.compose import COMPOSE_FILE, ComposeProject, host_network_override
from tests.support.dockerd import base_image, pip_build_args, running_dockerd
from tests.support.mariadb import fresh_database
from tests.support.need import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(840)]

SQLITE_SERVICES = ["web", "scheduler", "runner"]
MARIADB_SERVICES = ["web-mariadb", "scheduler-mariadb", "runner-mariadb"]
STAFF = ("alice", "alice-compose-password-1")
BACKUP_ROOT = "/opt/pobsync/backups"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[ComposeProject]:
    with ExitStack() as stack:
        engine = stack.enter_context(running_dockerd())
        before = set(engine.run(["docker", "network", "ls", "-q"]).stdout.split())
        # Dangling images from earlier runs' superseded builds; the cache stays.
        engine.run(["docker", "image", "prune", "-f", "--filter", "until=24h"], check=False)
        mariadb_url = stack.enter_context(fresh_database("pobsync_compose"))
        ports = {"web": free_port(), "web-mariadb": free_port()}
        base = base_image(engine)
        override = tmp_path_factory.mktemp("compose") / "compose.ci.yaml"
        override.write_text(
            yaml.safe_dump(
                host_network_override(
                    web_ports=ports,
                    mariadb_url=mariadb_url,
                    base_image=base,
                    build_args=pip_build_args(),
                )
            )
        )
        name = f"pobsynctest{secrets.token_hex(3)}"
        project = ComposeProject(
            engine,
            name,
            [COMPOSE_FILE, override],
            env={"BASE_IMAGE": base},
            web_ports=ports,
            networks_before=before,
        )
        try:
            yield project
        finally:
            project.run("--profile", "mariadb", "down", "-v", "--remove-orphans", check=False)


@pytest.fixture(scope="module")
def sqlite_stack(project: ComposeProject) -> ComposeProject:
    # The brief's command, detached: `docker compose up --build web scheduler (runner)`.
    project.run("up", "--build", "--detach", *SQLITE_SERVICES, timeout=900)
    project.wait_healthy(SQLITE_SERVICES)
    return project


def create_staff(project: ComposeProject, web: str) -> None:
    project.run(
        "exec",
        "-T",
        "-e",
        f"DJANGO_SUPERUSER_PASSWORD={STAFF[1]}",
        web,
        "pobsync",
        "django",
        "createsuperuser",
        "--no-input",
        "--username",
        STAFF[0],
        "--email",
        "alice@example.com",
    )


def staff_login(url: str) -> httpx.Client:
    """Log in through the admin login form, as a browser would; returns the session."""
    client = httpx.Client(base_url=url, timeout=30, follow_redirects=True)
    page = client.get("/admin/login/", params={"next": "/dashboard/"})
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    response = client.post(
        "/admin/login/?next=/dashboard/",
        data={
            "csrfmiddlewaretoken": token.group(1),
            "username": STAFF[0],
            "password": STAFF[1],
            "next": "/dashboard/",
        },
        headers={"Referer": f"{url}/admin/login/"},
    )
    assert response.status_code == 200, response.text[:500]
    assert response.url.path == "/dashboard/", response.url
    return client


@pytest.fixture(scope="module")
def sqlite_staff(sqlite_stack: ComposeProject) -> Iterator[httpx.Client]:
    create_staff(sqlite_stack, "web")
    with closing(staff_login(sqlite_stack.url("web"))) as client:
        yield client


def install_ssh_key(project: ComposeProject, runner: str, sshd) -> None:
    """An existing private key onto the pobsync-ssh volume, as docs/docker.md tells
    operators (docker cp: owned by root, mode 0600 kept)."""
    project.copy_into(runner, sshd.client_key_path, "/opt/pobsync/ssh/id_ed25519")


def trust_host(project: ComposeProject, runner: str, host: str, sshd, tmp_path: Path) -> None:
    """`pobsync trust-host --fingerprint` in the runner: the fingerprint comes from the
    server's side (as an operator reads it on the remote), the key from ssh-keyscan."""
    line = tmp_path / "sshd_host_key"
    line.write_text(sshd.host_key_line + "\n")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(line)], capture_output=True, text=True, check=True
    ).stdout
    fingerprint = listed.split()[1]
    out = project.exec(runner, "pobsync", "trust-host", host, "--fingerprint", fingerprint)
    assert fingerprint in out


def queue_backups(
    project: ComposeProject,
    runner: str,
    hosts: list[str],
    source: Path,
    sshd,
    tmp_path: Path,
    *host_options: str,
) -> None:
    """What an operator does in the runner container: key, global configuration, hosts
    (all behind the test's sshd), trust the sshd's key, queue one backup per host."""
    install_ssh_key(project, runner, sshd)
    project.exec(runner, "pobsync", "configure-global", "--backup-root", BACKUP_ROOT)
    for host in hosts:
        project.exec(
            runner,
            "pobsync",
            "configure-host",
            host,
            "--address",
            "127.0.0.1",
            "--port",
            str(sshd.port),
            "--user",
            sshd.user,
            "--source",
            str(source),
            *host_options,
        )
    trust_host(project, runner, hosts[0], sshd, tmp_path)  # one sshd serves them all
    for host in hosts:
        project.exec(runner, "pobsync", "enqueue", host)


def wait_for_jobs(client: httpx.Client, count: int, timeout: float = 180) -> list[dict]:
    """Poll /api/jobs/ until `count` jobs are finished; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = client.get("/api/jobs/").json()["results"]
        done = [j for j in jobs if j["state"] in {"succeeded", "failed", "cancelled"}]
        if len(done) >= count:
            return done
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not finished within {timeout:.0f} s: {jobs}")
        time.sleep(1)


def test_it_brings_up_the_sqlite_stack_healthy(sqlite_stack: ComposeProject) -> None:
    # migrate ran once, to completion, before the others started
    (migrate,) = sqlite_stack.run("ps", "-a", "-q", "migrate").stdout.split()
    state = sqlite_stack.engine.run(
        ["docker", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", migrate]
    ).stdout.split()
    assert state == ["exited", "0"]
    for service in SQLITE_SERVICES:
        (only,) = sqlite_stack.states(service)
        assert only["Health"]["Status"] == "healthy"


def test_it_answers_status_401_anonymous_and_200_for_staff(
    sqlite_stack: ComposeProject, sqlite_staff: httpx.Client
) -> None:
    anonymous = httpx.get(f"{sqlite_stack.url('web')}/api/status/", timeout=30)
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"error"}
    response = sqlite_staff.get("/api/status/")
    assert response.status_code == 200
    status = response.json()
    assert status["database"] == {"reachable": True, "vendor": "sqlite"}
    assert status["scheduler"]["alive"] is True
    assert status["runners"]["alive"] is True


def test_it_lets_staff_reach_the_dashboard(sqlite_staff: httpx.Client) -> None:
    page = sqlite_staff.get("/dashboard/")
    assert page.status_code == 200
    assert "pobsync" in page.text
    static = sqlite_staff.get("/static/pobsync_web/pobsync.css")
    assert static.status_code == 200  # collected at build time, served by whitenoise


def test_it_runs_a_queued_backup_in_the_runner_container(
    sqlite_stack: ComposeProject, sqlite_staff: httpx.Client, sshd, tmp_path: Path
) -> None:
    source = tmp_path / "srv"
    (source / "etc").mkdir(parents=True)
    (source / "etc" / "hostname").write_text("box-one\n")
    (source / "notes.txt").write_text("pulled through a container\n")
    project = sqlite_stack
    queue_backups(project, "runner", ["box-one"], source, sshd, tmp_path)

    (job,) = wait_for_jobs(sqlite_staff, 1)
    assert job["state"] == "succeeded", f"{job}\n{project.logs('runner')}"
    assert job["worker_id"]
    (run,) = sqlite_staff.get("/api/runs/", params={"host": "box-one"}).json()["results"]
    assert run["outcome"] == "success", run
    snapshot = project.volume_path("pobsync-backups") / "box-one" / run["snapshot_name"]
    copied = snapshot / str(source).lstrip("/")
    assert (copied / "notes.txt").read_text() == "pulled through a container\n"
    assert (copied / "etc" / "hostname").read_text() == "box-one\n"
    # The root runner wrote to SQLite, yet every database file still belongs to the
    # unprivileged user web and scheduler run as (SQLite hands -wal/-shm to the owner).
    owners = {p.name: p.stat().st_uid for p in project.volume_path("pobsync-sqlite").iterdir()}
    assert set(owners.values()) == {10001}, owners


def test_it_scales_runners_on_mariadb(
    project: ComposeProject, sshd, tmp_path: Path, sqlite_stack: ComposeProject
) -> None:
    # One stack at a time keeps the 2-core machine responsive.
    project.run("stop", *SQLITE_SERVICES)
    project.run(
        "--profile",
        "mariadb",
        "up",
        "--build",
        "--detach",
        "--scale",
        "runner-mariadb=2",
        *MARIADB_SERVICES,
        timeout=900,
    )
    project.wait_healthy(MARIADB_SERVICES[:2])
    project.wait_healthy(["runner-mariadb"], replicas=2)
    create_staff(project, "web-mariadb")
    # The SQLite stack marked the shared backup volume for its own database; this one
    # takes it over, as docs/docker.md tells an operator switching to MariaDB.
    project.run(
        "exec", "-T", "runner-mariadb", "pobsync", "configure-global",
        "--backup-root", BACKUP_ROOT, check=False,
    )  # fmt: skip
    project.exec("runner-mariadb", "pobsync", "storage", "mark", "default", "--take-over")

    # Four hosts whose pulls take a few seconds each (--bwlimit), so both runners work.
    source = tmp_path / "bulk"
    source.mkdir()
    (source / "blob").write_bytes(os.urandom(1536 * 1024))
    hosts = [f"scaled-{n}" for n in range(4)]
    queue_backups(
        project, "runner-mariadb", hosts, source, sshd, tmp_path, "--rsync-option=--bwlimit=512"
    )

    with closing(staff_login(project.url("web-mariadb"))) as client:
        status = client.get("/api/status/").json()
        assert status["database"]["vendor"] == "mysql"
        assert status["runners"]["processes"] == 2
        jobs = wait_for_jobs(client, len(hosts))
    assert {j["state"] for j in jobs} == {"succeeded"}, jobs
    workers = {j["worker_id"] for j in jobs}
    assert len(workers) == 2, workers
    containers = project.container_ids("runner-mariadb")
    assert len(containers) == 2


def test_it_creates_no_bridge_network_and_tears_down(project: ComposeProject) -> None:
    engine = project.engine
    bridges = engine.run(["docker", "network", "ls", "--filter", "driver=bridge", "-q"]).stdout
    assert bridges.split() == []
    networks = set(engine.run(["docker", "network", "ls", "-q"]).stdout.split())
    assert networks == project.networks_before

    project.run("--profile", "mariadb", "down", "-v", "--remove-orphans")
    label = f"label=com.docker.compose.project={project.name}"
    assert engine.run(["docker", "ps", "-a", "-q", "--filter", label]).stdout.split() == []
    assert engine.run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split() == []


def test_it_keeps_secrets_out_of_the_images(project: ComposeProject) -> None:
    for image in ("pobsync-web:local", "pobsync-scheduler:local", "pobsync-runner:local"):
        config = project.engine.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Env}}", image]
        ).stdout
        assert "SECRET" not in config and "PASSWORD" not in config, config
        listing = project.engine.run(
            ["docker", "run", "--rm", "--network", "host", "--entrypoint", "ls", image]
            + ["-A", "/opt/pobsync"]
        ).stdout
        assert "secret_key" not in listing
