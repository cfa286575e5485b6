"""Which float types a model computes in: --precision auto|float32|mixed_bfloat16|mixed_float16.

Mixed policies keep the weights in float32 and compute in 16 bits; the model's output, and
so the loss, stay float32. Logged models are always saved in float32, so that a model trained
in one precision loads and denoises in any other.
"""

import contextlib
from dataclasses import dataclass

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
OUTPUT_LAYER = "float32_output"


@dataclass(frozen=True)
class Precision:
    """The Keras dtype policy a run uses, and why it was chosen."""

    policy: str
    reason: str

    @property
    def mixed(self) -> bool:
        return self.policy != "float32"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def tensor_core_gpus() -> list[str]:
    """Names of the visible CUDA GPUs with tensor cores (compute capability 7.0 or more)."""
    from daeflow.runtime.backend import load_keras

    load_keras()  # TensorFlow started without its start-up chatter
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if tuple(details.get("compute_capability", (0, 0))) >= (7, 0):
            found.append(details.get("device_name", gpu.name))
    return found


def choose(requested: str = "auto") -> Precision:
    """The precision to use: the one asked for, or for `auto` the fastest this machine has."""
    from daeflow.errors import UsageError

    if requested not in PRECISIONS:
        raise UsageError(
            f"--precision must be one of {', '.join(PRECISIONS)}. Received: {requested!r}"
        )
    if requested != "auto":
        return Precision(requested, "asked for with --precision")
    gpus = tensor_core_gpus()
    if gpus:
        return Precision("mixed_float16", f"auto: {gpus[0]} has tensor cores")
    flags = sorted(cpu_flags() & set(BF16_CPU_FLAGS))
    if flags:
        return Precision("mixed_bfloat16", f"auto: the CPU has {' and '.join(flags)}")
    return Precision(
        "float32",
        "auto: no GPU with tensor cores, and the CPU has neither amx_bf16 nor avx512_bf16",
    )


@contextlib.contextmanager
def policy(name: str):
    """Layers made inside compute in `name` (a Keras dtype policy); the global one after."""
    from daeflow.runtime.backend import load_keras

    keras = load_keras()
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def with_float32_output(model):
    """The model, its output cast to float32 by one last layer if it computes in 16 bits."""
    from daeflow.runtime.backend import load_keras

    keras = load_keras()
    if all(str(t.dtype) == "float32" for t in _outputs(model)):
        return model
    inputs = getattr(model, "inputs", None)
    if not inputs:  # a subclassed model: call it on a new input
        shape = (None, None, model.input_shape[-1]) if hasattr(model, "input_shape") else None
        inputs = [keras.Input(shape=shape)]
        outputs = model(inputs[0])
    else:
        outputs = model.outputs[0]
    cast = keras.layers.Activation("linear", dtype="float32", name=OUTPUT_LAYER)(outputs)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, cast, name=model.name)


def _outputs(model):
    try:
        return list(model.outputs)
    except (AttributeError, ValueError):
        return []


def in_policy(model, name: str):
    """A copy of `model` computing in policy `name`, with the same (float32) weights.

    The model's configuration is rebuilt with every layer's dtype policy replaced, in
    Keras's safe mode; the float32 output layer stays float32.
    """
    from daeflow.runtime.backend import load_keras

    keras = load_keras()
    if _policies(model) == {name}:
        return model
    config = keras.saving.serialize_keras_object(model)
    _replace_policies(config, name)
    copy = keras.saving.deserialize_keras_object(config, safe_mode=True)
    copy.set_weights(model.get_weights())
    return copy


def _policies(model) -> set[str]:
    """The dtype policies of a model's layers, the float32 output layer left out."""
    from daeflow.runtime.backend import walk_layers

    return {
        layer.dtype_policy.name
        for layer in walk_layers(model)
        if layer.name != OUTPUT_LAYER and not type(layer).__name__ == "InputLayer"
    }


def _replace_policies(config, name: str) -> None:
    """Set every DTypePolicy in a serialized Keras config to `name`, in place."""
    if isinstance(config, dict):
        inner = config.get("config")
        inner_name = inner.get("name") if isinstance(inner, dict) else None
        if OUTPUT_LAYER in (config.get("name"), inner_name):
            return
        if str(config.get("class_name", "")).endswith("DTypePolicy"):
            config.setdefault("config", {})["name"] = name
            return
        for value in config.values():
            _replace_policies(value, name)
    elif isinstance(config, list):
        for value in config:
            _replace_policies(value, name)


def training_policy(model) -> str:
    """The policy most of a model's layers compute in."""
    found = _policies(model)
    return found.pop() if len(found) == 1 else "float32"
