"""Source trees with every kind of entry a restore must bring back, and a manifest of a
tree's lstat fields and contents to compare two trees with."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import subprocess
from pathlib import Path

OTHER_UID, OTHER_GID = 4242, 4343


def build_tree(src: Path) -> None:
    """Odd names, links of every kind, sparse/empty files, modes, another owner."""
    (src / "dir with space").mkdir()
    (src / "dir with space" / "naïve résumé.txt").write_text("unicode\n")
    (src / "new\nline").write_text("newline in the name\n")
    (src / "etc").mkdir()
    (src / "etc" / "passwd").write_text("root:x:0:0\n")
    os.symlink("/etc/shadow", src / "etc" / "escape")  # points outside: kept as a link
    os.symlink("does-not-exist", src / "dangling")
    (src / "hard1").write_bytes(b"linked\n")
    os.link(src / "hard1", src / "etc" / "hard2")
    with open(src / "sparse.img", "wb") as f:
        f.truncate(8 * 1024 * 1024)
        f.seek(4096)
        f.write(b"data in the middle")
    (src / "empty").write_bytes(b"")
    (src / "secret").write_text("0600\n")
    os.chmod(src / "secret", 0o600)
    os.setxattr(src / "secret", "user.pobsync", b"kept")  # needs --xattrs on the host
    (src / "tool").write_text("#!/bin/sh\n")
    os.chmod(src / "tool", 0o4755)  # noqa: S103  (setuid survives a restore)
    (src / "other").write_text("owned by someone else\n")
    os.chown(src / "other", OTHER_UID, OTHER_GID)
    set_acl(src / "tool", user=OTHER_UID, perms=4)  # needs --acls on the host
    os.lchown(src / "dangling", OTHER_UID, OTHER_GID)
    os.utime(src / "etc" / "passwd", (1_600_000_000, 1_600_000_000))
    os.chmod(src / "etc", 0o750)  # noqa: S103


def set_acl(path: Path, *, user: int, perms: int) -> None:
    """An access ACL granting `user` `perms` (4 = r), written as the kernel's
    system.posix_acl_access blob (no `setfacl` needed): version 2, then (tag, perm, id)
    entries USER_OBJ, USER, GROUP_OBJ, MASK, OTHER, little-endian."""
    mode = path.stat().st_mode
    undefined = 0xFFFFFFFF
    entries = [
        (0x01, (mode >> 6) & 7, undefined),
        (0x02, perms, user),
        (0x04, (mode >> 3) & 7, undefined),
        (0x10, perms | ((mode >> 3) & 7), undefined),
        (0x20, mode & 7, undefined),
    ]
    blob = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, "system.posix_acl_access", blob)


def manifest(root: Path) -> dict[str, tuple]:
    """relpath -> (type, mode, uid, gid, size, mtime_ns, link target or (content hash,
    xattrs), hard-link group within the tree: links to files outside it do not count),
    from lstat; directories' own mtimes are left out (creating entries in them
    changes them)."""
    out: dict[str, tuple] = {}
    groups: dict[tuple[int, int], list[str]] = {}
    inode_of: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            extra: object = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(path.read_bytes()).hexdigest()
            if not stat.S_ISDIR(st.st_mode):
                groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            if not stat.S_ISLNK(st.st_mode):
                xattrs = sorted((n, os.getxattr(path, n)) for n in os.listxattr(path))
                extra = (extra, tuple(xattrs))
            inode_of[rel] = (st.st_dev, st.st_ino)
            out[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                mtime,
                extra,
            )
    for rel, key in inode_of.items():
        members = groups.get(key, [])
        out[rel] += (min(members) if len(members) > 1 else None,)
    return out


def damage(src: Path) -> None:
    subprocess.run(["rm", "-rf", str(src / "dir with space"), str(src / "etc")], check=True)
    (src / "hard1").unlink()
    (src / "secret").write_text("damaged\n")
    os.chmod(src / "tool", 0o644)
    (src / "dangling").unlink()
