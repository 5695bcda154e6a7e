import pytest
import torch

from sweetspot.config import DataConfig
from sweetspot.core.splits import check_classes, check_dataset, load_splits, transfer_indices
from sweetspot.errors import DataError


def test_load_splits_digits_sizes_and_disjointness():
    s = load_splits(DataConfig(), seed=0)
    n = len(s.y_train) + len(s.y_val) + len(s.y_test)
    assert n == 1797 and s.n_classes == 10 and s.input_shape == (1, 8, 8)
    assert len(s.y_test) == 360 and len(s.y_val) == 360
    rows = {tuple(r) for split in (s.x_train, s.x_val, s.x_test) for r in split[:].flatten(1).tolist()}
    assert len(rows) > 1700  # digits has a few duplicate images; splits are otherwise disjoint
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64


def test_load_splits_is_seeded_and_stratified():
    a, b, c = load_splits(DataConfig(), 0), load_splits(DataConfig(), 0), load_splits(DataConfig(), 1)
    assert torch.equal(a.y_val, b.y_val) and torch.equal(a.x_train[:], b.x_train[:])
    assert not torch.equal(a.y_val, c.y_val)
    counts = torch.bincount(a.y_val, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # about 36 of each class


def test_load_splits_standardises_each_channel_on_the_training_split():
    s = load_splits(DataConfig(), 0)
    x = s.x_train[:]
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1.0) < 1e-3
    assert float(x.abs().max()) < 5  # per-pixel statistics gave rare border pixels values in the tens
    # one mean and one std for the whole channel (as torchvision's Normalize), spread to the input's shape
    assert s.input_mean.shape == s.input_std.shape == (1, 8, 8)
    assert torch.all(s.input_mean == s.input_mean.flatten()[0]) and torch.all(s.input_std == s.input_std.flatten()[0])


def test_transfer_indices_remove_withheld_classes():
    y = torch.arange(10).repeat(20)
    index = transfer_indices(y, (3, 5), None, seed=0)
    assert set(y[index].tolist()) == set(range(10)) - {3, 5}
    assert len(index) == 160


def test_transfer_indices_keep_n_seeded_examples_per_class():
    y = torch.arange(4).repeat(50)
    a = transfer_indices(y, (1,), 7, seed=0)
    assert torch.bincount(y[a], minlength=4).tolist() == [7, 0, 7, 7]
    assert torch.equal(a, transfer_indices(y, (1,), 7, seed=0))
    assert not torch.equal(a, transfer_indices(y, (1,), 7, seed=1))


def test_check_classes_rejects_classes_outside_the_dataset():
    with pytest.raises(DataError, match=r"\[10\] not in the dataset \(classes are 0 to 9\)"):
        check_classes((3, 10), 10)
    with pytest.raises(DataError, match="leaves no transfer set"):
        check_classes(tuple(range(10)), 10)


def test_check_dataset_suggests_a_name():
    with pytest.raises(DataError, match="did you mean 'digits'"):
        check_dataset("digit")


def test_splits_keep_the_standardisation_of_raw_inputs():
    from sklearn.datasets import load_digits

    splits = load_splits(DataConfig(), 0)
    assert splits.input_mean.shape == splits.input_std.shape == splits.input_shape == (1, 8, 8)
    raw = torch.from_numpy(load_digits().data.astype("float32") / 16.0).reshape(-1, 1, 8, 8)
    standardised = (raw - splits.input_mean) / splits.input_std
    # every training example is one of the raw images, standardised with the kept statistics
    first = splits.x_train[0]
    assert torch.isclose(standardised, first).flatten(1).all(dim=1).any()
