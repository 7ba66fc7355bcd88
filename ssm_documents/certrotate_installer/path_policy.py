"""Where certrotate may write: the targets (three files, or one combined file), inside the
allow-list, outside every trust directory and bundle, each held by a descriptor on its checked
directory."""

import contextlib
import enum
import os
import ssl
from typing import FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from .directories import OpenedDirectory, is_within, read_regular, walk_directory
from .distro import DEBIAN_DIRS, Distro
from .host_file import HOST_CONFIG, HostConfig
from .output import Exit, InstallError

TRUST_DIRECTORIES = (
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/etc/pki/trust",
    "/etc/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/share/pki/ca-trust-source",
    "/usr/share/pki/trust",
    "/var/lib/ca-certificates",
)
# OS trust bundles outside those directories, by exact path (and by device and inode).
TRUST_FILES = ("/etc/ssl/cert.pem", "/etc/pki/tls/cert.pem", "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/ca-bundle.crt")


TARGET_SUFFIXES = (".pem", ".crt", ".cer", ".cert", ".key")


NEW_SUFFIX = ".certrotate-new"
UNDO_SUFFIX = ".certrotate-undo"
PREVIOUS_SUFFIX = ".certrotate-previous"


class TargetKind(enum.Enum):
    CERTIFICATE = ("CertificateFile", 0o644)
    KEY = ("KeyFile", 0o600)
    CHAIN = ("ChainFile", 0o644)
    COMBINED = ("CertificateFile", 0o600)  # certificate, chain and key in one file
    TRUST_BUNDLE = ("BundleFile", 0o644)  # a trust bundle's CA certificates (trust_run)
    CRL = ("CrlFile", 0o644)  # the server's CRL file (crl_run): the CRLs of its client-CA bundle's CAs

    @property
    def parameter(self) -> str:
        return str(self.value[0])

    @property
    def mode(self) -> int:
        return int(self.value[1])


class Target:
    """One file certrotate manages, held by a descriptor on its checked directory."""

    def __init__(self, kind: TargetKind, path: str, dir_fd: int) -> None:
        self.kind = kind
        self.path = path
        self.dir_fd = dir_fd
        self.name = os.path.basename(path)

    def __repr__(self) -> str:
        return f"Target({self.kind.name}, {self.path})"

    def sibling(self, suffix: str) -> str:
        return self.name + suffix

    def read(self, suffix: str = "") -> Optional[bytes]:
        return read_regular(self.dir_fd, self.name + suffix, self.path + suffix)

    def exists(self, suffix: str = "") -> bool:
        try:
            os.stat(self.name + suffix, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def remove(self, suffix: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name + suffix, dir_fd=self.dir_fd)

    def same_file(self, suffix_a: str, suffix_b: str) -> bool:
        try:
            a = os.stat(self.name + suffix_a, dir_fd=self.dir_fd, follow_symlinks=False)
            b = os.stat(self.name + suffix_b, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def write_new(self, data: bytes) -> None:
        """``NAME.certrotate-new``: created O_EXCL|O_NOFOLLOW with the final mode, synced."""
        self.remove(NEW_SUFFIX)  # a stale one from a crash before the journal existed
        fd = os.open(
            self.sibling(NEW_SUFFIX),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            self.kind.mode,
            dir_fd=self.dir_fd,
        )
        try:
            if os.geteuid() == 0:
                os.fchown(fd, 0, 0)
            os.fchmod(fd, self.kind.mode)  # whatever the umask
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, suffix_from: str, suffix_to: str) -> None:
        os.replace(self.name + suffix_from, self.name + suffix_to, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    def link(self, suffix_from: str, suffix_to: str) -> None:
        os.link(
            self.name + suffix_from,
            self.name + suffix_to,
            src_dir_fd=self.dir_fd,
            dst_dir_fd=self.dir_fd,
            follow_symlinks=False,
        )

    def sync_directory(self) -> None:
        os.fsync(self.dir_fd)


def default_files(distro: Distro) -> Tuple[str, str, str]:
    return (
        distro.cert_dir + "/certrotate.pem",
        distro.key_dir + "/certrotate.key",
        distro.cert_dir + "/certrotate-chain.pem",
    )


def check_target_name(kind: TargetKind, path: str, allowed: Sequence[str]) -> None:
    """Pure: where a target may be, from its resolved path and the allow-list.

    Raises:
        InstallError: BAD_PARAMETER naming the parameter, the value and what is allowed.
    """
    name = os.path.basename(path)
    if not is_within(os.path.dirname(path), allowed):
        raise InstallError(
            Exit.BAD_PARAMETER,
            "parameter {} {} is outside the allowed directories ({}; more only through {})".format(
                kind.parameter, path, ", ".join(allowed), HOST_CONFIG
            ),
        )
    if len(name) > 255 - max(len(NEW_SUFFIX), len(UNDO_SUFFIX), len(PREVIOUS_SUFFIX)):
        raise InstallError(
            Exit.BAD_PARAMETER, f"parameter {kind.parameter} {path}: the file name is too long for its work files"
        )
    suffixes = TARGET_SUFFIXES + ((".crl",) if kind is TargetKind.CRL else ())
    if not name.endswith(suffixes):
        raise InstallError(
            Exit.BAD_PARAMETER,
            "parameter {} {} must end with one of {}".format(kind.parameter, path, " ".join(suffixes)),
        )


class TrustStore(NamedTuple):
    """The directories and bundles the host's TLS clients trust, by path and by device and inode."""

    directories: Tuple[str, ...]
    files: Tuple[str, ...]
    identities: FrozenSet[Tuple[int, int]]  # (device, inode) of each that exists

    @classmethod
    def of_this_host(cls) -> "TrustStore":
        paths = ssl.get_default_verify_paths()
        directories = list(TRUST_DIRECTORIES)
        files = list(TRUST_FILES)
        for value, into in (
            (paths.capath, directories),
            (paths.openssl_capath, directories),
            (paths.cafile, files),
            (paths.openssl_cafile, files),
        ):
            if value and value not in into:
                into.append(value)
        identities = set()
        for entry in directories + files:
            with contextlib.suppress(OSError):
                st = os.stat(entry)  # following links: RHEL's /etc/ssl/certs -> /etc/pki/tls/certs
                identities.add((st.st_dev, st.st_ino))
        return cls(tuple(directories), tuple(files), frozenset(identities))

    def check_path(self, kind: TargetKind, path: str) -> None:
        """Pure: refuse a target whose path is in (or below) a trust directory or is a trust bundle.

        Raises:
            InstallError: BAD_PARAMETER.
        """
        self._check(kind, path, None, None)

    def check(self, kind: TargetKind, path: str, directory: OpenedDirectory, dir_fd: int) -> None:
        """Refuse a target in (or below) a trust directory or that is a trust bundle, by path and
        by device and inode (a bind mount or another name of the same directory or file).

        Raises:
            InstallError: BAD_PARAMETER.
        """
        self._check(kind, path, directory, dir_fd)

    def _check(self, kind: TargetKind, path: str, directory: Optional[OpenedDirectory], dir_fd: Optional[int]) -> None:
        hit = next((d for d in self.directories if is_within(os.path.dirname(path), [d])), None)
        if hit is None and path in self.files:
            hit = ""
        if hit is None and directory is not None and any(i in self.identities for i in directory.identities):
            hit = "a trust directory (the same directory by device and inode)"
        if hit:
            raise InstallError(
                Exit.BAD_PARAMETER,
                f"parameter {kind.parameter} {path} is in {hit}, which OpenSSL or the system's trust tooling "
                "reads (an OS trust bundle or CA directory: a certificate there becomes a trust anchor); "
                f"certrotate never writes there (its default directory is {DEBIAN_DIRS[0]})",
            )
        st = None
        if dir_fd is not None:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.basename(path), dir_fd=dir_fd, follow_symlinks=False)
        if hit is not None or (st is not None and (st.st_dev, st.st_ino) in self.identities):
            raise InstallError(
                Exit.BAD_PARAMETER,
                f"parameter {kind.parameter} {path} is an OS trust bundle; certrotate never touches it",
            )


def open_targets(
    files: Tuple[str, str, str],
    host: HostConfig,
    euid: int,
    trust: Optional[TrustStore] = None,
    combined: bool = False,
) -> List[Target]:
    """The three targets, each in a checked directory inside the allow-list and outside the trust
    store, all distinct by device and inode (a bind mount or another path to the same file or
    directory is the same target).

    Raises:
        InstallError: BAD_PARAMETER or REFUSED.
    """
    allowed = [os.path.realpath(d) for d in host.allowed]
    trust = trust or TrustStore.of_this_host()
    targets: List[Target] = []
    seen: List[Tuple[Target, Tuple[int, int, str], Optional[Tuple[int, int]]]] = []
    try:
        kinds = [(TargetKind.COMBINED, files[0])] if combined else list(zip(TargetKind, files))
        for kind, path in kinds:
            check_target_name(kind, path, [d for d in host.allowed] + allowed)
            directory = walk_directory(os.path.dirname(path), euid)
            resolved = os.path.join(directory.path, os.path.basename(path))
            target = Target(kind, resolved, directory.fd)
            targets.append(target)
            check_target_name(kind, resolved, allowed)
            trust.check(kind, resolved, directory, directory.fd)
            where = os.fstat(directory.fd)
            place = (where.st_dev, where.st_ino, target.name)
            identity: Optional[Tuple[int, int]] = None
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(target.name, dir_fd=directory.fd, follow_symlinks=False)
                identity = (st.st_dev, st.st_ino)
            for other, other_place, other_identity in seen:
                if place == other_place or (identity is not None and identity == other_identity):
                    raise InstallError(
                        Exit.BAD_PARAMETER,
                        f"parameter {kind.parameter} must name a different file than {other.kind.parameter}: "
                        f"{resolved} and {other.path} are the same file (same device and inode)",
                    )
            seen.append((target, place, identity))
        return targets
    except BaseException:
        for target in targets:
            os.close(target.dir_fd)
        raise


def target_files(targets: Sequence[Target]) -> Tuple[str, str, str]:
    """The certificate, key and chain paths (one path three times in the combined layout)."""
    paths = [target.path for target in targets]
    return (paths[0], paths[1 % len(paths)], paths[2 % len(paths)])
