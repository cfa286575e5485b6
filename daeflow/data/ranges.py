"""The data range (the full-scale value images are divided by): one rule for every command.

`run`, `sweep`, `tune`, `baseline` (through data.prepare), `evaluate`, `denoise` and the
logged model's pyfunc all call `choose_range`, which says in one line what it chose and
why; `rule` (logged as the param RANGE_RULE) names the branch taken.

For data alone (`own_range`):
- uint8: 255, always. A uint8 image whose maximum is 200 is still 8-bit data; smaller
  bit depths are not guessed for uint8.
- uint16: the full scale of the smallest of 10, 12 and 14 bits that holds the observed
  maximum of all the arrays given (clean and noisy), else 65535. Cameras store 10-, 12-
  and 14-bit values in uint16; scoring them against 65535 inflates PSNR by up to 24 dB
  and trains the network on images that fill a sixteenth of [0, 1]. Dark data can fool
  the rule (a 12-bit image that never exceeds 1023 looks 10-bit), so the line says how
  to override it.
- floats: 1 when the first (clean) array's maximum is within (0, 1], else that maximum.
  Only the first array counts: noise may push noisy floats a little beyond the range.

With a model (`stored` range and `stored_dtype` from its metadata), on new input:
- The input has the model's dtype (any float counts as any float) and fits its range:
  the stored range, so that the input is scaled as the training data were. A uint16
  input whose own rule gives a smaller range (a model trained on 65535, input that never
  exceeds 4095) keeps the stored range, and the line says so and how to override.
- An integer input of the model's dtype that exceeds the stored range: scaled by the
  stored range it would leave [0, 1] and every value above the range would be clipped in
  the output; the input's own rule is used instead, and the line says so.
- Another dtype (a uint8 model on 12-bit input): the stored range says nothing about
  this input's scale, and what the network learned is images on [0, 1]; the input's own
  rule scales it there, and the line says so.
- Models without a stored dtype (before it was recorded): the stored range for floats,
  the input's own rule for integers, as before.
Nothing is refused here: every branch has a scale that maps the input into [0, 1]. What
would be wrong is refused by `checks.check_values`: float input beyond twice the
range chosen (floats holding 0-255 values given to a [0, 1] model), which no rule can
tell apart from bad data. The output is clipped to the range and to the input dtype's
own limits (`infer.tiling.restore`), so it never leaves the input dtype's range.
"""

from dataclasses import dataclass

import numpy as np

from daeflow.data.arrays import ImageArray
from daeflow.errors import DataError

BIT_DEPTHS = (10, 12, 14)  # what uint16 data may hold below 16 bits; uint8 is always 8-bit
RANGE_PARAM = "data.range"  # the MLflow param: the range every number was scored on
RANGE_RULE = "data.range_rule"  # the MLflow param: how the range was chosen


@dataclass(frozen=True)
class DataRange:
    """The full-scale value to divide images by, how it was chosen, and the line saying so.

    rule: "given" (--data-range), "dtype" (uint8 255, uint16 65535), "observed 12-bit"
    (uint16 data that fit 12 bits; 10 and 14 likewise), "unit" (floats within [0, 1]),
    "observed" (the floats' maximum), "model" (stored with the model), "logged" (a
    resumed run's own range). `model_differs`: the input does not look like the data the
    model was trained on (another dtype or range).
    """

    value: float
    rule: str
    line: str
    model_differs: bool = False


def observed_maximum(images: ImageArray) -> float:
    """The largest value in the array, read block by block."""
    return max(float(np.max(block)) for _, _, block in images.blocks() if block.size)


def given_range(value: float, by: str = "from --data-range", rule: str = "given") -> DataRange:
    """A range the user (or a run's log) gave: used as it is."""
    return DataRange(float(value), rule, f"Using data range {value:g} ({by}).")


@dataclass(frozen=True)
class _Own:
    """The range of data on their own, said alone (`line`) and after a model's (`about`)."""

    value: float
    rule: str
    line: str
    about: str  # "this uint16 input's maximum is 4095: using its 12-bit range 4095"
    maximum: float | None  # the observed maximum, where it was read


def _own(arrays: list[ImageArray]) -> _Own:
    dtype = arrays[0].dtype
    if dtype == np.uint8:
        return _Own(
            255.0, "dtype", "Using data range 255 (uint8).",
            "this input is uint8: using data range 255", None,
        )  # fmt: skip
    if dtype == np.uint16:
        top = max(observed_maximum(images) for images in arrays)
        for bits in BIT_DEPTHS:
            full = float(2**bits - 1)
            if top <= full:
                return _Own(
                    full,
                    f"observed {bits}-bit",
                    f"uint16 data never exceed {top:g}: using the {bits}-bit range {full:g}; "
                    "pass --data-range 65535 to score on the full uint16 scale.",
                    f"this uint16 input's maximum is {top:g}: using its {bits}-bit range {full:g}",
                    top,
                )
        return _Own(
            65535.0, "dtype", "Using data range 65535 (uint16).",
            f"this uint16 input's maximum is {top:g}: using data range 65535", top,
        )  # fmt: skip
    top = observed_maximum(arrays[0])
    about = f"this {dtype} input's maximum is {top:.4g}: using"
    if dtype.kind == "f" and 0 < top <= 1:
        return _Own(
            1.0, "unit",
            f"Using data range 1 (floats with maximum {top:.4g}); pass --data-range to change.",
            f"{about} data range 1", top,
        )  # fmt: skip
    if top <= 0:
        raise DataError(
            f"{arrays[0].name} array has no positive values, so no data range can be inferred. "
            "Pass --data-range."
        )
    return _Own(
        top, "observed",
        f"Using data range {top:g} (observed maximum); pass --data-range to change.",
        f"{about} it as the data range", top,
    )  # fmt: skip


def own_range(arrays: list[ImageArray]) -> DataRange:
    """The range of data on their own (no model): see the module's docstring."""
    own = _own(arrays)
    return DataRange(own.value, own.rule, own.line)


def _same_kind(dtype: np.dtype, stored_dtype: str | None) -> bool:
    if dtype.kind == "f":
        return stored_dtype is None or np.dtype(stored_dtype).kind == "f"
    return stored_dtype == str(dtype)


def choose_range(
    arrays: list[ImageArray],
    given: float | None = None,
    stored: float | None = None,
    stored_dtype: str | None = None,
) -> DataRange:
    """The one data range for `arrays` (clean first, then noisy), with a model's if any.

    `given`: --data-range, which always wins. `stored`, `stored_dtype`: what the model
    was trained on. The rule, and why it is right, in the module's docstring.
    """
    if given is not None:
        return given_range(given)
    own = _own(arrays)
    dtype = arrays[0].dtype
    if not stored:
        return DataRange(own.value, own.rule, own.line)
    if not _same_kind(dtype, stored_dtype):
        if stored_dtype is None:  # an integer input to a model that did not record its dtype
            return DataRange(own.value, own.rule, own.line)
        return DataRange(
            own.value,
            own.rule,
            f"The model was trained on {stored_dtype} data (range {stored:g}); {own.about}; "
            "pass --data-range to change.",
            model_differs=True,
        )
    stored = float(stored)
    kept = f"Using data range {stored:g} (stored with the model)"
    if dtype.kind == "f":
        if own.rule == "unit" and stored >= 2:
            return DataRange(
                stored,
                "model",
                f"{kept}, but this input's maximum is {own.maximum:.4g}: pass --data-range 1 "
                "if it holds images on [0, 1].",
                model_differs=True,
            )
        return DataRange(stored, "model", f"{kept}.")
    top = own.maximum
    if top is None:  # uint8: not read when the stored range covers the whole dtype
        top = own.value if stored >= own.value else max(map(observed_maximum, arrays))
    if top > stored:
        return DataRange(
            own.value,
            own.rule,
            f"The model was trained on {dtype} data of range {stored:g}; {own.about}; "
            "pass --data-range to change.",
            model_differs=True,
        )
    if own.value < stored:
        depth = " " + own.rule.removeprefix("observed ") if own.rule.startswith("observed ") else ""
        return DataRange(
            stored,
            "model",
            f"{kept}, although this {dtype} input never exceeds {top:g}: pass --data-range "
            f"{own.value:g} to use its own{depth} range.",
            model_differs=True,
        )
    return DataRange(stored, "model", f"{kept}.")
