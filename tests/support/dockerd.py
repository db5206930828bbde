"""A private Docker engine without any bridge network, and a locally made base image, for
the compose test (tests/containers/). Nothing is pulled from a registry.

    with running_dockerd() as engine:
        image = base_image(engine)          # debootstrap bookworm, cached by content key
        engine.run(["docker", "images"])

The engine keeps its data under STATE_DIR (default /var/lib/pobsync-test, override with
POBSYNC_TEST_DOCKER_STATE) so the base image and the build cache survive between runs;
a lock file there keeps two test runs from sharing one engine. It is started with
`--iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false`
(containers use the host network; the machine's firewall and routing stay untouched)
and stopped by its pid on exit.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.need import need

STATE_DIR = Path(os.environ.get("POBSYNC_TEST_DOCKER_STATE", "/var/lib/pobsync-test"))
# A short path: the engine's socket path must stay under the 108-byte limit.
EXEC_ROOT = Path(os.environ.get("POBSYNC_TEST_DOCKER_EXEC_ROOT", "/run/pobsync-test-docker"))
PACKAGES = ("docker.io", "docker-compose", "debootstrap")
TOOLS = ("dockerd", "docker", "docker-compose", "debootstrap")

BASE_SUITE = "bookworm"
BASE_INCLUDE = (
    "python3",
    "python3-venv",
    "python3-pip",
    "rsync",
    "openssh-client",
    "ca-certificates",
)
BASE_RECIPE_VERSION = "1"  # bump to force a rebuild when the recipe below changes
CA_DIR = Path("/usr/local/share/ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass
class DockerEngine:
    host: str  # DOCKER_HOST, unix:///.../docker.sock
    pid: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 300,
        check: bool = True,
        input_bytes: bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a docker/docker-compose argv against this engine; output captured."""
        result = subprocess.run(
            list(argv),
            env={**self.env, **(env or {})},
            cwd=cwd,
            capture_output=True,
            timeout=timeout,
            check=False,
            input=input_bytes,
        )
        out = result.stdout.decode(errors="replace")
        err = result.stderr.decode(errors="replace")
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n"
                f"--- stdout\n{out[-6000:]}\n--- stderr\n{err[-6000:]}"
            )
        return subprocess.CompletedProcess(result.args, result.returncode, out, err)


def ensure_docker_tools() -> None:
    """Install Debian's docker.io, docker-compose and debootstrap when missing (as root)."""
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
            check=False,
            env=env,
            timeout=900,
        )
        missing = [
            t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()
        ]
    need(not missing, f"missing {', '.join(missing)} (apt-get install {' '.join(PACKAGES)})")
    need(os.geteuid() == 0, "the compose test starts its own dockerd and needs root")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pid: int, timeout: float = 30) -> None:
    """Stop a dockerd that is not our child (a crashed earlier run's)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _stale_engine_pid(pid_file: Path, data_root: Path) -> int | None:
    """The pid of a dockerd left running on our data root by a crashed earlier run."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if cmdline and cmdline[0].endswith(b"dockerd") and str(data_root).encode() in cmdline:
        return pid
    return None


@contextmanager
def running_dockerd() -> Iterator[DockerEngine]:
    ensure_docker_tools()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    EXEC_ROOT.mkdir(parents=True, exist_ok=True)
    data_root = STATE_DIR / "docker"
    pid_file = EXEC_ROOT / "dockerd.pid"
    socket_path = EXEC_ROOT / "docker.sock"
    log_path = STATE_DIR / "dockerd.log"
    with open(STATE_DIR / "engine.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            need(False, f"another compose test holds {STATE_DIR}/engine.lock")
        stale = _stale_engine_pid(pid_file, data_root)
        if stale is not None:
            _stop(stale)  # ours (same data root, and we hold the lock): a crashed run's
        argv = [
            "dockerd",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--ip-forward=false",
            "--ip-masq=false",
            f"--data-root={data_root}",
            f"--exec-root={EXEC_ROOT}",
            f"--pidfile={pid_file}",
            f"--host=unix://{socket_path}",
            # Own namespaces in case a system containerd serves a system dockerd too.
            "--containerd-namespace=pobsync-test",
            "--containerd-plugins-namespace=pobsync-test-plugins",
        ]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{socket_path}",
            "COMPOSE_HTTP_TIMEOUT": "300",
        }
        engine = DockerEngine(f"unix://{socket_path}", process.pid, log_path, env)
        try:
            deadline = time.monotonic() + 60
            while engine.run(["docker", "version"], check=False, timeout=30).returncode != 0:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"dockerd did not start:\n{tail}")
                time.sleep(0.3)
            yield engine
        finally:
            process.terminate()  # by its pid; dockerd stops its own containerd
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def apt_mirror() -> str:
    """The Debian mirror apt already uses on this machine (deb822 or one-line format)."""
    candidates: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
    sources_list = Path("/etc/apt/sources.list")
    if sources_list.exists():
        for line in sources_list.read_text(errors="replace").splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb":
                candidates.append(next(w for w in words[1:] if not w.startswith("[")))
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return DEFAULT_MIRROR


def _ca_certificates() -> list[Path]:
    return sorted(CA_DIR.glob("**/*.crt")) if CA_DIR.is_dir() else []


def base_image_key(mirror: str) -> str:
    """Content key of the base image: the recipe, the mirror and the CA certificates."""
    digest = hashlib.sha256()
    for part in (BASE_RECIPE_VERSION, BASE_SUITE, mirror, *BASE_INCLUDE):
        digest.update(part.encode() + b"\0")
    for cert in _ca_certificates():
        digest.update(cert.name.encode() + b"\0" + cert.read_bytes())
    return digest.hexdigest()[:16]


def base_image(engine: DockerEngine) -> str:
    """`pobsync-test-base:<key>`: Debian bookworm minbase with Python 3.11, venv, pip,
    rsync, openssh-client and this machine's CA certificates (so pip inside a build
    trusts the same TLS as the host). Built once; later runs find it by its key."""
    mirror = apt_mirror()
    tag = f"pobsync-test-base:{base_image_key(mirror)}"
    if engine.run(["docker", "image", "inspect", tag], check=False).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(dir=STATE_DIR, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_INCLUDE)}",
                BASE_SUITE,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"debootstrap failed ({result.returncode}):\n"
                f"{result.stdout.decode(errors='replace')[-3000:]}"
            )
        target = rootfs / CA_DIR.relative_to("/")
        target.mkdir(parents=True, exist_ok=True)
        for cert in _ca_certificates():
            shutil.copy2(cert, target / cert.name)
        subprocess.run(
            ["chroot", str(rootfs), "update-ca-certificates"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftovers).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", tag],
            stdin=tar.stdout,
            env=engine.env,
            capture_output=True,
            timeout=600,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr.decode()[-2000:]}")
    return tag


def pip_build_args() -> dict[str, str]:
    """This machine's pip settings that make sense inside a build (http(s) indexes, the
    CA bundle path, the timeout), as Docker build arguments. file:// indexes and
    find-links directories exist only on the host and are left out."""
    args: dict[str, str] = {}
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT"):
        value = os.environ.get(name, "")
        urls = [v for v in value.split() if not v.startswith("file:")]
        if urls:
            args[name] = " ".join(urls)
    # The base image's own bundle, which update-ca-certificates filled in with this
    # machine's certificates.
    args["PIP_CERT"] = "/etc/ssl/certs/ca-certificates.crt"
    for key, arg in (
        ("global.index-url", "PIP_INDEX_URL"),
        ("global.extra-index-url", "PIP_EXTRA_INDEX_URL"),
    ):
        if arg in args:
            continue
        value = _pip_config(key)
        urls = [v for v in value.split() if v.startswith(("http://", "https://"))]
        if urls:
            args[arg] = " ".join(urls)
    return args


def _pip_config(key: str) -> str:
    pip = shutil.which("pip3") or shutil.which("pip")
    if pip is None:
        return ""
    result = subprocess.run(
        [pip, "config", "get", key], capture_output=True, text=True, check=False, timeout=30
    )
    return result.stdout.strip() if result.returncode == 0 else ""
