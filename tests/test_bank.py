"""The HDF5 prototype bank: round trip with provenance, refusal of a mismatched bank, no empty bank."""
import h5py
import numpy as np
import pytest
import torch

from segsort.bank import SCHEMA_VERSION, read_bank, write_bank
from segsort.io import DataError

ATTRS = {"model_sha256": "abc", "feature_kind": "embedding", "segmentation": "kmeans", "num_classes": 9,
         "dataset": "tiny"}


def rows():
    yield "img_a", torch.tensor([0, 3]), torch.tensor([1, 0]), torch.tensor([10, 20]), torch.eye(4)[:2]
    yield "img_b", torch.tensor([5]), torch.tensor([2]), torch.tensor([7]), torch.eye(4)[3:]


def test_round_trip_keeps_every_column_and_attribute(tmp_path):
    path = tmp_path / "bank.h5"
    assert write_bank(path, rows(), 4, ATTRS) == 3
    bank = read_bank(path, expect=ATTRS)
    assert bank.image_ids == ["img_a", "img_a", "img_b"]
    assert bank.segment_ids.tolist() == [0, 3, 5]
    assert bank.labels.tolist() == [1, 0, 2]
    assert bank.pixel_counts.tolist() == [10, 20, 7]
    assert torch.equal(bank.prototypes, torch.eye(4)[[0, 1, 3]])
    assert bank.attrs["schema_version"] == SCHEMA_VERSION and bank.attrs["feature_dim"] == 4
    with h5py.File(path) as f:
        assert f["prototypes"].compression == "gzip"


def test_bank_of_another_model_or_dimension_is_refused(tmp_path):
    path = tmp_path / "bank.h5"
    write_bank(path, rows(), 4, ATTRS)
    with pytest.raises(DataError, match="bank model_sha256 is 'abc' but 'xyz' is expected"):
        read_bank(path, expect={**ATTRS, "model_sha256": "xyz"})
    with pytest.raises(DataError, match="bank feature_dim is 4 but 32 is expected"):
        read_bank(path, expect={"feature_dim": 32})
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="junk.h5: cannot read prototype bank"):
        read_bank(tmp_path / "junk.h5", expect={})


def test_empty_bank_is_an_error_and_leaves_no_file(tmp_path):
    with pytest.raises(DataError, match="would be empty"):
        write_bank(tmp_path / "bank.h5", iter([]), 4, ATTRS)
    assert list(tmp_path.iterdir()) == []
