"""The plain in-memory recipe that daeflow replaces, for bench/memory.py to measure.

np.load both arrays, scale to float32 [0, 1], sklearn train_test_split, the conv_baseline
autoencoder (daeflow's builder, the same layers), fit with validation_data, as a tutorial would.

    .venv/bin/python bench/plain_recipe.py --clean DIR/clean.npy --noisy DIR/noisy.npy
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse
import time

import keras
import numpy as np
from sklearn.model_selection import train_test_split


def conv_baseline(input_shape) -> keras.Model:
    """daeflow's conv_baseline with its default hyperparameters: the very same model."""
    from daeflow.plugin.registry import get_architecture

    spec = get_architecture("conv_baseline").spec
    return spec.build(input_shape, spec.defaults)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", required=True, help="Clean images .npy, (N, H, W[, C]).")
    parser.add_argument("--noisy", required=True, help="Noisy images .npy, same shape.")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-size", type=float, default=0.2, help="train_test_split share.")
    parser.add_argument(
        "--no-validation-data",
        action="store_true",
        help="Fit without validation_data=(x_test, y_test).",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    clean = np.load(args.clean)
    noisy = np.load(args.noisy)
    if clean.ndim == 3:
        clean, noisy = clean[..., np.newaxis], noisy[..., np.newaxis]
    x = noisy.astype("float32") / 255.0
    y = clean.astype("float32") / 255.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=args.test_size, random_state=args.seed
    )
    keras.utils.set_random_seed(args.seed)
    model = conv_baseline(x.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        validation_data=None if args.no_validation_data else (x_test, y_test),
        verbose=2,
    )
    final = {k: round(float(v[-1]), 6) for k, v in history.history.items()}
    print(
        f"plain recipe: {len(x_train)} train / {len(x_test)} test images {x.shape[1:]}, "
        f"{args.epochs} epoch(s), batch {args.batch_size}: {final} "
        f"in {time.perf_counter() - start:.1f}s"
    )


if __name__ == "__main__":
    main()
