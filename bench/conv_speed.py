"""Raw training speed of small denoising CNNs with Keras on this machine (no daeflow involved).

    .venv/bin/python bench/conv_speed.py --seconds 6

Prints patches/s of `train_on_batch` for a DnCNN-style net (8 conv layers, 32 channels, the
issue's reference) and for daeflow's residual_fast at its defaults, XLA off and on.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from keras import layers


def dncnn(depth: int, width: int) -> keras.Model:
    inputs = keras.Input((None, None, 1))
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    for _ in range(depth - 2):
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    noise = layers.Conv2D(1, 3, padding="same")(x)
    return keras.Model(inputs, layers.Subtract()([inputs, noise]))


def residual_fast() -> keras.Model:
    from daeflow.registry import get_architecture

    spec = get_architecture("residual_fast").spec
    return spec.build((None, None, 1), spec.defaults)


def patches_per_second(model, batch, seconds: float, jit: bool) -> float:
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=jit)
    for _ in range(3):
        model.train_on_batch(batch, batch)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        model.train_on_batch(batch, batch)
        steps += 1
    return steps * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--patch", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    batch = np.random.default_rng(0).random((args.batch_size, args.patch, args.patch, 1))
    batch = batch.astype(np.float32)
    nets = {
        "dncnn 8x32 (issue's reference)": lambda: dncnn(8, 32),
        "residual_fast (defaults)": residual_fast,
    }
    for name, make in nets.items():
        for jit in (False, True):
            rate = patches_per_second(make(), batch, args.seconds, jit)
            print(
                f"{name:<40} XLA {'on ' if jit else 'off'} {rate:7.1f} patches/s "
                f"({args.patch}x{args.patch}, batch {args.batch_size})",
                flush=True,
            )


if __name__ == "__main__":
    main()
