"""When two runs' test scores can be ranked together: scored on the same data (the content
digest, and the synthetic noise drawn on it), the same test images and the same data range.

A PSNR is 10 log10(R^2 / MSE): the same images scored at range 65535 instead of 4095 gain
24 dB, so runs that differ in any of these are shown apart, with the difference said.
Everything is read from the tags and params every daeflow command logs; values that a run
did not log read as "?", so old runs still group with each other.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from daeflow.config import noise_params_of
from daeflow.data.prepare import CLEAN_TARGETS, CLEAN_USE
from daeflow.data.ranges import RANGE_PARAM
from daeflow.track.names import TAG_COMMAND, TAG_EVALUATION_DIGEST, TAG_TRAIN_DIGEST, tag_digest

DIGEST_TAGS = (TAG_TRAIN_DIGEST, TAG_EVALUATION_DIGEST)
TAG_TEST_DIGEST = tag_digest("test")  # set when the test images came from --test-data
UNKNOWN = "?"


@dataclass(frozen=True)
class ScoredOn:
    """What a run's test numbers were measured on; equal ones can be ranked together."""

    data: str  # SHA-256 of the data (the clean array alone when the noise is synthetic)
    noise: str  # the synthetic noise model and its parameters; "" for noisy arrays
    split: str  # which images were the test set, in words
    data_range: str  # the full-scale value R of the PSNR, e.g. "4095"

    def differences(self, other: "ScoredOn") -> list[str]:
        """The names of the fields that differ from `other`'s."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def describe(self) -> str:
        """'range 4095, test split seed 0 val 0.1 test 0.1' (and the noise, when synthetic)."""
        parts = [f"range {self.data_range}", f"test split {self.split}"]
        if self.noise:
            parts.append(f"noise {self.noise}")
        return ", ".join(parts)


def data_digest(tags: Mapping) -> str | None:
    """The content digest of the data a run trained on (or, for evaluate, scored)."""
    return next((tags[t] for t in DIGEST_TAGS if t in tags), None)


def _number(text, otherwise: str = UNKNOWN) -> str:
    try:
        return f"{float(text):g}"
    except (TypeError, ValueError):
        return otherwise


def _given(text) -> bool:
    return text is not None and str(text) not in ("None", "")


def _synthetic(params: Mapping) -> bool:
    """Whether the run drew noise on clean images: --noise of a run that trained without
    clean images (r2r) names the noise its noisy images have, and nothing is drawn."""
    return _given(params.get("data.noise")) and params.get(CLEAN_USE, CLEAN_TARGETS) == (
        CLEAN_TARGETS
    )


def _noise(params: Mapping) -> str:
    model = params.get("data.noise")
    if not _synthetic(params):
        return ""
    settings = " ".join(
        f"{k}={_number(v, str(v))}" for k, v in sorted(noise_params_of(params).items())
    )
    return f"{model} {settings}".strip()


def _split(params: Mapping, tags: Mapping) -> str:
    if tags.get(TAG_COMMAND) == "evaluate":
        return "all images"
    seeded = f"seed {params.get('seed', UNKNOWN)}"
    if _given(tags.get(TAG_TEST_DIGEST)):
        test = f"file {str(tags[TAG_TEST_DIGEST])[:12]}"
        # Synthetic noise on a test file is drawn from the seed.
        return f"{test} {seeded}" if _synthetic(params) else test
    if not any(k in params for k in ("seed", "data.val_fraction", "data.test_fraction")):
        return UNKNOWN
    words = [
        seeded,
        f"val {_number(params.get('data.val_fraction'))}",
        f"test {_number(params.get('data.test_fraction'))}",
    ]
    if _given(params.get("data.groups")):
        words.append(f"groups {Path(str(params['data.groups'])).name}")
    return " ".join(words)


def scored_on(params: Mapping, tags: Mapping) -> ScoredOn:
    """What a run was scored on, from its params and tags (a run's, or about to be logged)."""
    return ScoredOn(
        data=data_digest(tags) or UNKNOWN,
        noise=_noise(params),
        split=_split(params, tags),
        data_range=_number(params.get(RANGE_PARAM)),
    )


def of_run(run) -> ScoredOn:
    """What a stored MLflow run was scored on."""
    return scored_on(run.data.params, run.data.tags)
