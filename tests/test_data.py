"""CIFAR reader, splits, subsets, augmentation and data errors (real offline copy)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from rssnn.errors import UserError
from rssnn.train import data


def test_real_cifar10_splits_are_disjoint_balanced_and_seeded(cifar_root):
    train = data.load_split(cifar_root, "cifar10", "train", val_size=1000, train_limit=500, seed=3)
    val = data.load_split(cifar_root, "cifar10", "val", val_size=1000, seed=3)
    assert train.images.shape == (500, 3, 32, 32) and train.images.dtype == torch.uint8
    assert val.images.shape == (1000, 3, 32, 32)
    assert torch.bincount(val.labels).tolist() == [100] * 10
    assert torch.bincount(train.labels).tolist() == [50] * 10
    assert train.class_names[:2] == ["airplane", "automobile"]
    # Disjoint: no validation image appears in the training subset.
    val_keys = {bytes(img.numpy()) for img in val.images}
    assert not any(bytes(img.numpy()) in val_keys for img in train.images)
    again = data.load_split(cifar_root, "cifar10", "val", val_size=1000, seed=3)
    assert torch.equal(again.images, val.images)
    other = data.load_split(cifar_root, "cifar10", "val", val_size=1000, seed=4)
    assert not torch.equal(other.labels, val.labels)


def test_data_root_may_be_the_parent_or_the_batch_folder(cifar_root):
    assert data.resolve_root(cifar_root, "cifar10") == data.resolve_root(
        cifar_root / "cifar-10-batches-py", "cifar10"
    )


def test_pixels_are_the_official_ones(cifar_root):
    """First labels and exact channel sums of the official training set (data.md §4)."""
    full = data.load_split(cifar_root, "cifar10", "train", val_size=1, seed=0)
    val = data.load_split(cifar_root, "cifar10", "val", val_size=1, seed=0)
    images = torch.cat([full.images, val.images]).long()
    assert images.sum((0, 2, 3)).tolist() == [6415714204, 6295060180, 5829907619]


def test_missing_test_split_and_missing_folder_errors(cifar_root, tmp_path):
    with pytest.raises(UserError, match="no test split"):
        data.load_split(cifar_root, "cifar10", "test")
    with pytest.raises(UserError, match="--download"):
        data.load_split(tmp_path, "cifar10", "train")


def test_malformed_batch_is_reported(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [b"a"] * 10}, fh)
    (folder / "data_batch_1").write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="not a readable CIFAR python batch"):
        data.load_split(tmp_path, "cifar10", "train")
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}, fh)
    with pytest.raises(UserError, match="malformed"):
        data.load_split(tmp_path, "cifar10", "train")


def test_augmentation_crops_flips_and_cuts_out():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(1, 255, (16, 3, 32, 32), dtype=torch.uint8)
    out = data.augment(images, gen)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert not torch.equal(out, images)
    # Every output is a shifted (possibly flipped) window of the zero-padded input.
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for i in range(16):
        windows = [padded[i, :, y : y + 32, x : x + 32] for y in range(9) for x in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    cut = data.augment(images, torch.Generator().manual_seed(0), cutout=16)
    assert (cut == 0).sum() > (out == 0).sum()


def test_batches_give_unit_range_pixels():
    split = data.Split(
        torch.full((10, 3, 32, 32), 255, dtype=torch.uint8), torch.arange(10), [str(i) for i in range(10)]
    )
    xs = list(data.batches(split, 4))
    assert [len(y) for _, y in xs] == [4, 4, 2]
    assert xs[0][0].dtype == torch.float32 and xs[0][0].max() == 1.0


def test_cifar100_layout_is_read_with_fine_labels(tmp_path):
    """CIFAR-100's python format (train/test/meta, fine_labels), on a small synthetic copy."""
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"class{i}".encode() for i in range(100)]
    with open(folder / "meta", "wb") as fh:
        pickle.dump({b"fine_label_names": names}, fh)
    for split, n in (("train", 1000), ("test", 200)):
        with open(folder / split, "wb") as fh:
            pickle.dump(
                {
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"fine_labels": list(np.arange(n) % 100),
                },
                fh,
            )
    train = data.load_split(tmp_path, "cifar100", "train", val_size=200, seed=0)
    val = data.load_split(folder, "cifar100", "val", val_size=200, seed=0)
    test = data.load_split(tmp_path, "cifar100", "test")
    assert (len(train), len(val), len(test)) == (800, 200, 200)
    assert torch.bincount(val.labels).tolist() == [2] * 100
    assert train.class_names[99] == "class99"
