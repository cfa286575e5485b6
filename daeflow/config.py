"""The validated options of a run: what is logged as MLflow params."""

from dataclasses import asdict, dataclass, field
from typing import Any

from daeflow.errors import UsageError

SCHEDULES = ("constant", "cosine", "step")


@dataclass
class DataOptions:
    """Where the images come from and how they are split."""

    clean: str | None = None
    noisy: str | None = None
    data: str | None = None
    clean_key: str = "clean"
    noisy_key: str = "noisy"
    noise: str | None = None
    noise_params: dict[str, Any] = field(default_factory=dict)
    groups: str | None = None
    val_data: str | None = None
    test_data: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    data_range: float | None = None
    pad: bool = False
    alignment_check: bool = True

    def __post_init__(self):
        if self.data_range is not None and self.data_range <= 0:
            raise UsageError(f"--data-range must be positive. Received: {self.data_range}")


@dataclass
class TrainOptions:
    """How the network is trained."""

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    patch_size: int | None = None
    patches_per_image: int = 1
    augment: bool = False
    time_budget: float | None = None
    early_stopping: int | None = None
    jit_compile: bool | None = None
    seed: int = 0

    def __post_init__(self):
        if self.learning_rate <= 0:
            raise UsageError(f"--learning-rate must be positive. Received: {self.learning_rate}")
        if self.lr_schedule not in SCHEDULES:
            raise UsageError(
                f"--lr-schedule must be one of {', '.join(SCHEDULES)}. "
                f"Received: {self.lr_schedule!r}"
            )


@dataclass
class RunConfig:
    """Everything one `daeflow run` needs."""

    arch: str
    arch_params: dict[str, Any] = field(default_factory=dict)
    data: DataOptions = field(default_factory=DataOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    experiment: str = "daeflow"
    run_name: str | None = None
    tracking_uri: str | None = None
    quiet: bool = False

    def params(self) -> dict[str, Any]:
        """Flat params for MLflow: training and data options, arch params prefixed."""
        flat = {"arch": self.arch}
        flat.update({f"arch.{k}": v for k, v in self.arch_params.items()})
        flat.update(asdict(self.train))
        data = asdict(self.data)
        noise_params = data.pop("noise_params")
        flat.update({f"data.{k}": v for k, v in data.items()})
        flat.update({f"noise.{k}": v for k, v in noise_params.items()})
        return flat
