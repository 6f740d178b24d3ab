"""What a checkpoint file may hold before ``torch.load`` sees it: a plain state archive only.

``torch.load(weights_only=True)`` is not enough on torch < 2.6 (CVE-2025-32434): a zip that
looks like a TorchScript archive (it has ``constants.pkl``) is handed to ``torch.jit.load``,
which runs the archive's scripted ``__setstate__`` -- code from the file, able to write any file
through ``torch.from_file(..., shared=True)``. So the zip's entries are checked here, without
torch, against exactly what ``torch.save`` writes for a dict of tensors and plain data::

    PREFIX/data.pkl  PREFIX/data/<n>  PREFIX/version  PREFIX/byteorder  PREFIX/.data/<...>

one PREFIX, no other entry, nothing compressed (torch stores entries uncompressed, so no entry
can unpack to more than the file's size), no name twice. The caller hands ``torch.load`` the
very bytes checked here (``io.BytesIO``), so the file cannot change between check and load.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from rssnn.errors import UserError

MAX_ENTRIES = 1_000_000  # one per tensor storage; a VGG-11 checkpoint has a few hundred
_ENTRY = re.compile(r"(data\.pkl|version|byteorder|data/\d+|\.data/(version|serialization_id))")


def _refuse(path: Path, why: str) -> UserError:
    return UserError(
        f"checkpoint '{path}' {why}; it was not loaded (rssnn-lava reads only plain state "
        "archives written by torch.save: tensors and plain data)"
    )


def check_state_archive(data: bytes, path: str | Path) -> None:
    """Raise a one-line :class:`UserError` unless ``data`` is a plain ``torch.save`` zip."""
    path = Path(path)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise _refuse(path, "is corrupt or not a zip-format PyTorch file")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise _refuse(path, f"is a damaged zip ({exc.__class__.__name__})") from exc
    if not infos or len(infos) > MAX_ENTRIES:
        raise _refuse(path, f"has {len(infos)} zip entries")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise _refuse(path, "names one zip entry twice")
    prefixes = {name.split("/", 1)[0] for name in names}
    if len(prefixes) != 1:
        raise _refuse(path, f"has {len(prefixes)} top-level folders")
    prefix = prefixes.pop()
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        raise _refuse(path, "is a TorchScript archive, whose loading runs code stored in it")
    for info in infos:
        rest = info.filename[len(prefix) + 1 :]
        if not info.filename.startswith(prefix + "/") or not _ENTRY.fullmatch(rest):
            raise _refuse(path, f"holds the unexpected entry '{info.filename[:80]}'")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _refuse(path, f"holds the compressed entry '{info.filename[:80]}'")
    if f"{prefix}/data.pkl" not in names:
        raise _refuse(path, "has no data.pkl")


def read_state_archive(path: str | Path) -> bytes:
    """The bytes of a checkpoint file that :func:`check_state_archive` accepts."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist or is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"checkpoint '{path}' cannot be read ({exc.strerror or exc})") from exc
    check_state_archive(data, path)
    return data
