"""Seeded train / validation / test splits (scikit-learn), optionally keeping groups together."""

import math
from dataclasses import dataclass

import numpy as np

from daeflow.errors import DataError, UsageError


@dataclass(frozen=True)
class Split:
    """Image indices of each split; the test indices are used once, at the end."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def without_test(self) -> "Split":
        """The same validation images, the test ones training too (the test set is a file)."""
        train = np.sort(np.concatenate([self.train, self.test]))
        return Split(train=train, val=self.val, test=self.test[:0])

    def as_dict(self) -> dict[str, list[int]]:
        """Plain lists, for the split artifact."""
        return {name: getattr(self, name).tolist() for name in ("train", "val", "test")}


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Refuse fractions that leave nothing to train on."""
    for name, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 < value < 1:
            raise UsageError(f"{name} must be between 0 and 1 (exclusive). Received: {value}")
    if val_fraction + test_fraction >= 1:
        raise UsageError(
            "--val-fraction plus --test-fraction must be below 1 to leave training data. "
            f"Received: {val_fraction} + {test_fraction}"
        )


def _count(fraction: float, n: int) -> int:
    # Rounded first, so that 0.07 * 100 = 7.000000000000001 asks for 7 images, not 8.
    return max(1, math.ceil(round(fraction * n, 9)))


def splittable(units: int, val_fraction: float, test_fraction: float) -> bool:
    """Whether `units` images (or groups) leave at least one to train after the held-out
    test and validation ones (each at least one)."""
    return units >= 3 and _count(test_fraction, units) + _count(val_fraction, units) < units


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int, groups=None
) -> Split:
    """Hold out test, then validation images (or whole groups), seeded; the rest trains.

    Sizes are fractions of all images (of all groups with `groups`), rounded up, at
    least one each: scikit-learn's `train_test_split`, or `GroupShuffleSplit` for groups.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    check_fractions(val_fraction, test_fraction)
    indices = np.arange(n)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise DataError(
                f"Groups must hold one id per image: expected shape ({n},), got {groups.shape}."
            )
    units = len(np.unique(groups)) if groups is not None else n
    n_test, n_val = _count(test_fraction, units), _count(val_fraction, units)
    if not splittable(units, val_fraction, test_fraction):
        what = f"{n} images in {units} groups" if groups is not None else f"{n} images"
        raise DataError(
            f"{what} are too few to split into train, validation and test with "
            f"val={val_fraction}, test={test_fraction}. Add data, lower the fractions or pass "
            "--val-data/--test-data."
        )
    if groups is None:
        rest, test = train_test_split(indices, test_size=n_test, random_state=seed)
        train, val = train_test_split(rest, test_size=n_val, random_state=seed)
    else:
        rest, test = next(
            GroupShuffleSplit(1, test_size=n_test, random_state=seed).split(indices, groups=groups)
        )
        train, val = next(
            GroupShuffleSplit(1, test_size=n_val, random_state=seed).split(
                rest, groups=groups[rest]
            )
        )
        train, val = rest[train], rest[val]
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test))
