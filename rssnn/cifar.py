"""CIFAR-10/100 in the standard python batch format, as numpy arrays: reading, checking, splits.

Images are uint8 [N, 3, 32, 32]. The batches are pickles, so they are read with an unpickler
that admits only what the official files contain (a crafted file cannot run code). The
validation split is held out of the training batches, class balanced, drawn with a seed.
``train.data`` wraps these arrays as torch tensors for training; the Lava runner uses them
directly, without torch.

We read the batches with a small pickle reader instead of ``torchvision.datasets.CIFAR10``:
torchvision rejects copies whose file md5s differ from the official ones, and the offline copy
(pixel-identical, re-serialised) is such a copy.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from rssnn.errors import UserError

DATASETS = {
    "cifar10": dict(
        folder="cifar-10-batches-py",
        train=[f"data_batch_{k}" for k in range(1, 6)],
        test=["test_batch"],
        meta="batches.meta",
        names_key=b"label_names",
        labels_key=b"labels",
        num_classes=10,
        train_images=50000,
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": dict(
        folder="cifar-100-python",
        train=["train"],
        test=["test"],
        meta="meta",
        names_key=b"fine_label_names",
        labels_key=b"fine_labels",
        num_classes=100,
        train_images=50000,
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}
DEFAULT_DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10"


def resolve_root(data_root: str | Path, dataset: str) -> Path:
    """The folder holding the batch files: ``data_root`` itself or its dataset subfolder."""
    spec = DATASETS[dataset]
    root = Path(data_root).expanduser()
    for cand in (root / spec["folder"], root):
        if (cand / spec["meta"]).is_file():
            return cand
    raise UserError(
        f"no {dataset} data in '{root}': expected '{spec['folder']}/{spec['meta']}' there; "
        f"pass --data-root pointing at the folder that holds '{spec['folder']}', "
        "or add --download to fetch it"
    )


def download(data_root: str | Path, dataset: str) -> Path:
    """Fetch and unpack the official archive into ``data_root`` (needs internet)."""
    from torchvision.datasets.utils import download_and_extract_archive

    spec = DATASETS[dataset]
    root = Path(data_root).expanduser()
    try:
        return resolve_root(root, dataset)
    except UserError:
        pass
    try:
        download_and_extract_archive(spec["url"], str(root), md5=spec["md5"])
    except Exception as exc:  # network errors come in many types; report them as one line
        raise UserError(f"could not download {dataset} from {spec['url']}: {exc}") from exc
    return resolve_root(root, dataset)


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list: it was not loaded."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that admits only what the official CIFAR python batches contain.

    The batches are pickles, and a plain ``pickle.load`` runs whatever a crafted file names.
    These are the only globals the official files (and numpy-written copies) refer to: numpy's
    array and scalar reconstruction and ``_codecs.encode`` (how Python 3 pickles bytes at
    protocol 2). Each only builds data from bytes.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _ForbiddenGlobal(f"it refers to '{module}.{name}', which a CIFAR batch never does")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"missing file '{path}'")
    try:
        with open(path, "rb") as fh:
            obj = _BatchUnpickler(fh, encoding="bytes").load()
    except _ForbiddenGlobal as exc:
        raise UserError(
            f"'{path}' is not a plain CIFAR python batch and was not loaded ({exc}); "
            "use the official files"
        ) from exc
    except Exception as exc:
        raise UserError(
            f"'{path}' is not a readable CIFAR python batch ({exc.__class__.__name__}); "
            "re-download the dataset"
        ) from exc
    if not isinstance(obj, dict):
        raise UserError(f"'{path}' is not a CIFAR python batch (no dict inside)")
    return obj


def _read_batches(folder: Path, names: list[str], labels_key: bytes, num_classes: int):
    images, labels = [], []
    for name in names:
        path = folder / name
        batch = _read_pickle(path)
        data, lab = batch.get(b"data"), batch.get(labels_key)
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or lab is None:
            raise UserError(
                f"'{path}' is malformed: expected 'data' of shape (N, 3072) "
                f"and '{labels_key.decode()}'; re-download the dataset"
            )
        if data.dtype != np.uint8:
            raise UserError(
                f"'{path}' holds {data.dtype} pixels; CIFAR batches hold uint8 values 0..255 "
                "(convert the images to uint8 or re-download the dataset)"
            )
        if len(data) == 0:
            raise UserError(f"'{path}' holds no images; re-download the dataset")
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in lab):
            raise UserError(f"'{path}' has non-integer labels; labels must be class indices")
        lab = np.asarray(lab, dtype=np.int64)
        if len(lab) != len(data) or lab.min() < 0 or lab.max() >= num_classes:
            raise UserError(
                f"'{path}' has labels that do not match its images "
                f"({len(lab)} labels for {len(data)} images, expected 0..{num_classes - 1})"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def class_names(data_root: str | Path, dataset: str) -> list[str]:
    """The dataset's class names from its meta file (checked: one name per class)."""
    spec = DATASETS[dataset]
    path = resolve_root(data_root, dataset) / spec["meta"]
    names = _read_pickle(path).get(spec["names_key"])
    key = spec["names_key"].decode()
    if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
        raise UserError(f"'{path}' has no list of class names '{key}'; re-download the dataset")
    if len(names) != spec["num_classes"]:
        raise UserError(
            f"'{path}' names {len(names)} classes, {dataset} has {spec['num_classes']}; "
            "re-download the dataset"
        )
    return [n.decode() if isinstance(n, bytes) else n for n in names]


def balanced_subset(
    labels: np.ndarray, per_class: int | None, total: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Indices of a class-balanced random subset (``per_class`` each, or ``total`` overall)."""
    classes = np.unique(labels)
    if total is not None:
        per_class = total // len(classes)
    chosen = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        chosen.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(chosen))


def load_split(
    data_root: str | Path,
    dataset: str,
    split: str,
    val_size: int = 5000,
    train_limit: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``train`` (training batches minus validation), ``val`` or ``test``: (images, labels, names).

    images uint8 [N, 3, 32, 32], labels int64 [N], the class names.

    The validation part is class balanced and drawn with ``seed``; it never depends on
    ``train_limit``, so validation accuracy is comparable across runs.
    """
    spec = DATASETS[dataset]
    folder = resolve_root(data_root, dataset)
    names = class_names(folder, dataset)
    if split == "test":
        missing = [n for n in spec["test"] if not (folder / n).is_file()]
        if missing:
            raise UserError(
                f"no test split in '{folder}' (missing {', '.join(missing)}): the "
                "offline copy has training batches only; use --split val, or "
                "--download the full dataset"
            )
        x, y = _read_batches(folder, spec["test"], spec["labels_key"], spec["num_classes"])
        return x, y, names
    if split not in ("train", "val"):
        raise UserError(f"unknown split '{split}': use train, val or test")
    x, y = _read_batches(folder, spec["train"], spec["labels_key"], spec["num_classes"])
    if not 0 <= val_size < len(y):
        raise UserError(f"--val-size {val_size} must be in [0, {len(y)})")
    rng = np.random.default_rng(seed)
    val_idx = balanced_subset(y, None, val_size, rng) if val_size else np.array([], dtype=np.int64)
    if split == "val":
        idx = val_idx
    else:
        idx = np.setdiff1d(np.arange(len(y)), val_idx)
        if train_limit is not None:
            if train_limit < spec["num_classes"]:
                raise UserError(f"--train-limit {train_limit} is below one image per class")
            idx = idx[balanced_subset(y[idx], None, train_limit, rng)]
    return x[idx], y[idx], names


def load_run_split(
    data_root: str | Path | None, dataset: str, split: str, run_config: dict
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The ``val`` / ``test`` split as a training run saw it.

    The validation images must be the ones that run held out, so the split is drawn with the
    run's own ``val_size`` and ``split_seed`` (from its configuration; older runs: ``seed``);
    ``data_root`` None means the default offline copy.
    """
    return load_split(
        data_root or DEFAULT_DATA_ROOT,
        dataset,
        split,
        val_size=run_config.get("val_size", 5000),
        seed=run_config.get("split_seed", run_config.get("seed", 0)),
    )
