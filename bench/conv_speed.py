"""Raw training speed of small denoising CNNs with Keras on this machine (no daeflow involved).

    .venv/bin/python bench/conv_speed.py --seconds 6

Prints patches/s of `train_on_batch` for a DnCNN-style net (8 conv layers, 32 channels, the
issue's reference) and for daeflow's residual_fast at its defaults, XLA off and on, with the
arithmetic rate that speed means (a training step costs about 3 forward passes: 6 FLOPs per
multiply-accumulate) next to this machine's float32 matrix-multiply rate, its practical peak.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def dncnn(shape, depth: int = 8, width: int = 32) -> keras.Model:
    inputs = keras.Input(shape)
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    for _ in range(depth - 2):
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    noise = layers.Conv2D(1, 3, padding="same")(x)
    return keras.Model(inputs, layers.Subtract()([inputs, noise]))


def residual_fast(shape) -> keras.Model:
    from daeflow.plugin.registry import get_architecture

    spec = get_architecture("residual_fast").spec
    return spec.build(shape, spec.defaults)


def macs_per_patch(model) -> int:
    """Multiply-accumulates of one forward pass over one input of the model's fixed size."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):
            height, width = layer.input.shape[1:3]  # each input pixel scatters one kernel
        elif isinstance(layer, layers.Conv2D):
            height, width = layer.output.shape[1:3]
        else:
            continue
        total += height * width * int(np.prod(layer.kernel.shape))
    return total


def patches_per_second(model, batch, seconds: float, jit: bool) -> float:
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=jit)
    for _ in range(3):
        model.train_on_batch(batch, batch)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        model.train_on_batch(batch, batch)
        steps += 1
    return steps * len(batch) / (time.perf_counter() - start)


def matmul_gflops(seconds: float, size: int = 2048) -> float:
    """float32 GFLOP/s of TensorFlow's large matrix multiply: its practical peak on this CPU."""
    a = tf.random.normal((size, size))
    product = tf.function(lambda: tf.matmul(a, a))
    product().numpy()
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        product().numpy()
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--patch", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    shape = (args.patch, args.patch, 1)
    batch = np.random.default_rng(0).random((args.batch_size, *shape)).astype(np.float32)
    peak = matmul_gflops(args.seconds)
    print(f"tf.matmul 2048x2048 float32: {peak:.1f} GFLOP/s (this machine's practical peak)")
    nets = {  # name: (builder, patches/s the reference figure assumed, if any)
        "dncnn 8x32 (issue's reference)": (dncnn, 422),
        "residual_fast (defaults)": (residual_fast, None),
    }
    for name, (make, assumed_rate) in nets.items():
        flops = 6 * macs_per_patch(make(shape))  # forward + backward, per patch
        print(
            f"{name}: {flops / 1e6:.0f} MFLOP per training patch; at the matmul peak "
            f"{peak * 1e9 / flops:.0f} patches/s"
        )
        if assumed_rate:
            print(
                f"  the issue's {assumed_rate} patches/s would need "
                f"{assumed_rate * flops / 1e9:.0f} GFLOP/s"
            )
        for jit in (False, True):
            rate = patches_per_second(make(shape), batch, args.seconds, jit)
            print(
                f"  XLA {'on ' if jit else 'off'} {rate:7.1f} patches/s "
                f"({args.patch}x{args.patch}, batch {args.batch_size}), "
                f"{rate * flops / 1e9:.1f} GFLOP/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
