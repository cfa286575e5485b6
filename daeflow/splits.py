"""Seeded train / validation / test splits, optionally keeping each group in one split."""

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


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int, groups=None
) -> Split:
    """Shuffle images (or whole groups) with `seed` and cut test, validation and training sets."""
    check_fractions(val_fraction, test_fraction)
    if groups is None:
        groups = np.arange(n)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise DataError(
            f"Groups must hold one id per image: expected shape ({n},), got {groups.shape}."
        )
    unique = np.unique(groups)
    if len(unique) < 3:
        raise DataError(
            f"Splitting needs at least 3 images (or groups) for train, validation and test; "
            f"got {len(unique)}. Add data or pass --val-data/--test-data."
        )
    order = np.random.default_rng(seed).permutation(unique)
    sizes = np.bincount(np.searchsorted(unique, groups), minlength=len(unique))[
        np.searchsorted(unique, order)
    ]
    cumulative = np.cumsum(sizes)
    # Rounded, so that 0.07 * 100 = 7.000000000000001 asks for 7 images, not 8.
    test_target, val_target = round(test_fraction * n, 9), round(val_fraction * n, 9)
    n_test = max(1, int(np.searchsorted(cumulative, test_target)) + 1)
    n_val_end = n_test + max(
        1, int(np.searchsorted(cumulative[n_test:] - cumulative[n_test - 1], val_target)) + 1
    )
    if n_val_end >= len(unique):
        raise DataError(
            f"{n} images in {len(unique)} groups are too few for the fractions "
            f"val={val_fraction}, test={test_fraction}. Add data or lower the fractions."
        )
    test_groups, val_groups = order[:n_test], order[n_test:n_val_end]
    return Split(
        train=np.flatnonzero(~np.isin(groups, np.concatenate([test_groups, val_groups]))),
        val=np.flatnonzero(np.isin(groups, val_groups)),
        test=np.flatnonzero(np.isin(groups, test_groups)),
    )
