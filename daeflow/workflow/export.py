"""`daeflow export`: a model as a TensorFlow SavedModel or an ONNX file, checked against Keras.

The exported graph takes float32 (N, H, W, C) images on [0, 1] and returns the same;
`daeflow.json` beside it (and, for ONNX, the file's metadata_props) records how to feed
it: the data range to divide by, the size multiple, the tile margin that keeps tiles
seamless, the channels.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.errors import DaeflowError, MissingDependency, UsageError

FORMATS = ("savedmodel", "onnx")
PROBE = 256  # height and width of the check image
TOLERANCE = 1e-4


@dataclass
class Exported:
    """Where the export went, and how far its output is from Keras's on the check image."""

    path: Path
    metadata_path: Path
    max_difference: float
    checked_with: str


def export_metadata(denoiser, fmt: str) -> dict:
    """What a runtime needs to use the exported graph as daeflow does."""
    from daeflow.runtime.tiles import TILE

    return {
        "format": fmt,
        "input": "float32 (N, H, W, C) on [0, 1]: divide the data by data_range",
        "output": "float32 (N, H, W, C) on [0, 1]: clip, multiply by data_range",
        "data_range": denoiser.data_range,
        "data_dtype": denoiser.data_dtype,
        "channels": denoiser.channels,
        "size_multiple": denoiser.size_multiple,
        "tile": TILE,
        "tile_margin": denoiser.margin,
        "arch": denoiser.arch,
        "source": denoiser.uri,
    }


def check_target(fmt: str, output: Path, force: bool) -> None:
    """Refuse an unknown format, a missing tool, or an output that exists (without --force)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    if fmt == "onnx":
        _onnx_tools()
    if output.exists() and not force:
        raise UsageError(f"{output} exists. Choose another -o or pass --force to replace it.")
    if not output.parent.is_dir():
        raise UsageError(f"The folder of -o {output} does not exist. Create it first.")


def _onnx_tools():
    try:
        import onnx
        import tf2onnx  # noqa: F401  (Keras's ONNX export runs on it)
    except ImportError:
        raise MissingDependency(
            "ONNX export needs tf2onnx and onnx: pip install 'daeflow[export]'."
        ) from None
    return onnx


def export_model(denoiser, fmt: str, output: Path, force: bool = False) -> Exported:
    """Export the Keras model, record its metadata, and compare it with Keras on a probe."""
    output = Path(output)
    check_target(fmt, output, force)
    if output.exists():
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    metadata = export_metadata(denoiser, fmt)
    model = denoiser.model
    probe = probe_image(denoiser)
    expected = np.asarray(model.predict_on_batch(probe))  # Keras exports called models only
    if fmt == "savedmodel":
        model.export(str(output), format="tf_saved_model", verbose=False)
        metadata_path = output / "daeflow.json"
    else:
        model.export(str(output), format="onnx", verbose=False)
        _write_onnx_metadata(output, metadata)
        metadata_path = output.with_name(output.name + ".daeflow.json")
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
    actual, tool = run_exported(fmt, output, probe)
    difference = float(np.max(np.abs(actual - expected)))
    if not difference <= TOLERANCE:
        raise DaeflowError(
            f"The exported {fmt} model at {output} computes something else than Keras (largest "
            f"difference {difference:.2e} > {TOLERANCE:g} on a check image): do not use it."
        )
    return Exported(output, metadata_path, difference, tool)


def probe_image(denoiser) -> np.ndarray:
    """A smooth image with noise, on [0, 1], of a size the model takes."""
    size = -(-PROBE // denoiser.size_multiple) * denoiser.size_multiple
    yy, xx = np.mgrid[0:size, 0:size] / size
    smooth = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    noise = np.random.default_rng(0).normal(0, 0.1, (size, size, denoiser.channels))
    return np.clip(smooth[..., None] + noise, 0, 1).astype(np.float32)[None]


def run_exported(fmt: str, path: Path, batch: np.ndarray) -> tuple[np.ndarray, str]:
    """The exported graph's output on `batch`, run by its own runtime (which we just wrote)."""
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise MissingDependency(
                "Checking the ONNX file needs onnxruntime: pip install 'daeflow[export]'."
            ) from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return session.run(None, {name: batch})[0], f"onnxruntime {onnxruntime.__version__}"
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(batch))), f"TensorFlow {tf.__version__}"


def _write_onnx_metadata(path: Path, metadata: dict) -> None:
    onnx = _onnx_tools()
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"daeflow.{key}", json.dumps(value)
    onnx.save(model, str(path))
