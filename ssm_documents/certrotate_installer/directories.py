"""Directories opened component by component from ``/``, each owned by root (or the installer's
user) and writable by nobody else, never through a link another user could have made; files read
relative to such a directory, never through a link."""

import contextlib
import errno
import os
import stat
from typing import List, NamedTuple, Optional, Sequence, Tuple

from .output import Exit, InstallError, refused

MAX_FILE_BYTES = 1 << 20


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def owners(euid: int) -> str:
    return "root" if euid == 0 else f"root or uid {euid}"


def check_directory(st: os.stat_result, path: str, euid: int, final: bool) -> None:
    """Pure: refuse a directory another user could change.

    A root-owned sticky directory (such as /tmp) is accepted above the final one: others may add
    names to it but cannot rename or remove the entries root or the installer's user own there.
    """
    if st.st_uid not in (0, euid):
        raise refused(
            f"{path} is owned by uid {st.st_uid}; every directory on the path must be owned by {owners(euid)}"
        )
    if st.st_mode & 0o022:
        if not final and st.st_uid == 0 and st.st_mode & stat.S_ISVTX:
            return
        raise refused(
            f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"nobody but {owners(euid)} may write there"
        )


class OpenedDirectory(NamedTuple):
    fd: int
    path: str  # resolved: no symbolic link in it
    identities: Tuple[Tuple[int, int], ...]  # (device, inode) of every directory from / to it


def open_directory(path: str, euid: int, create_mode: Optional[int] = None) -> int:
    """A descriptor on ``path`` (see ``walk_directory``)."""
    return walk_directory(path, euid, create_mode).fd


def walk_directory(path: str, euid: int, create_mode: Optional[int] = None) -> OpenedDirectory:  # noqa: PLR0915
    """``path`` opened component by component, each checked by ``check_directory``, O_NOFOLLOW.

    A symbolic link on the way (such as RHEL's /etc/ssl/certs) is followed only when root (or the
    installer's user) owns it and nobody else can replace it (its directory is writable by nobody
    else, or is root's sticky directory): a link another user planted (in /tmp) is refused. With
    ``create_mode`` a missing last component is created with that mode.

    Raises:
        InstallError: BAD_PARAMETER when it does not exist, REFUSED when it is not safe.
    """
    pending = [p for p in path.split("/") if p and p != "."]
    hops = 0
    while True:
        fd = os.open("/", _DIRECTORY_FLAGS)
        try:
            root = os.fstat(fd)
            check_directory(root, "/", euid, final=not pending)
            identities = [(root.st_dev, root.st_ino)]
            walked: List[str] = []
            restart: Optional[List[str]] = None
            for index, part in enumerate(pending):
                shown = "/" + "/".join([*walked, part])
                final = index == len(pending) - 1
                if part == "..":
                    restart = walked[:-1] + pending[index + 1 :]
                    break
                try:
                    child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not (final and create_mode is not None):
                        raise InstallError(Exit.BAD_PARAMETER, f"directory does not exist: {shown}") from None
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, create_mode, dir_fd=fd)
                    child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    link = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    parent = os.fstat(fd)
                    if not stat.S_ISLNK(link.st_mode):
                        raise refused(f"{shown} is not a directory") from None
                    sticky = parent.st_uid == 0 and parent.st_mode & stat.S_ISVTX  # only its owner can replace it
                    if link.st_uid not in (0, euid) or (parent.st_mode & 0o022 and not sticky):
                        raise refused(
                            f"{shown} is a symbolic link another user could have made; certrotate follows "
                            f"only links of {owners(euid)} in directories nobody else can write"
                        ) from None
                    hops += 1
                    if hops > 40:
                        raise refused(f"{shown}: too many levels of symbolic links") from None
                    target = os.readlink(part, dir_fd=fd)
                    base = [] if target.startswith("/") else walked
                    restart = base + [p for p in target.split("/") if p and p != "."] + pending[index + 1 :]
                    break
                os.close(fd)
                fd = child
                opened = os.fstat(fd)
                check_directory(opened, shown, euid, final)
                identities.append((opened.st_dev, opened.st_ino))
                walked.append(part)
            if restart is None:
                return OpenedDirectory(fd, "/" + "/".join(walked), tuple(identities))
            os.close(fd)
            pending = restart
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise


def is_within(path: str, directories: Sequence[str]) -> bool:
    """Pure: ``path`` equals one of ``directories`` or lies below one."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in directories)


def read_regular(
    dir_fd: int, name: str, shown: str, owner_must_be: Optional[Tuple[int, ...]] = None
) -> Optional[bytes]:
    """The bytes of ``name`` in ``dir_fd``, or None when absent; never through a link.

    Raises:
        InstallError: REFUSED for a link, a hard link, a non-regular or an oversized file.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise refused(f"{shown} is a symbolic link; certrotate never follows links")
    if not stat.S_ISREG(st.st_mode):
        raise refused(f"{shown} is not a regular file")
    if st.st_nlink != 1:
        raise refused(f"{shown} has {st.st_nlink} hard links; certrotate replaces only files with one name")
    if owner_must_be is not None and (st.st_uid not in owner_must_be or st.st_mode & 0o022):
        raise refused(f"{shown} must be owned by root and writable by nobody else")
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise refused(f"{shown} changed while it was checked")
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise refused(f"{shown} is larger than {MAX_FILE_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
