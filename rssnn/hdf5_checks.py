"""What an HDF5 file may be before anything in it is read: the structure checks that every
reader of a file from outside shares (our NetX files, stock lava-dl NetX files, NIR graphs).

A crafted file can make a naive reader read other files (external links, external storage,
virtual datasets), block (an external link to a FIFO), loop (soft links) or hold terabytes
(declared shapes, unallocated datasets read as fill values, one dataset hard-linked from many
places). :func:`open_checked` opens a file only after :func:`check_structure` walked it, reading
nothing but shapes and types (and variable-length text, one value at a time), and refuses with one
line (UserError).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from rssnn.errors import UserError

# Bounds on what a file may declare, far above any network Loihi 2 runs (the NetX-specific ones,
# T and the neurons of a layer, are rssnn.netx_file's).
MAX_DATASET_ELEMENTS = 1 << 28  # one weight dataset (VGG-11's largest is 2.4e6)
MAX_ATTRIBUTE_BYTES = 1 << 24
MAX_TREE_DEPTH = 6  # /layer/<i>/skip/<j>/neuron/<field> is the deepest path we write
MAX_OBJECTS = 100_000
# One budget for everything a file makes a reader hold: the bytes of every dataset and attribute
# as read, summed over every link that reaches it (a dataset hard-linked from 12 layers is read
# 12 times, and an unallocated one reads as fill values: neither the file size nor the storage
# size bounds it). Numbers are counted at 8 bytes at least, as the readers hold them in int64 or
# float64. VGG-11, the largest network here (59.5e6 weights), needs 0.45 GiB: twice that fits.
MAX_HELD_BYTES = 1 << 30
MAX_VLEN_ELEMENTS = 4096  # variable-length strings in one dataset or attribute (CIFAR-100: 100 names)


def check_structure(path: Path, f: h5py.File) -> None:
    """Refuse what would make reading this file read other files, hang, loop or hold more memory
    than any network needs: external links (one to a FIFO blocks ``open`` where no signal reaches
    Python), soft links (loops), virtual datasets and datasets stored in external files; trees
    deeper or larger than any NetX or NIR file; datasets or attributes larger than the bounds
    above, and more than :data:`MAX_HELD_BYTES` over all of them, every link counted (UserError,
    one line). Nothing is resolved but hard links, and only shapes and types are read, except the
    text of variable-length strings, whose size nothing declares (read one value at a time)."""
    count = 0
    held = 0

    def hold(nbytes: int, at: str) -> None:
        nonlocal held
        held += nbytes
        if held > MAX_HELD_BYTES:
            raise UserError(
                f"'{path}' would have a reader hold more than {MAX_HELD_BYTES >> 20} MiB (reached at {at}, "
                "every hard link counted); refused as damaged or hostile"
            )

    def walk(group: h5py.Group, where: str, depth: int) -> None:
        nonlocal count
        if depth > MAX_TREE_DEPTH:
            raise UserError(f"'{path}' nests groups deeper than a NetX file ({where}); refused")
        hold(_attribute_bytes(path, group, where), where)
        for name in group:
            count += 1
            if count > MAX_OBJECTS:
                raise UserError(f"'{path}' holds more than {MAX_OBJECTS} objects; refused")
            link = group.get(name, getlink=True)
            at = f"{where.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                raise UserError(f"'{path}' {at} is an external link to another file; refused")
            if isinstance(link, h5py.SoftLink):
                raise UserError(f"'{path}' {at} is a soft link; NetX files hold none, refused")
            if not isinstance(link, h5py.HardLink):
                raise UserError(f"'{path}' {at} is a {link.__class__.__name__}; refused")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, at, depth + 1)
                continue
            if not isinstance(obj, h5py.Dataset):  # a committed datatype: nothing we write
                raise UserError(f"'{path}' {at} is a {obj.__class__.__name__}; refused")
            if obj.is_virtual or obj.external:
                raise UserError(f"'{path}' {at} reads its data from other files; refused")
            if obj.size is not None and obj.size > MAX_DATASET_ELEMENTS:
                raise UserError(f"'{path}' {at} declares {obj.size} elements; refused as damaged")
            hold(_dataset_bytes(path, obj, at), at)
            hold(_attribute_bytes(path, obj, at), at)

    walk(f, "/", 0)


def _fixed_bytes(dtype: np.dtype, size: int) -> int:
    """What ``size`` values of a fixed-size type take once read (numbers as 8-byte words at least)."""
    return size * (max(dtype.itemsize, 8) if dtype.kind in "biuf" else dtype.itemsize)


def _text_bytes(path: Path, dtype: np.dtype, size: int, where: str, read) -> int:
    """Variable-length data: text only, at most :data:`MAX_VLEN_ELEMENTS` values, each read (its
    length is in the value, not in the declarations) and summed; refused past
    :data:`MAX_ATTRIBUTE_BYTES`. ``read()``: the values, an iterable read as it goes."""
    if h5py.check_string_dtype(dtype) is None or dtype.names is not None:
        raise UserError(f"'{path}' {where} holds variable-length data that is not text; refused")
    if size > MAX_VLEN_ELEMENTS:
        raise UserError(f"'{path}' {where} holds {size} variable-length strings; refused as damaged")
    total = 8 * size
    for value in read():
        total += len(value.encode() if isinstance(value, str) else value) if value is not None else 0
        if total > MAX_ATTRIBUTE_BYTES:
            raise UserError(
                f"'{path}' {where} holds more than {MAX_ATTRIBUTE_BYTES >> 20} MiB of text; refused"
            )
    return total


def _dataset_bytes(path: Path, dset: h5py.Dataset, where: str) -> int:
    size = dset.size or 0
    if not dset.dtype.hasobject:
        return _fixed_bytes(dset.dtype, size)

    def values():
        if dset.shape is None:
            return
        for index in np.ndindex(dset.shape):  # one value at a time: a value's length is unknown
            yield dset[index]

    return _text_bytes(path, dset.dtype, size, where, values)


def _attribute_bytes(path: Path, obj: h5py.HLObject, where: str) -> int:
    """The bytes of ``obj``'s attributes as read; each bounded by :data:`MAX_ATTRIBUTE_BYTES`."""
    total = 0
    for name in obj.attrs:
        attr = obj.attrs.get_id(name)
        at = f"{where} attribute '{name}'"
        dtype, size = attr.dtype, int(np.prod(attr.shape)) if attr.shape is not None else 0
        if dtype.hasobject:  # its storage size counts 16 B per string, whatever the string's length

            def values(name: str = name) -> list:  # an attribute is read whole
                return np.ravel(np.asarray(obj.attrs[name], dtype=object)).tolist()

            total += _text_bytes(path, dtype, size, at, values)
            continue
        nbytes = max(attr.get_storage_size(), _fixed_bytes(dtype, size))
        if nbytes > MAX_ATTRIBUTE_BYTES:
            raise UserError(f"'{path}' {at} declares {nbytes} bytes; refused")
        total += nbytes
    return total


def open_checked(path: str | Path) -> h5py.File:
    """Open a NetX file for reading after :func:`check_structure` accepted it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"network file '{path}' does not exist or is not a regular file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"'{path}' is not a readable HDF5 file (truncated or corrupt?)") from exc
    try:
        check_structure(path, f)
    except BaseException:
        f.close()
        raise
    return f
