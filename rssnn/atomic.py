"""Output files: checked before the work, written atomically, claimed against a second writer.

* :func:`check_output_file` runs before any expensive work: the target is not a folder, a device
  node, a FIFO or any other non-regular file, and its folder can take a file (a real probe, which
  leaves nothing behind, not even the folders it would create).
* :func:`atomic_write_bytes` writes beside the target and renames: a crash or kill at any point
  leaves the old file or the new one, never a partial one; a full disk or any other write error
  is one :class:`UserError` line, the temporary file removed. Temporary files are hidden
  (``.NAME.*.tmp``) so a later run can remove strays that a SIGKILL left behind.
* :func:`claim` takes an exclusive claim on a target for one command (a second export to the same
  file fails at once instead of silently replacing the first one's result).

Why a check of its own: ``os.replace`` over ``/dev/null`` as root replaces the device node
with a regular file; only an explicit ``lstat`` tells a regular file from a special one.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from rssnn.errors import UserError

_FILE_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def _non_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a symbolic link (which
    a rename replaces, leaving what it points to alone); None otherwise."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return None
    return _FILE_KINDS.get(stat.S_IFMT(mode), "a special file")


def _refuse_non_regular(path: Path, flag: str) -> None:
    kind = _non_regular(path)
    if kind == "a folder":
        raise UserError(f"{flag} '{path}' is a folder; give a file name inside it")
    if kind is not None:
        raise UserError(
            f"{flag} '{path}' is {kind}, not a regular file; rssnn-lava replaces only regular "
            f"files, so choose another {flag}"
        )


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """Refuse, with one line and before any work, a target that cannot be written.

    The nearest existing folder above ``path`` must accept a new entry (probed by creating and
    removing one); nothing is created that outlives the call.
    """
    path = Path(path)
    _refuse_non_regular(path, flag)
    missing = _missing_folders(path.parent)
    folder = missing[-1].parent if missing else path.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {flag} '{path}': '{folder}' is not a folder")
    try:
        if folder == path.parent:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
                pass
        else:  # the folders do not exist yet: probe that one can be made
            os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".rssnn-probe."))
    except OSError as exc:
        raise UserError(f"cannot write {flag} '{path}' ({_reason(exc)}); choose another {flag}") from exc
    return path


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """:func:`check_output_file` for a target that is a folder (a training run)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} '{path}' exists and is not a folder; give a folder for the run")
    check_output_file(path / "config.json", flag)
    return path


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync, then rename over it.

    A crash at any point leaves either the old file or the new one, never a partial file; an
    existing target that is not a regular file is refused; a write error (disk full, quota,
    read-only file system) becomes one :class:`UserError` line, the temporary file removed.
    """
    path = Path(path)
    _refuse_non_regular(path, "output")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary user files
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _refuse_non_regular(path, "output")  # made special while we wrote: still not replaced
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write '{path}' ({_reason(exc)}); nothing was written there") from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def atomic_save_figure(fig, path: str | Path, **savefig_kwargs) -> None:
    """``fig.savefig`` through :func:`atomic_write_bytes`: a full disk leaves no 0-byte image."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, format=fmt, **savefig_kwargs))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _make_folders(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, deepest first."""
    missing = _missing_folders(folder)
    for f in reversed(missing):
        f.mkdir(exist_ok=True)
    return missing


@contextmanager
def claim(path: str | Path, flag: str = "--out") -> Iterator[None]:
    """Hold an exclusive claim on ``path`` while the body runs (``.NAME.claim`` beside it,
    created with O_EXCL and holding our PID). A claim whose process is gone is taken over.
    Folders made to hold the claim are removed again if the body left them empty."""
    path = Path(path)
    lock = path.parent / f".{path.name}.claim"
    try:
        made = _make_folders(path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {flag} '{path}' ({_reason(exc)})") from exc
    try:
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and owner != os.getpid() and _pid_alive(owner):
                    raise UserError(
                        f"another command (PID {owner}) is writing {flag} '{path}' now; wait for "
                        f"it or choose another {flag}"
                    ) from None
                lock.unlink(missing_ok=True)  # left by a process that is gone
                continue
            except OSError as exc:
                raise UserError(f"cannot write {flag} '{path}' ({_reason(exc)})") from exc
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            break
        else:
            raise UserError(f"cannot claim {flag} '{path}': another command keeps taking it; try again")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: it holds what the command wrote


def install_no_clobber(src: str | Path, dst: str | Path, flag: str = "--out") -> None:
    """Rename ``src`` to ``dst`` only if ``dst`` does not exist (a hard link is atomic and fails
    on an existing name, unlike ``os.replace``)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise UserError(f"'{dst}' appeared while this command ran; add --force to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise UserError(f"cannot write {flag} '{dst}' ({_reason(exc)})") from exc
        # No hard links on this file system: the claim already keeps other exports away.
        if os.path.lexists(dst):
            raise UserError(f"'{dst}' appeared while this command ran; add --force to replace it") from None
        os.replace(src, dst)
        return
    os.unlink(src)


def check_export_targets(out: str | Path, force: bool, report: str | Path | None = None) -> Path:
    """An exporter's outputs, before any work: ``--out`` (and ``--verify-report``) writable, and
    ``--out`` new unless ``force`` (UserError, one line). Returns ``out`` as a Path."""
    out = check_output_file(out)
    if report:
        check_output_file(report, "--verify-report")
    if out.exists() and not force:
        raise UserError(f"'{out}' exists; add --force to replace it or choose another --out")
    return out


def export_partial(out: str | Path) -> Path:
    """This process's hidden temporary file beside ``out``; partial files that a killed export
    left there are removed (the caller holds the claim on ``out``, so none is live)."""
    out = Path(out)
    for stale in out.parent.glob(f".{out.name}.*.partial"):
        stale.unlink(missing_ok=True)
    return out.parent / f".{out.name}.{os.getpid()}.partial"


def install_export(partial: str | Path, out: str | Path, force: bool) -> None:
    """Move a finished ``partial`` file to ``out``: replacing it with ``force``, else never
    clobbering a file that appeared meanwhile (exports to one ``out`` wait on its claim)."""
    if force:
        os.replace(partial, out)
    else:
        install_no_clobber(partial, out)


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (the exporter records its source checkpoint's hash)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
