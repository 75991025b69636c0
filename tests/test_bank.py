"""The HDF5 prototype bank: round trip with provenance, refusal of a mismatched bank, no empty bank."""
import h5py
import numpy as np
import pytest
import torch

from segsort.bank import SCHEMA_VERSION, read_bank, write_bank
from segsort.inference import LabelledSegments
from segsort.io import DataError

ATTRS = {"model_sha256": "abc", "features": "embedding", "segmentation": "kmeans", "num_classes": 9,
         "dataset": "tiny"}


SUPPORT_A = torch.tensor([[0, 0, -1, 3],
                          [-1, 0, 3, 3],
                          [-1, -1, -1, 3]])
SUPPORT_B = torch.full((5, 6), -1)
SUPPORT_B[1:4, 2:5] = 5


def rows():
    yield "img_a", LabelledSegments(torch.tensor([0, 3]), torch.tensor([1, 0]), torch.tensor([3, 4]),
                                    torch.eye(4)[:2], SUPPORT_A)
    yield "img_b", LabelledSegments(torch.tensor([5]), torch.tensor([2]), torch.tensor([9]), torch.eye(4)[3:],
                                    SUPPORT_B)


def test_round_trip_keeps_every_column_and_attribute(tmp_path):
    path = tmp_path / "bank.h5"
    assert write_bank(path, rows(), 4, ATTRS) == 3
    bank = read_bank(path, expect=ATTRS)
    assert bank.labels.tolist() == [1, 0, 2]
    assert torch.equal(bank.prototypes, torch.eye(4)[[0, 1, 3]])
    assert bank.attrs["schema_version"] == SCHEMA_VERSION and bank.attrs["feature_dim"] == 4
    found = bank.provenance([2, 0, 1])
    assert [(p.image_id, p.segment_id, p.label, p.pixel_count) for p in found] == [
        ("img_b", 5, 2, 9), ("img_a", 0, 1, 3), ("img_a", 3, 0, 4)]
    assert [p.bbox for p in found] == [(1, 2, 4, 5), (0, 0, 2, 2), (0, 2, 3, 4)]
    # every segment is redrawn exactly: its mask crop pasted at its bbox gives back its support
    for p, support in zip(found, [SUPPORT_B, SUPPORT_A, SUPPORT_A]):
        top, left, bottom, right = p.bbox
        redrawn = np.zeros(support.shape, bool)
        redrawn[top:bottom, left:right] = p.mask
        assert np.array_equal(redrawn, (support == p.segment_id).numpy()) and p.mask.sum() == p.pixel_count
    with h5py.File(path) as f:
        assert all(f[name].compression == "gzip" and f[name].chunks for name in f)


def test_bank_of_another_model_or_dimension_is_refused(tmp_path):
    path = tmp_path / "bank.h5"
    write_bank(path, rows(), 4, ATTRS)
    with pytest.raises(DataError, match="bank model_sha256 is 'abc' but 'xyz' is expected"):
        read_bank(path, expect={**ATTRS, "model_sha256": "xyz"})
    with pytest.raises(DataError, match="bank feature_dim is 4 but 32 is expected"):
        read_bank(path, expect={"feature_dim": 32})
    with h5py.File(path, "a") as f:                      # a bank of this schema without its masks
        del f["masks"]
    with pytest.raises(DataError, match=f"not a version-{SCHEMA_VERSION} prototype bank .*missing \\['masks'\\]"):
        read_bank(path, expect={})
    with h5py.File(path, "a") as f:                      # a bank of an older schema
        f.attrs["schema_version"] = 3
    with pytest.raises(DataError, match=rf"^{path}: prototype bank of schema version 3, older than version "
                                        rf"{SCHEMA_VERSION} .*: rebuild it with stages/build_bank.py$"):
        read_bank(path, expect={})
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="junk.h5: cannot read prototype bank"):
        read_bank(tmp_path / "junk.h5", expect={})


def corrupt_column(path, name: str) -> None:
    """Overwrite bytes in the middle of the first stored chunk of the bank's column `name`."""
    with h5py.File(path) as f:
        chunk = f[name].id.get_chunk_info(0)
    with open(path, "r+b") as file:
        file.seek(chunk.byte_offset + chunk.size // 2)
        file.write(b"\xff" * 8)


def test_a_damaged_column_is_named_when_read(tmp_path):
    """kNN reads the prototypes and labels only: a bank damaged in its masks still loads, and the
    provenance, read later, names the file and the column instead of raising h5py's OSError."""
    path = tmp_path / "bank.h5"
    write_bank(path, rows(), 4, ATTRS)
    corrupt_column(path, "masks")
    bank = read_bank(path, expect=ATTRS)
    with pytest.raises(DataError, match=rf"^{path}: cannot read prototype bank column masks \(rows 0 to 0\) \("):
        bank.provenance([0])
    corrupt_column(path, "labels")
    with pytest.raises(DataError, match=rf"^{path}: cannot read prototype bank column labels \(all rows\)"):
        read_bank(path, expect=ATTRS)


def test_empty_bank_is_an_error_and_leaves_no_file(tmp_path):
    with pytest.raises(DataError, match="would be empty"):
        write_bank(tmp_path / "bank.h5", iter([]), 4, ATTRS)
    assert list(tmp_path.iterdir()) == []
