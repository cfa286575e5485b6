"""Turn the data options of a run into checked train, validation and test subsets."""

from dataclasses import dataclass, field

import numpy as np

from daeflow.config import DataOptions
from daeflow.data import profile
from daeflow.data.arrays import ImageArray, load_array, read_header
from daeflow.data.checks import check_multiple, check_pair_headers, validated_pair
from daeflow.data.pairs import PairSource
from daeflow.data.ranges import RANGE_PARAM, RANGE_RULE, given_range
from daeflow.data.splits import Split, split_indices
from daeflow.errors import DataError, UsageError
from daeflow.plugin import hyperparams


@dataclass
class Subset:
    """Some images of a PairSource."""

    source: PairSource
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class PreparedData:
    """Validated, split data plus what to log about it."""

    train: Subset
    val: Subset
    test: Subset
    data_range: float
    range_note: str  # the line saying how the range was chosen
    split: Split | None
    params: dict = field(default_factory=dict)
    pairs: list = field(default_factory=list)
    noise_profile: dict = field(default_factory=dict)  # noise level and clipping of the pairs
    digests: dict = field(default_factory=dict)  # SHA-256 per role, once computed
    targets_note: str | None = None  # the line saying that the test targets look noisy

    @property
    def source(self) -> PairSource:
        return self.train.source

    @property
    def lines(self) -> list[str]:
        """What to tell the user about the data before any work: the range, noisy targets."""
        return [self.range_note, *([self.targets_note] if self.targets_note else [])]


def _load_pair(options: DataOptions, path: str | None, what: str):
    """Clean and noisy ImageArrays from --data (npz) or --clean/--noisy files.

    Both headers are checked before either array is read: an .npz member is read into
    memory whole, so one that would be refused for its shape must not be read at all.
    """
    if path is not None:
        sources = [(path, f"{what} clean", options.clean_key)]
        if not options.noise:
            sources.append((path, f"{what} noisy", options.noisy_key))
    else:
        sources = [(options.clean, "clean", None)]
        if options.noisy:
            sources.append((options.noisy, "noisy", None))
    headers = [read_header(*source) for source in sources] + [None]
    check_pair_headers(headers[0], headers[1], [name for _, name, _ in sources])
    arrays = [load_array(*source) for source in sources] + [None]
    return arrays[0], arrays[1]


def _demo_pair(seed: int):
    from daeflow.data.demo import demo_arrays

    clean, noisy = demo_arrays(seed)
    return ImageArray(clean, "clean"), ImageArray(noisy, "noisy")


def check_sources(options: DataOptions) -> None:
    """Refuse option combinations that name no data or the same thing twice."""
    if options.data and (options.clean or options.noisy):
        raise UsageError("Pass either --data PAIRS.npz or --clean/--noisy files, not both.")
    if options.noisy and not options.clean:
        raise UsageError("--noisy needs --clean too. Pass both arrays, or --clean with --noise.")
    if options.noise and options.noisy:
        raise UsageError("Pass either --noisy (real noise) or --noise (synthetic), not both.")
    if options.clean and not options.noisy and not options.noise:
        raise UsageError(
            "--clean needs --noisy NOISY.npy, or --noise gaussian for synthetic noise."
        )


def _noise(options: DataOptions):
    if not options.noise:
        return None, {}
    from daeflow.plugin.registry import get_noise_model

    model = get_noise_model(options.noise).spec
    return model, hyperparams.resolve(
        model.params, options.noise_params, f"Noise {options.noise!r}"
    )


def _check_sizes(clean, arch, options: DataOptions, patch_size: int | None) -> None:
    check_multiple(clean, arch.size_multiple, arch.name, options.pad)
    if patch_size is None:
        return
    height, width = clean.shape[1:3]
    if patch_size > min(height, width) or patch_size % arch.size_multiple:
        raise UsageError(
            f"--patch-size must be at most {min(height, width)} (the image size) and a multiple "
            f"of {arch.size_multiple} for {arch.name!r}. Received: {patch_size}"
        )


def _groups(path: str | None, n: int):
    if path is None:
        return None

    def check(header):
        if header.shape != (n,):
            raise DataError(
                f"Groups file {path} must hold one id per image, shape ({n},); got {header.shape}."
            )

    return np.asarray(load_array(path, "groups", check=check).array)


def prepare_data(
    options: DataOptions,
    arch,
    seed: int,
    patch_size: int | None = None,
    logged_range: float | None = None,
) -> PreparedData:
    """Load, validate and split the data for `arch`; nothing is trained or logged yet.

    `logged_range`: the range a resumed run was started with, kept whatever today's rule
    says (its checkpoints learned images on that scale).
    """
    check_sources(options)
    if options.data or options.clean:
        clean, noisy = _load_pair(options, options.data, "training")
    else:
        clean, noisy = _demo_pair(seed)
    clean, noisy, chosen = validated_pair(clean, noisy, options.data_range or logged_range)
    if logged_range and options.data_range is None:
        chosen = given_range(logged_range, "the run's own, as logged when it started", "logged")
    data_range = chosen.value
    noise, noise_params = _noise(options)
    options.noise_params = noise_params  # logged as resolved, typed values
    _check_sizes(clean, arch, options, patch_size)
    if noisy is not None and options.alignment_check:
        profile.check_alignment(clean, noisy, seed)
    multiple = arch.size_multiple if options.pad else 1

    def source(c, n):
        return PairSource(c, n, data_range, noise, noise_params, seed, multiple)

    main = source(clean, noisy)
    pairs = [("train", clean, noisy, options.data or options.clean or "sklearn sample images")]
    split = None
    if options.val_data or options.test_data:
        subsets = _file_subsets(options, main, source, arch, pairs)
    else:
        split = split_indices(
            len(clean),
            options.val_fraction,
            options.test_fraction,
            seed,
            _groups(options.groups, len(clean)),
        )
        subsets = [Subset(main, split.train), Subset(main, split.val), Subset(main, split.test)]
    train, val, test = subsets
    params = {
        "data.shape": str(clean.shape),
        "data.dtype": str(clean.dtype),
        RANGE_PARAM: data_range,
        RANGE_RULE: chosen.rule,
        "data.channels": clean.shape[-1],
        "split.train": len(train),
        "split.val": len(val),
        "split.test": len(test),
    }
    # Everything that reads the data to check or describe it ends before a run starts.
    summary = profile.noise_profile(main, seed)
    scored = summary if test.source is main else profile.noise_profile(test.source, seed)
    return PreparedData(
        train, val, test, data_range, chosen.line, split, params, pairs, summary,
        targets_note=profile.noisy_targets(scored),
    )  # fmt: skip


def _file_subsets(options, main, source, arch, pairs):
    if not (options.val_data and options.test_data):
        raise UsageError(
            "Pass both --val-data and --test-data, or neither (to split by fractions)."
        )
    subsets = [Subset(main, np.arange(len(main.clean)))]
    for role, path in (("validation", options.val_data), ("test", options.test_data)):
        clean, noisy = _load_pair(options, path, role)
        clean, noisy, _ = validated_pair(clean, noisy, main.data_range)
        if noisy is not None and options.alignment_check:
            profile.check_alignment(clean, noisy, main.seed)
        if clean.shape[1:] != main.clean.shape[1:] and not options.pad:
            check_multiple(clean, arch.size_multiple, arch.name, options.pad)
        if clean.shape[-1] != main.clean.shape[-1]:
            raise DataError(
                f"{role} data has {clean.shape[-1]} channels, training data "
                f"{main.clean.shape[-1]}. Pass data with the same channels."
            )
        subsets.append(Subset(source(clean, noisy), np.arange(len(clean))))
        pairs.append((role, clean, noisy, path))
    return subsets
