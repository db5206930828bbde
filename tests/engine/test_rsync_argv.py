"""The rsync and ssh command lines pobsync builds (argv lists, never shell strings)."""

from __future__ import annotations

from pathlib import Path

from pobsync_models.specs import HostSpec, SshSpec
from pobsync_runner.rsync import rsync_argv
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
    assert not [a for a in inplace if ".pobsync-partial" in a]  # rsync refuses both at once


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
