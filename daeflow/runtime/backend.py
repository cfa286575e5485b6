"""Import Keras on the TensorFlow backend once, without TensorFlow's start-up chatter."""

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's oneDNN kernels are off by default on CPUs without AVX-512 VNNI/BF16/AMX; on an
# AVX2-only CPU they denoise 1.8x faster (bench/denoise_speed.py). TF_ENABLE_ONEDNN_OPTS=0
# switches them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# The largest config.json of a .keras file that daeflow hands to Keras's JSON parser. It
# describes the layers only (the weights are in another member): a few KB for daeflow's
# architectures, well under 1 MB for the deepest Keras applications, so 16 MiB is generous
# for any real architecture and still stops a config.json that inflates to gigabytes.
KERAS_CONFIG_MAX_BYTES = 16 * 2**20


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ logs ignore Python's sys.stderr."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def load_keras():
    """Import and return keras; the first call also initialises TensorFlow's devices quietly."""
    if "tensorflow" not in sys.modules:
        with _stderr_silenced():
            import tensorflow as tf

            tf.config.list_physical_devices()
    import keras

    return keras


def walk_layers(model):
    """Every layer of a Keras model, nested models' layers included."""
    pending = list(model.layers)
    while pending:
        layer = pending.pop()
        yield layer
        pending.extend(getattr(layer, "layers", []))


def load_keras_file(path, where: str | None = None, compile: bool = False):
    """Load a .keras file in Keras's safe mode (no Python code from the file); uncompiled
    unless `compile` (a checkpoint, whose optimizer state is needed)."""
    from pathlib import Path

    from daeflow.errors import ModelLoadError, one_line

    path, where = Path(path), where or str(path)
    if path.suffix in (".h5", ".hdf5"):
        raise ModelLoadError(
            f"{where} is a legacy HDF5 model, which daeflow does not load. Save it in the "
            ".keras format (model.save('model.keras'))."
        )
    import zipfile

    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read the model {where}: {exc.strerror}.") from None
    if not is_zip:
        raise ModelLoadError(
            f"{where} is not a .keras file (not a valid zip archive): it is corrupt, cut short "
            "or in another format. Save the model again with model.save('model.keras')."
        )
    check_keras_archive(path, where)
    keras = load_keras()
    import warnings

    try:
        with warnings.catch_warnings():
            # Keras skips a member that would be unpacked outside its folder, with a warning
            # printed by Python; check_keras_archive refuses those first, and any it lets
            # through is refused here, in daeflow's one line, rather than printed.
            warnings.filterwarnings("error", message="Skipping invalid path", category=UserWarning)
            return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:
        text = one_line(exc)
        if isinstance(exc, UserWarning):
            reason = (
                f"{text.rstrip('.')}: a member is named to be unpacked outside the model's "
                "folder. Save the model again with model.save('model.keras')."
            )
        elif "lambda" in text.lower():
            reason = (
                "it holds a Lambda layer with Python code, which daeflow never runs (a model "
                "is data). Rebuild it from registered layers."
            )
        else:
            reason = (
                f"{type(exc).__name__}: {text[:300].rstrip('.')}. Check that the file is "
                "complete and that the plugin that made it is installed."
            )
        raise ModelLoadError(f"Cannot load the model {where}: {reason}") from None


def check_keras_archive(path, where: str) -> None:
    """Refuse a .keras archive before Keras reads it: a member named to be unpacked outside
    the folder Keras extracts it into ('..', an absolute path), or a config.json larger than
    KERAS_CONFIG_MAX_BYTES."""
    import zipfile
    from pathlib import PurePosixPath

    from daeflow.errors import ModelLoadError

    refuse = f"daeflow refuses the model {where}:"
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if not parts or parts[0] == "/" or ".." in parts:
                    raise ModelLoadError(
                        f"{refuse} its member {name!r} would be unpacked outside the model's "
                        "folder. Save the model again with model.save('model.keras')."
                    )
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                raise ModelLoadError(
                    f"{where} is not a .keras file: it holds no config.json. Save the model "
                    "again with model.save('model.keras')."
                ) from None
            # zipfile never inflates a member past the size the directory gives it, so this
            # bounds what Keras reads even where the directory lies.
            if info.file_size > KERAS_CONFIG_MAX_BYTES:
                raise ModelLoadError(
                    f"{refuse} its config.json inflates to {info.file_size} bytes, more than "
                    f"the {KERAS_CONFIG_MAX_BYTES // 2**20} MiB that any real architecture needs."
                )
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(
            f"Cannot read the model {where}: {exc}. Check that the file is complete, or save "
            "it again."
        ) from None
