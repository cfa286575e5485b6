"""Turn the data options of a run into checked train, validation and test subsets."""

from dataclasses import dataclass, field

import numpy as np

from daeflow.config import DataOptions, patch_shape
from daeflow.data import profile
from daeflow.data.arrays import ImageArray, load_array, read_header
from daeflow.data.axes import AXES_PARAM, logged_axes
from daeflow.data.checks import (
    check_multiple,
    check_pair_headers,
    validated_noisy,
    validated_pair,
)
from daeflow.data.image_folders import check_same_names
from daeflow.data.pairs import PairSource
from daeflow.data.planes import as_planes, as_slabs, slab_count, volume_groups
from daeflow.data.ranges import RANGE_PARAM, RANGE_RULE, given_range
from daeflow.data.splits import Split, split_indices
from daeflow.errors import DataError, UsageError
from daeflow.plugin import hyperparams
from daeflow.plugin.specs import OBJECTIVE_DATA, Range

CLEAN_USE = "data.clean_use"  # the param saying what clean images a run used, and for what
CLEAN_TARGETS = "training targets"  # its value for supervised training
SLABS_PARAM = "data.slabs"  # Z slabs each volume was cut into, so that they split


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
    slabs_note: str | None = None  # the line saying that volumes were cut into slabs

    @property
    def source(self) -> PairSource:
        return self.train.source

    @property
    def lines(self) -> list[str]:
        """What to tell the user about the data before any work: the range, noisy targets."""
        notes = (self.slabs_note, self.targets_note)
        return [self.range_note, *(note for note in notes if note)]


def _load_pair(options: DataOptions, path: str | None, what: str, synthetic: bool = True):
    """Clean and noisy ImageArrays from --data (npz) or --clean/--noisy files (the noisy
    ones None where `synthetic` and --noise draws them)."""
    if path is not None:
        sources = [(path, f"{what} clean", options.clean_key)]
        if not (options.noise and synthetic):
            sources.append((path, f"{what} noisy", options.noisy_key))
    else:
        sources = [(options.clean, "clean", None)]
        if options.noisy:
            sources.append((options.noisy, "noisy", None))
    return _load_two(sources, "Clean and noisy", options.axes)


def _load_noisy(options: DataOptions, second: bool):
    """Noisy ImageArrays (and their second shots) from --data (npz) or --noisy/--noisy2."""
    if options.data is not None:
        sources = [(options.data, "training noisy", options.noisy_key)]
        if second:
            sources.append((options.data, "training noisy2", options.noisy2_key))
    else:
        sources = [(options.noisy, "noisy", None)]
        if second:
            sources.append((options.noisy2, "noisy2", None))
    return _load_two(sources, "The two noisy arrays'", options.axes)


def _load_two(sources, what: str, axes: str | None = None):
    """One or two ImageArrays of (path, name, key) sources.

    Both headers are checked before either array is read: an .npz member is read into
    memory whole, so one that would be refused for its shape must not be read at all.
    """
    headers = [read_header(*source, axes=axes) for source in sources] + [None]
    check_pair_headers(headers[0], headers[1], [name for _, name, _ in sources], what)
    if headers[1] is not None:
        check_same_names(headers[0].names, headers[1].names, [name for _, name, _ in sources])
    arrays = [load_array(*source, axes=axes) for source in sources] + [None]
    return arrays[0], arrays[1]


def _demo_pair(seed: int):
    from daeflow.data.demo import demo_arrays

    clean, noisy = demo_arrays(seed)
    return ImageArray(clean, "clean"), ImageArray(noisy, "noisy")


def check_sources(options: DataOptions, objective=None) -> None:
    """Refuse option combinations that name no data, the same thing twice, or data the
    objective cannot learn from."""
    if objective is not None and not objective.needs_clean:
        return _check_noisy_sources(options, objective)
    if options.noisy2:
        raise UsageError(
            "--noisy2 is a second noisy shot for --objective noise2noise; supervised training "
            "takes --clean with --noisy, or --clean with --noise."
        )
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


def _check_noisy_sources(options: DataOptions, objective) -> None:
    name, data = objective.name, objective.data
    second = "noisy2" in OBJECTIVE_DATA[data]
    wanted = "--noisy NOISY.npy" + (" --noisy2 NOISY2.npy" if second else "")
    if options.clean:
        raise UsageError(
            f"--objective {name} learns from noisy images alone and takes no --clean. Pass "
            f"{wanted}; clean references for scoring go in --test-data PAIRS.npz."
        )
    if options.data and (options.noisy or options.noisy2):
        raise UsageError("Pass either --data NOISY.npz or --noisy files, not both.")
    if not options.data and not options.noisy:
        raise UsageError(f"--objective {name} needs noisy images: pass {wanted}.")
    if second and not options.data and not options.noisy2:
        raise UsageError(
            f"--objective {name} needs a second noisy shot of each image: pass {wanted} "
            "(or --data with the keys noisy and noisy2)."
        )
    if not second and options.noisy2:
        raise UsageError(
            f"--noisy2 is for --objective noise2noise; {name} trains on single noisy images."
        )
    if data == "noisy_and_model" and not options.noise:
        raise UsageError(
            f"--objective {name} needs the noise model of the data: pass for example "
            "--noise gaussian --noise-param sigma=25 (on the data's own scale)."
        )
    if data != "noisy_and_model" and options.noise:
        raise UsageError(
            f"--objective {name} uses no noise model; drop --noise (it is for supervised "
            "training on clean images, and for r2r)."
        )
    if options.val_data:
        raise UsageError(
            f"--objective {name} validates on noisy images split from the training data "
            "(--val-fraction); drop --val-data. Clean references for scoring go in --test-data."
        )
    return None


def _noise(options: DataOptions):
    if not options.noise:
        return None, {}
    from daeflow.plugin.registry import get_noise_model

    model = get_noise_model(options.noise).spec
    return model, hyperparams.resolve(
        model.params, options.noise_params, f"Noise {options.noise!r}", ranges=True
    )


def _check_sizes(clean, arch, options: DataOptions, patch_size) -> None:
    check_multiple(clean, arch.size_multiple, arch.name, options.pad)
    spatial = tuple(clean.shape[1:-1])
    sizes = patch_shape(patch_size, len(spatial))
    if sizes is None:
        return
    if any(p > s for p, s in zip(sizes, spatial, strict=True)) or any(
        p % arch.size_multiple for p in sizes
    ):
        shown = "x".join(map(str, spatial))
        raise UsageError(
            f"--patch-size must be at most the data's size ({shown}) on every axis and a "
            f"multiple of {arch.size_multiple} for {arch.name!r}. Received: {patch_size}"
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
    objective=None,
) -> PreparedData:
    """Load, validate and split the data for `arch` and the training `objective` (an
    Objective spec; None: supervised); nothing is trained or logged yet.

    `logged_range`: the range a resumed run was started with, kept whatever today's rule
    says (its checkpoints learned images on that scale).
    """
    check_sources(options, objective)
    if objective is not None and not objective.needs_clean:
        return _prepare_noisy(options, arch, seed, patch_size, logged_range, objective)
    if options.data or options.clean:
        clean, noisy = _load_pair(options, options.data, "training")
    else:
        clean, noisy = _demo_pair(seed)
    clean, noisy, chosen = validated_pair(clean, noisy, options.data_range or logged_range)
    (clean, noisy), depth, slabs = _as_trained(options, arch, patch_size, clean, noisy)
    chosen = _kept_range(chosen, options, logged_range)
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
        split = _split(options, len(clean), seed, depth)
        subsets = [Subset(main, split.train), Subset(main, split.val), Subset(main, split.test)]
    train, val, test = subsets
    params = _params(clean, chosen, (train, val, test), CLEAN_TARGETS, slabs)
    # Everything that reads the data to check or describe it ends before a run starts.
    summary = profile.noise_profile(main, seed)
    scored = summary if test.source is main else profile.noise_profile(test.source, seed)
    return PreparedData(
        train, val, test, data_range, chosen.line, split, params, pairs, summary,
        targets_note=profile.noisy_targets(scored), slabs_note=_slabs_note(slabs, clean),
    )  # fmt: skip


def _split(options: DataOptions, n: int, seed: int, depth: int | None = None) -> Split:
    """The seeded split by --val-fraction and --test-fraction (and --groups). Planes of
    volumes (--slices, `depth` planes each) are split by volume: a volume's planes never
    train and score at once."""
    if depth is None:
        groups = _groups(options.groups, n)
    else:
        groups = volume_groups(n // depth, depth, _groups(options.groups, n // depth))
    return split_indices(n, options.val_fraction, options.test_fraction, seed, groups)


def _as_trained(options: DataOptions, arch, patch_size, *arrays):
    """The arrays as they train (None stays None), the planes per volume with --slices
    (None without), and the Z slabs each volume was cut into (1: none).

    Volumes too few to split into train, validation and test (one stack, typically) are
    cut into slabs along Z, each at least a patch (and a size multiple) deep, as many as
    give about ten in all; with --slices, the planes of a slab then stay in one split.
    """
    first, slabs = arrays[0], 1
    if len(first.shape) == 5 and not (options.val_data or options.test_data):
        sizes = patch_shape(patch_size, 3) or (0,)
        multiple = 1 if options.slices else arch.size_multiple
        least = max(sizes[0], multiple)
        slabs = slab_count(
            len(first), first.shape[1], least, options.val_fraction, options.test_fraction
        )
        if slabs > 1:
            arrays = tuple(None if a is None else as_slabs(a, slabs, multiple) for a in arrays)
    depth = arrays[0].shape[1] if options.slices else None
    return _sliced(options, *arrays), depth, slabs


def _sliced(options: DataOptions, *arrays):
    """The arrays as they train: volumes as their Z planes with --slices (None stays None)."""
    if not options.slices:
        return arrays
    return tuple(None if a is None else as_planes(a) for a in arrays)


def _slabs_note(slabs: int, images) -> str | None:
    """The line telling the user that each volume was cut into slabs, and how thick."""
    if slabs == 1:
        return None
    depth = images.shape[1] if len(images.shape) == 5 else "its"
    return (
        f"Each volume is cut into {slabs} slabs of {depth} planes along Z (logged as "
        f"{SLABS_PARAM}): too few volumes to split into train, validation and test whole."
    )


def _params(images, chosen, subsets, clean_use: str, slabs: int = 1) -> dict:
    """What a run logs about its data: shape, dtype, range, split sizes, clean images' use
    (and the Z slabs each volume was cut into, where it was)."""
    train, val, test = subsets
    return {
        **({SLABS_PARAM: slabs} if slabs > 1 else {}),
        "data.shape": str(images.shape),
        "data.dtype": str(images.dtype),
        AXES_PARAM: logged_axes(images),
        RANGE_PARAM: chosen.value,
        RANGE_RULE: chosen.rule,
        "data.channels": images.shape[-1],
        "split.train": len(train),
        "split.val": len(val),
        "split.test": len(test),
        CLEAN_USE: clean_use,
    }


def _kept_range(chosen, options: DataOptions, logged_range: float | None):
    if logged_range and options.data_range is None:
        return given_range(logged_range, "the run's own, as logged when it started", "logged")
    return chosen


def _prepare_noisy(options, arch, seed, patch_size, logged_range, objective) -> PreparedData:
    """prepare_data for an objective without clean targets: noisy images (and second shots)
    train and validate; the test images are --test-data's clean/noisy pairs (scored), or
    noisy ones split off (the objective's loss only)."""
    second = "noisy2" in OBJECTIVE_DATA[objective.data]
    noisy, noisy2 = _load_noisy(options, second)
    noisy, noisy2, chosen = validated_noisy(noisy, noisy2, options.data_range or logged_range)
    (noisy, noisy2), depth, slabs = _as_trained(options, arch, patch_size, noisy, noisy2)
    chosen = _kept_range(chosen, options, logged_range)
    data_range = chosen.value
    noise, noise_params = _noise(options)
    options.noise_params = noise_params
    if noise is not None and getattr(noise, "variance", None) is None:
        raise UsageError(
            f"Noise model {noise.name!r} does not say its variance, which --objective "
            f"{objective.name} needs. Choose a noise model that does (gaussian, poisson)."
        )
    if noise is not None and hyperparams.has_ranges(noise_params):
        ranged = next(f"{k}={v}" for k, v in noise_params.items() if isinstance(v, Range))
        raise UsageError(
            f"--objective {objective.name} needs the noise of the data known per image; a "
            f"range (--noise-param {ranged}) does not say it. Give that parameter one value."
        )
    _check_sizes(noisy, arch, options, patch_size)
    if noisy2 is not None and options.alignment_check:
        profile.check_alignment(noisy, noisy2, seed)
    multiple = arch.size_multiple if options.pad else 1
    main = PairSource(None, noisy, data_range, noise, noise_params, seed, multiple, noisy2)
    pairs = [("train", noisy, noisy2, options.data or options.noisy)]
    split = _split(options, len(noisy), seed, depth)
    if options.test_data:
        split = split.without_test()
        clean, test_noisy = _load_pair(options, options.test_data, "test", synthetic=False)
        clean, test_noisy, _ = validated_pair(clean, test_noisy, data_range)
        clean, test_noisy = _sliced(options, clean, test_noisy)
        _check_like(clean, test_noisy, main, arch, options, "test")
        source = PairSource(clean, test_noisy, data_range, noise, noise_params, seed, multiple)
        test = Subset(source, np.arange(len(clean)))
        pairs.append(("test", clean, test_noisy, options.test_data))
    else:
        test = Subset(main, split.test)
    train, val = Subset(main, split.train), Subset(main, split.val)
    clean_use = "test scores only" if test.source.has_clean else "none"
    params = _params(noisy, chosen, (train, val, test), clean_use, slabs)
    scored = profile.noise_profile(test.source, seed) if test.source.has_clean else {}
    return PreparedData(
        train, val, test, data_range, chosen.line, split, params, pairs, {},
        targets_note=profile.noisy_targets(scored) if scored else None,
        slabs_note=_slabs_note(slabs, noisy),
    )  # fmt: skip


def _check_like(clean, noisy, main, arch, options, role: str) -> None:
    """Clean/noisy pairs of a file that score or validate a model trained on `main`."""
    if noisy is not None and options.alignment_check:
        profile.check_alignment(clean, noisy, main.seed)
    if clean.shape[1:] != main.image_shape and not options.pad:
        check_multiple(clean, arch.size_multiple, arch.name, options.pad)
    if clean.shape[-1] != main.image_shape[-1]:
        raise DataError(
            f"{role} data has {clean.shape[-1]} channels, training data "
            f"{main.image_shape[-1]}. Pass data with the same channels."
        )


def _file_subsets(options, main, source, arch, pairs):
    if not (options.val_data and options.test_data):
        raise UsageError(
            "Pass both --val-data and --test-data, or neither (to split by fractions)."
        )
    subsets = [Subset(main, np.arange(len(main)))]
    for role, path in (("validation", options.val_data), ("test", options.test_data)):
        clean, noisy = _load_pair(options, path, role)
        clean, noisy, _ = validated_pair(clean, noisy, main.data_range)
        clean, noisy = _sliced(options, clean, noisy)
        _check_like(clean, noisy, main, arch, options, role)
        subsets.append(Subset(source(clean, noisy), np.arange(len(clean))))
        pairs.append((role, clean, noisy, path))
    return subsets
