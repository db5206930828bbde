"""Drive pobsync's compose.yaml with docker-compose (v1, as Debian ships it) on a private
engine, with every service on the host network (tests/support/dockerd.py).

The CI override made by `host_network_override` is the only difference from what a user
runs: it replaces compose.override.yaml (no port mappings: with the host network each
web service binds its own 127.0.0.1 port instead), builds with the host network and
this machine's pip settings, points the mariadb profile at the machine's MariaDB, and
shortens the health check intervals so "healthy" comes in seconds, not half a minute.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.dockerd import DockerEngine

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"


def compose_services() -> dict[str, dict[str, Any]]:
    """The services of compose.yaml, anchors resolved (profile ones included)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def host_network_override(
    *,
    web_ports: dict[str, int],
    mariadb_url: str,
    base_image: str,
    build_args: dict[str, str],
) -> dict[str, Any]:
    services = compose_services()
    names = sorted(services)
    override: dict[str, Any] = {}
    for name, spec in services.items():
        entry: dict[str, Any] = {
            "network_mode": "host",
            "extra_hosts": [f"{other}:127.0.0.1" for other in names],
        }
        if "build" in spec:
            entry["build"] = {"network": "host", "args": build_args}
        environment: dict[str, str] = {}
        if name in web_ports:
            environment["POBSYNC_WEB_BIND"] = f"127.0.0.1:{web_ports[name]}"
            entry["healthcheck"] = {"interval": "3s", "timeout": "10s"}
        if name.endswith("-mariadb"):
            environment["DATABASE_URL"] = mariadb_url
        if name.startswith(("scheduler", "runner")):
            entry["healthcheck"] = {"interval": "5s", "timeout": "20s"}
        if name.startswith("runner"):
            # Poll every second so the scaling test does not wait on idle runners.
            entry["command"] = ["pobsync", "runner", "--loop", "--interval", "1"]
        # Worker ids are "hostname:pid" and pids inside containers are small and alike,
        # so on the host network (which would give every container the machine's
        # hostname) each service gets its own hostname, and the replicas of the scaled
        # runner share the host's pid namespace to stay distinct.
        entry["hostname"] = f"{name}.pobsync-test"
        if name == "runner-mariadb":
            entry["pid"] = "host"
        if environment:
            entry["environment"] = environment
        override[name] = entry
    # The machine's MariaDB stands in for the mariadb image: a placeholder container
    # (our base image, no pull) that is healthy once 127.0.0.1:3306 accepts connections.
    override["mariadb"].update(
        {
            "image": base_image,
            "command": ["sleep", "infinity"],
            "init": True,
            "healthcheck": {
                "test": [
                    "CMD",
                    "python3",
                    "-c",
                    "import socket; socket.create_connection(('127.0.0.1', 3306), 2)",
                ],
                "interval": "2s",
                "timeout": "5s",
                "retries": 10,
                "start_period": "0s",
            },
        }
    )
    return {"services": override}


@dataclass
class ComposeProject:
    engine: DockerEngine
    name: str
    files: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    web_ports: dict[str, int] = field(default_factory=dict)  # service -> 127.0.0.1 port
    networks_before: set[str] = field(default_factory=set)  # engine's networks at start

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.web_ports[service]}"

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, input_bytes: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = ["docker-compose", "--project-name", self.name]
        for path in self.files:
            argv += ["--file", str(path)]
        argv += ["--project-directory", str(REPO), *args]
        return self.engine.run(
            argv,
            timeout=timeout,
            check=check,
            input_bytes=input_bytes,
            env=self.env,
            cwd=REPO,
        )

    def exec(self, service: str, *argv: str, index: int = 1, timeout: float = 120) -> str:
        """Run argv in a running container of service; its stdout."""
        return self.run("exec", "-T", "--index", str(index), service, *argv, timeout=timeout).stdout

    def container_ids(self, service: str) -> list[str]:
        out = self.run("--profile", "mariadb", "ps", "-q", service).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def states(self, service: str) -> list[dict[str, Any]]:
        ids = self.container_ids(service)
        if not ids:
            return []
        out = self.engine.run(["docker", "inspect", "--format", "{{json .State}}", *ids]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, *services: str) -> str:
        result = self.run("--profile", "mariadb", "logs", "--no-color", "--tail", "60", *services)
        return result.stdout[-8000:]

    def wait_healthy(self, services: list[str], *, replicas: int = 1, timeout: float = 240) -> None:
        """Wait until every container of services reports healthy; fail early when one
        exits or restarts, with its logs."""
        deadline = time.monotonic() + timeout
        pending = list(services)
        while pending:
            for service in list(pending):
                states = self.states(service)
                for state in states:
                    if not state.get("Running") or state.get("Restarting"):
                        raise AssertionError(
                            f"{service} is not running ({state.get('Status')}, exit code "
                            f"{state.get('ExitCode')}):\n{self.logs(service)}"
                        )
                healthy = [s for s in states if s.get("Health", {}).get("Status") == "healthy"]
                if len(healthy) >= replicas:
                    pending.remove(service)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not healthy within {timeout:.0f} s: {pending}\n{self.logs(*pending)}"
                )
            time.sleep(1)

    def volume_path(self, volume: str) -> Path:
        """Where the engine keeps a named volume of this project (we are root)."""
        out = self.engine.run(
            ["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", f"{self.name}_{volume}"]
        ).stdout
        return Path(out.strip())

    def copy_into(self, service: str, source: Path, target: str) -> None:
        """docker cp a host file into the first container of service (owned by root)."""
        container = self.container_ids(service)[0]
        self.engine.run(["docker", "cp", str(source), f"{container}:{target}"])
