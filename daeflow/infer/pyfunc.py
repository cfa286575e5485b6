"""The logged model as MLflow pyfunc: images in, denoised images out, as `daeflow denoise` does.

`mlflow.pyfunc.load_model(...).predict(image)` and `mlflow models serve` call
`predict`. Models logged since daeflow 0.2 take images in their own dtype and range
(uint8, uint16, float) as (H, W), (H, W, C) or (N, H, W, C) (a 3D model: volumes (D, H, W),
(D, H, W, C) or (N, D, H, W, C)) and return the same shape and dtype; older
models keep their contract, float32 (N, H, W, C) on [0, 1]. With params
{"encoding": "npy_base64"} the input is a .npy file in base64 (read without pickle) and so
is the answer: a served request then skips MLflow's JSON lists, 3x faster for large images.
An input that decodes to more than params "max_bytes" (default 1 GiB) is refused, a
base64 .npy from its header, before its array is made.
Bad input is answered with MLflow's INVALID_PARAMETER_VALUE (HTTP 400 when served) and
one sentence, with no stack trace and without the input; an unexpected error, with HTTP
500 and one sentence (its traceback goes to the server's log).
"""

import base64
import binascii
import io
import logging

import numpy as np

from daeflow.data.arrays import read_npy_header, readable_bytes
from daeflow.errors import DaeflowError
from daeflow.infer.images import as_dtype, denoise_images
from daeflow.runtime.tiles import TILE


class ImagePyfunc:
    """What daeflow's loader gives `mlflow.pyfunc`: a Denoiser with a `predict` method."""

    def __init__(self, denoiser):
        self.denoiser = denoiser

    def predict(self, data, params: dict | None = None):
        """Denoise `data` (see the module's docstring); `params` as in the model's signature."""
        from daeflow.track.flavor import MAX_REQUEST_BYTES, invalid_input, server_error

        params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        encoded = params.get("encoding") == NPY_BASE64
        try:
            if params.get("encoding", NPY_BASE64) != NPY_BASE64:
                raise DaeflowError(f"params 'encoding' must be {NPY_BASE64!r} or empty.")
            limit = _positive(params, "max_bytes", MAX_REQUEST_BYTES, 1)
            array = _decoded(data, limit) if encoded else _as_array(data, limit)
            images = as_dtype(array, params.get("dtype"), self.denoiser.data_dtype)
            data_range = params.get("data_range")
            if self.denoiser.pyfunc_scale == "unit" and data_range is None:
                data_range = 1.0
            done = denoise_images(
                self.denoiser,
                images,
                data_range,
                _positive(params, "tile", TILE),
                _positive(params, "margin", self.denoiser.margin, 0),
            )
            if done.model_differs:  # the caller gets images; the server's log, why their scale
                logging.getLogger(__name__).warning(done.note)
        except DaeflowError as exc:
            raise invalid_input(str(exc)) from None
        except MemoryError:
            raise invalid_input(
                "The server has not enough memory for this request; send fewer or smaller "
                'images, or lower params "tile".'
            ) from None
        except Exception as exc:
            # MLflow would put the traceback into the reply; the server's log gets it instead.
            logging.getLogger(__name__).exception("predict failed")
            raise server_error(
                f"Unexpected {type(exc).__name__} while denoising; the server's log has the "
                "details."
            ) from None
        return _encoded(done.images) if encoded else done.images

    def get_raw_model(self):
        """The Keras model."""
        return self.denoiser.model


NPY_BASE64 = "npy_base64"


def _decoded(data, limit: int) -> np.ndarray:
    """The array in a base64 .npy file (a string, or MLflow's 0-d array of one).

    Its header is checked first (no Python objects, at most `limit` bytes of data, exactly
    as many bytes as it says), so no array larger than the request is ever allocated.
    """
    text = data.item() if isinstance(data, np.ndarray) and data.size == 1 else data
    if not isinstance(text, str | bytes):
        raise DaeflowError('With {"encoding": "npy_base64"} the input must be one string.')
    if len(text) // 4 * 3 > limit + NPY_HEADER_MAX:  # base64: 3 bytes per 4 characters
        raise _too_large(len(text) // 4 * 3, limit)
    try:
        raw = base64.b64decode(text, validate=True)
        header = read_npy_header(io.BytesIO(raw))
    except (ValueError, binascii.Error, OSError) as exc:
        raise DaeflowError(f"The input is not a base64-encoded .npy file: {exc}.") from None
    if header.dtype.hasobject:
        raise DaeflowError("The input's .npy file holds Python objects; send a numeric array.")
    if header.nbytes > limit:
        raise _too_large(header.nbytes, limit, f" ({header.shape} {header.dtype})")
    if header.offset + header.nbytes != len(raw):
        raise DaeflowError(
            f"The input's .npy header says {header.offset + header.nbytes} bytes "
            f"({header.shape} {header.dtype}) but the file holds {len(raw)}; save it again."
        )
    shape = header.shape[::-1] if header.fortran_order else header.shape
    array = np.frombuffer(raw, header.dtype, header.size, header.offset).reshape(shape)
    return array.T if header.fortran_order else array


NPY_HEADER_MAX = 65536  # numpy writes headers of at most a few KB


def _too_large(size: int, limit: int, what: str = "") -> DaeflowError:
    return DaeflowError(
        f"The input decodes to {readable_bytes(size)}{what}, more than the "
        f"{readable_bytes(limit)} this server takes (params 'max_bytes'); send fewer or "
        "smaller images per request."
    )


def _encoded(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _as_array(data, limit: int) -> np.ndarray:
    """The image array inside what MLflow passes: an array, a one-entry dict, a DataFrame."""
    if isinstance(data, dict) and len(data) == 1:
        data = next(iter(data.values()))
    if hasattr(data, "to_numpy"):  # a pandas DataFrame: one image, one row per image row
        data = data.to_numpy()
    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise DaeflowError(f"The input is not a rectangular array: {exc}.") from None
    if array.dtype == object:
        raise DaeflowError("The input is not a rectangular array of numbers.")
    if array.nbytes > limit:  # as MLflow parsed it, e.g. int64 from JSON lists
        raise _too_large(array.nbytes, limit, f" ({array.shape} {array.dtype})")
    return array


def _positive(params: dict, name: str, default: int, least: int = 16) -> int:
    value = params.get(name, default)
    if not isinstance(value, int | np.integer) or value < least:
        raise DaeflowError(f"params {name!r} must be an integer >= {least}; got {value!r}.")
    return int(value)
