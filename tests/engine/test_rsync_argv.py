"""The rsync and ssh command lines pobsync builds (argv lists, never shell strings)."""

from __future__ import annotations

from pathlib import Path

from pobsync_models.specs import HostSpec, SshSpec
from pobsync_runner.rsync import receive_in_place, rsync_argv
from pobsync_runner.ssh import host_pattern, remote_prefix, rsync_rsh, ssh_argv


def spec(**kw) -> HostSpec:
    ssh = SshSpec(
        user=kw.pop("user", "backup"),
        address=kw.pop("address", "web1.example.org"),
        port=kw.pop("port", 2222),
        key_path=Path(kw.pop("key", "/var/lib/pobsync/ssh/id_ed25519")),
        known_hosts_path=Path("/var/lib/pobsync/ssh/known_hosts"),
        connect_timeout=7,
    )
    kw.setdefault("sources", ("/etc", "/home/alice"))
    return HostSpec(name="web1", ssh=ssh, backup_root=Path("/backups"), **kw)


def test_it_builds_the_ssh_options_pobsync_promises():
    argv = ssh_argv(spec().ssh)
    joined = " ".join(argv)
    for option in (
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/var/lib/pobsync/ssh/known_hosts",
        "ConnectTimeout=7",
        "ServerAliveInterval=15",
        "IdentitiesOnly=yes",
    ):
        assert option in argv, option
    assert "-p 2222" in joined and "-i /var/lib/pobsync/ssh/id_ed25519" in joined
    assert "StrictHostKeyChecking=no" not in joined and "accept-new" not in joined


def test_it_keeps_partial_files_in_the_staging_directory_unless_inplace():
    dest = Path("/backups/web1/2026-11-28T020000Z.partial")
    argv = rsync_argv(spec(), dest)
    assert f"--partial-dir={dest}/.pobsync-partial" in argv
    assert "--filter=P /.pobsync-partial" in argv  # a seeded --delete-excluded keeps it
    assert "--exclude=/.pobsync-partial" in argv  # never from the remote
    assert argv.index("--exclude=/.pobsync-partial") < argv.index(f"{dest}/")
    inplace = rsync_argv(spec(rsync_options=("--inplace",)), dest)
    # rsync refuses --partial-dir beside --inplace; the remote still never supplies it.
    assert [a for a in inplace if ".pobsync-partial" in a] == ["--exclude=/.pobsync-partial"]


def test_a_full_backup_into_a_fresh_directory_writes_in_place():
    dest = Path("/backups/web1/2026-11-28T020000Z.partial")
    base = Path("/backups/web1/2026-11-27T020000Z")
    assert receive_in_place(spec(), None, seeded=False)
    argv = rsync_argv(spec(), dest, in_place=True)
    assert argv.count("--inplace") == 1
    assert [a for a in argv if ".pobsync-partial" in a] == ["--exclude=/.pobsync-partial"]
    # Never where a file could be a hard link into an older snapshot or a seed's file.
    assert not receive_in_place(spec(), base, seeded=False)
    assert not receive_in_place(spec(), None, seeded=True)
    # An older remote refuses --sparse beside --inplace; the host's own --inplace stays.
    assert not receive_in_place(spec(rsync_options=("--sparse",)), None, seeded=False)
    assert not receive_in_place(spec(rsync_options=("-S",)), None, seeded=False)
    assert not receive_in_place(spec(rsync_options=("--inplace",)), None, seeded=False)
    incremental = rsync_argv(spec(), dest, link_dest=base)
    assert "--inplace" not in incremental
    assert f"--partial-dir={dest}/.pobsync-partial" in incremental


def test_it_builds_an_rsync_argv_with_link_dest_excludes_and_options():
    s = spec(excludes=("*.tmp", "/var/cache"), rsync_options=("--bwlimit=5M", "-H"))
    argv = rsync_argv(s, Path("/backups/web1/N.partial"), link_dest=Path("/backups/web1/OLD"))
    assert argv[0] == "rsync"
    options = ("--archive", "--numeric-ids", "--modify-window=-1", "--relative", "--timeout=900")
    for option in (*options, "--stats"):
        assert option in argv
    assert "--link-dest=/backups/web1/OLD" in argv
    assert argv.index("--exclude=/.pobsync-snapshot.json") < argv.index("--exclude=*.tmp")
    assert "--exclude=/var/cache" in argv and "--bwlimit=5M" in argv and "-H" in argv
    assert argv[-3:] == [
        "backup@web1.example.org:/etc",
        "backup@web1.example.org:/home/alice",
        "/backups/web1/N.partial/",
    ]
    assert "--delete" not in argv


def test_it_deletes_stale_files_only_when_continuing_a_partial():
    argv = rsync_argv(spec(), Path("/b/N.partial"), seeded=True)
    assert "--delete" in argv and "--delete-excluded" in argv
    assert not any(a.startswith("--link-dest") for a in argv)


def test_it_quotes_paths_with_spaces_for_rsyncs_own_rsh_splitting():
    rsh = rsync_rsh(spec(key="/keys/my key's file").ssh)
    assert "-i '/keys/my key''s file'" in rsh


def test_it_brackets_ipv6_addresses_and_names_non_default_ports_like_ssh():
    assert remote_prefix(spec(address="2001:db8::1").ssh) == "backup@[2001:db8::1]:"
    assert host_pattern("10.0.0.5", 22) == "10.0.0.5"
    assert host_pattern("10.0.0.5", 2222) == "[10.0.0.5]:2222"


def test_it_keeps_the_dumps_directory_out_of_rsyncs_reach_and_adds_the_bandwidth_limit():
    argv = rsync_argv(spec(bwlimit="5M", rsync_options=("--bwlimit=1M",)), Path("/b/x.partial"))
    assert "--exclude=/_dumps" in argv
    # the host's explicit rsync option comes later, so it wins (rsync takes the last)
    assert argv.index("--bwlimit=5M") < argv.index("--bwlimit=1M")
    assert not any(a.startswith("--bwlimit") for a in rsync_argv(spec(), Path("/b/x.partial")))


def test_a_source_pulled_beside_its_base_names_its_leaf_and_its_parents_only():
    from pobsync_runner.beside_base import MOUNTPOINT, SourcePull

    s = spec(sources=("/srv/app/data",), excludes=("*.tmp", "/srv/app/data/cache"))
    one = SourcePull(("srv", "app"), "data", ["*.tmp", "/data/cache"])
    one.incoming = ".pobsync-incoming-" + "0" * 32
    argv = rsync_argv(
        s,
        Path(MOUNTPOINT) / one.incoming,
        link_dest=Path(MOUNTPOINT),
        transfer_log=Path("/backups/web1/.x.0.transfer.log"),
        pull=one,
    )
    assert argv[-3:] == [
        "backup@web1.example.org:/srv/app/./data",  # names start at the leaf: data/...
        "backup@web1.example.org:/./srv/app",  # the parents' own directories
        f"{MOUNTPOINT}/{one.incoming}/",
    ]
    assert "--relative" in argv and f"--link-dest={MOUNTPOINT}" in argv
    own = ("pobsync", "_dumps")  # pobsync's own names, anchored at the snapshot root
    excludes = [a for a in argv if a.startswith("--exclude=") and not any(o in a for o in own)]
    assert excludes == ["--exclude=/srv/app/*", "--exclude=*.tmp", "--exclude=/data/cache"]
    assert f"--partial-dir={MOUNTPOINT}/{one.incoming}/.pobsync-partial" in argv
    top = SourcePull((), "etc", [])
    assert top.remote_args("h:") == ["h:/./etc"] and top.parent_only_exclude() == []


def test_ssh_prefers_aes_gcm_only_where_the_cpu_has_aes(tmp_path):
    from pobsync_runner.ssh import AES_GCM_FIRST, cpu_has_aes

    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 aes avx2\n\nprocessor\t: 1\n")
    pi4 = tmp_path / "pi4"
    pi4.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd aes pmull sha1 sha2 crc32\n")
    lookalike = tmp_path / "lookalike"
    lookalike.write_text("flags\t\t: fpu vaes_only aes-ni\n")
    assert cpu_has_aes(str(x86)) and cpu_has_aes(str(arm))
    assert not cpu_has_aes(str(pi4)) and not cpu_has_aes(str(lookalike))
    assert not cpu_has_aes(str(tmp_path / "missing"))
    # the same ciphers as OpenSSH's default list, reordered: nothing weaker offered
    assert sorted(AES_GCM_FIRST.split(",")) == sorted(
        "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
        "aes128-gcm@openssh.com,aes256-gcm@openssh.com".split(",")
    )


def test_pobsync_ssh_ciphers_chooses_the_ciphers_ssh_offers(settings):
    from pobsync_runner.ssh import AES_GCM_FIRST, cipher_options, cpu_has_aes

    settings.POBSYNC_SSH_CIPHERS = "auto"
    assert cipher_options() == (["-o", f"Ciphers={AES_GCM_FIRST}"] if cpu_has_aes() else [])
    settings.POBSYNC_SSH_CIPHERS = "ssh"
    assert cipher_options() == []
    assert not [a for a in ssh_argv(spec().ssh) if a.startswith("Ciphers=")]
    settings.POBSYNC_SSH_CIPHERS = "chacha20-poly1305@openssh.com,aes128-ctr"
    assert ssh_argv(spec().ssh)[-2:] == ["-o", "Ciphers=chacha20-poly1305@openssh.com,aes128-ctr"]
    assert "Ciphers=" not in rsync_rsh(spec().ssh, ciphers=False)


def test_auto_offers_only_the_ciphers_this_ssh_knows(settings, monkeypatch):
    """An ssh built without OpenSSL has no AES-GCM and would refuse a list naming it:
    auto then leaves ssh's own order alone."""
    from pobsync_runner import ssh as ssh_mod

    settings.POBSYNC_SSH_CIPHERS = "auto"
    monkeypatch.setattr(ssh_mod, "cpu_has_aes", lambda: True)
    without_openssl = frozenset({"chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"})
    monkeypatch.setattr(ssh_mod, "client_ciphers", lambda: without_openssl)
    assert ssh_mod.cipher_options() == []
    monkeypatch.setattr(ssh_mod, "client_ciphers", lambda: frozenset())  # ssh -Q failed
    assert ssh_mod.cipher_options() == []
    with_gcm = without_openssl | {"aes256-gcm@openssh.com"}
    monkeypatch.setattr(ssh_mod, "client_ciphers", lambda: with_gcm)
    assert ssh_mod.cipher_options() == [
        "-o", "Ciphers=aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"
    ]  # fmt: skip
    monkeypatch.setattr(ssh_mod, "cpu_has_aes", lambda: False)
    assert ssh_mod.cipher_options() == []


def test_the_real_sshd_negotiates_the_cipher_pobsync_prefers(sshd):
    """Over the real sshd: AES-GCM where this CPU has AES instructions, else ssh's own
    first choice; the benchmarks' plain copy (ciphers=False) keeps ssh's default."""
    import subprocess

    from pobsync_runner.ssh import cpu_has_aes

    ssh = SshSpec(user=sshd.user, address="127.0.0.1", port=sshd.port,
                  key_path=sshd.client_key_path, known_hosts_path=sshd.known_hosts_path,
                  connect_timeout=5)  # fmt: skip

    def negotiated(ciphers: bool) -> str:
        argv = [*ssh_argv(ssh, ciphers=ciphers), "-v", f"{sshd.user}@127.0.0.1", "true"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = [ln for ln in out.stderr.splitlines() if "kex: server->client cipher:" in ln]
        assert len(lines) == 1, out.stderr
        return lines[0].split("cipher: ")[1].split()[0]

    config = subprocess.run(
        ["ssh", "-F", "none", "-G", "127.0.0.1"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=True,
    ).stdout
    ssh_first = next(ln.split()[1] for ln in config.splitlines() if ln.startswith("ciphers "))
    ssh_first = ssh_first.split(",")[0]  # this sshd is the same OpenSSH: it has them all
    assert negotiated(False) == ssh_first
    assert negotiated(True) == ("aes128-gcm@openssh.com" if cpu_has_aes() else ssh_first)


def test_the_transfer_log_goes_to_a_file_or_to_stdout():
    dest, log = Path("/backups/web1/N.partial"), Path("/backups/web1/.N.transfer.log")
    to_file = rsync_argv(spec(), dest, transfer_log=log)
    assert f"--log-file={log}" in to_file and "--debug=NSTR" in to_file
    assert not [a for a in to_file if a.startswith("--out-format")]
    on_stdout = rsync_argv(spec(), dest, transfer_log=log, log_on_stdout=True)
    assert "--out-format=@pobsync|%i|%l|%C|%n" in on_stdout and "--debug=NSTR" in on_stdout
    assert not [a for a in on_stdout if a.startswith("--log-file")]
