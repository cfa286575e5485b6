"""Where training runs: --devices all|cpu|N, with MirroredStrategy over more than one device.

On a machine without GPUs, N > 1 splits the CPU into N logical devices: the same code path
as N GPUs (CI tests it that way), though no faster than one device.
"""

import contextlib
from dataclasses import dataclass, field

from daeflow.errors import UsageError


def parse_devices(text: str) -> str | int:
    """--devices: 'all', 'cpu' or a positive number of devices."""
    text = str(text).strip().lower()
    if text in ("all", "cpu"):
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(
        f"--devices must be all, cpu or a number of devices (1 or more). Received: {text!r}"
    )


@dataclass
class Placement:
    """The devices training uses and the tf.distribute strategy over them (None: one)."""

    names: list[str]
    strategy: object = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.names)

    def scope(self):
        """Variables made inside are mirrored on every device."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def batch_per_device(self, batch_size: int) -> int:
        return batch_size // self.count


def place(requested: str, batch_size: int) -> Placement:
    """Make the requested devices visible; call it before TensorFlow runs its first op."""
    import tensorflow as tf

    wanted = parse_devices(requested)
    gpus = tf.config.list_physical_devices("GPU")
    if wanted == "cpu" or (not gpus and wanted == "all"):
        if gpus:
            _set(lambda: tf.config.set_visible_devices([], "GPU"), "--devices cpu")
        names = ["/cpu:0"]
    elif gpus:
        count = len(gpus) if wanted == "all" else wanted
        if count > len(gpus):
            raise UsageError(f"--devices {count}: this machine has {len(gpus)} GPUs.")
        _set(lambda: tf.config.set_visible_devices(gpus[:count], "GPU"), f"--devices {count}")
        names = [f"/gpu:{i}" for i in range(count)]
    elif wanted == 1:
        names = ["/cpu:0"]
    else:
        _split_cpu(tf, wanted)
        names = [f"/cpu:{i}" for i in range(wanted)]
    if len(names) > 1 and batch_size % len(names):
        raise UsageError(
            f"--batch-size {batch_size} does not split evenly over {len(names)} devices: "
            f"choose a multiple of {len(names)}."
        )
    strategy = tf.distribute.MirroredStrategy(names) if len(names) > 1 else None
    return Placement(names, strategy)


def _split_cpu(tf, count: int) -> None:
    """The CPU as `count` logical devices (it must not have been split differently)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    configs = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    _set(lambda: tf.config.set_logical_device_configuration(cpu, configs), f"--devices {count}")


def _set(action, flag: str) -> None:
    try:
        action()
    except RuntimeError:
        raise UsageError(
            f"{flag}: TensorFlow has started with other devices in this process; "
            "start a new one (e.g. the daeflow command line)."
        ) from None
