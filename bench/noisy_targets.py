"""How noisy the data profile finds "clean" targets: the measurements behind NOISY_TARGETS.

For each kind of data and noise it prints, per target, the clean array's own noise over the
noisy array's (data.profile.noise_profile, the ratio the run's warning compares with
data.profile.NOISY_TARGETS):
- clean: the true clean images;
- avg4: the mean of 4 noisy captures (a usual way to make clean targets; 0.5 in theory);
- avg2: the mean of 2 noisy captures (0.71 in theory);
- N2N: a second noisy capture (Noise2Noise; 1 in theory).
Data: 64x64 grey crops of scikit-image's sample photographs with Poisson-Gaussian noise,
stored as floats, 12 bits in uint16 and 8 bits; the smooth synthetic pairs of the tests
(tests/conftest.make_pairs, Gaussian noise, uint8); daeflow's demo data (colour photographs,
Gaussian sigma 25, uint8). Runs in seconds on a CPU:

    .venv/bin/python bench/noisy_targets.py
"""

import numpy as np
import photos

from daeflow.data import profile
from daeflow.data.arrays import ImageArray
from daeflow.data.demo import demo_arrays
from daeflow.data.pairs import PairSource

PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "moon", "coins", "rocket")
SCALES = {"float": None, "12-bit": 4095, "8-bit": 255}


def crops(size: int = 64) -> np.ndarray:
    """Grey crops on [0, 1] of PHOTOS (bench/photos.py)."""
    return photos.crops(PHOTOS, size)[..., None]


def stored(images: np.ndarray, scale) -> np.ndarray:
    """Images on [0, 1] as a camera would store them: clipped, rounded to `scale` levels."""
    images = np.clip(images, 0, 1)
    if scale is None:
        return images.astype(np.float32)
    return np.rint(images * scale).astype(np.uint16 if scale > 255 else np.uint8)


def ratios(noisy: np.ndarray, targets: dict, data_range: float) -> dict:
    """{target: its own noise / the noisy array's own noise, averaged over channels}."""
    found = {}
    for name, target in targets.items():
        source = PairSource(ImageArray(target, "clean"), ImageArray(noisy, "noisy"), data_range)
        p = profile.noise_profile(source)
        channels = range(noisy.shape[-1])
        own = [p[f"clean_own_noise_c{c}"] / p[f"noisy_own_noise_c{c}"] for c in channels]
        found[name] = float(np.mean(own))
    return found


def targets(capture, store) -> dict:
    """The four kinds of target, from a function that draws one noisy capture."""
    return {
        "clean": store(capture(0)),
        "avg4": store(np.mean([capture() for _ in range(4)], 0)),
        "avg2": store(np.mean([capture() for _ in range(2)], 0)),
        "N2N": store(capture()),
    }


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import make_pairs

    rng = np.random.default_rng(0)
    photos = crops()
    photos = photos[rng.choice(len(photos), 32, replace=False)]
    rows = []
    for peak, read in ((30, 0.02), (100, 0.01), (1000, 0.005), (10000, 0.002)):

        def photo_capture(strength=1, peak=peak, read=read):
            noise = rng.poisson(photos * peak) / peak - photos + rng.normal(0, read, photos.shape)
            return photos + strength * noise

        for kind, scale in SCALES.items():
            found = targets(photo_capture, lambda images, scale=scale: stored(images, scale))
            noisy = stored(photo_capture(), scale)
            rows.append(
                (f"photos, peak {peak}, read {read}, {kind}", ratios(noisy, found, scale or 1.0))
            )
    smooth = [(f"smooth test pairs, sigma {s}, uint8", *make_pairs(n=24, size=32, sigma=s), s)
              for s in (2, 5, 10, 20, 40)]  # fmt: skip
    smooth.append(("demo photographs, sigma 25, uint8", *demo_arrays(0), 25))
    for label, clean, noisy, sigma in smooth:

        def capture(strength=1, clean=clean, sigma=sigma):
            return np.clip(clean + strength * rng.normal(0, sigma, clean.shape), 0, 255)

        def as_uint8(images):
            return np.rint(images).astype(np.uint8)

        rows.append((label, ratios(noisy, targets(capture, as_uint8), 255.0)))
    names = ("clean", "avg4", "avg2", "N2N")
    print(f"{'data and noise':44s} " + " ".join(f"{n:>6s}" for n in names))
    for label, found in rows:
        print(f"{label:44s} " + " ".join(f"{found[n]:6.3f}" for n in names))
    print(f"warning at a ratio of {profile.NOISY_TARGETS} or more")


if __name__ == "__main__":
    main()
