"""BM3D on Set12 with bench/quality.py's protocol: the reference a denoiser is compared with.

The same noisy images as bench/quality.py (noise from numpy.random.default_rng(0) per image,
times sigma, not clipped), the same PSNR/SSIM; BM3D (the `bm3d` package, Makinen et al.
2020) is told the true sigma. It needs a Python with bm3d, which daeflow does not install:

    python3.11 -m venv /tmp/bm3d && /tmp/bm3d/bin/pip install bm3d pillow scikit-image pluggy
    PYTHONPATH=. /tmp/bm3d/bin/python bench/bm3d_reference.py --sigma 15 --sigma 25 --sigma 50
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import PUBLISHED, print_table, set12_scores  # noqa: E402


def bm3d_model(sigma: float):
    """A callable like a Keras model: (1, H, W, 1) noisy on [0, 1] -> BM3D's estimate."""
    import bm3d

    def denoise(noisy, training=False):
        return bm3d.bm3d(noisy[0, ..., 0].astype(np.float64), sigma_psd=sigma / 255)[
            None, ..., None
        ]

    return denoise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, action="append", help="0-255 scale (repeat)")
    args = parser.parse_args()
    for sigma in args.sigma or [25.0]:
        print(f"\nSet12, Gaussian sigma {sigma:g}, BM3D (bm3d package, sigma_psd = sigma / 255)")
        start = time.perf_counter()
        mean = print_table(set12_scores(bm3d_model(sigma), sigma=sigma)[0])
        published = PUBLISHED.get(sigma, (None,))[0]
        print(
            f"sigma {sigma:g}: BM3D {mean:.2f} dB here (published {published}), "
            f"{time.perf_counter() - start:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
