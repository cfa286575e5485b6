"""Inputs built to take memory or to lie: refused from what their headers say, before they are
read, in one line (exit 2), in bounded memory; served requests answered without a stack trace
and without the request echoed back.

The bombs are real zip archives written here; the big ones (2 GiB .npz member, 1 GiB
config.json) are measured by bench/bombs.py, the tests use smaller ones.
"""

import io
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import cli, make_pairs, one_error_line

from daeflow.data import arrays

ROOT = Path(__file__).parent.parent


def npy_header(shape: tuple, dtype="uint8") -> bytes:
    """The bytes numpy.save writes before an array's data."""
    buffer = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def zeros_member(archive: zipfile.ZipFile, name: str, shape: tuple) -> None:
    """A .npy member of zeros, written in blocks: deflate makes 1000 bytes of it about 1."""
    size = int(np.prod(shape))
    with archive.open(name, "w", force_zip64=True) as member:
        member.write(npy_header(shape))
        for start in range(0, size, 2**24):
            member.write(bytes(min(2**24, size - start)))


def set_uncompressed_size(path: Path, size: int) -> None:
    """Make the zip directory (local and central header) of the first member say `size`."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.index(b"PK\x03\x04") + 22, size)
    struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 24, size)
    path.write_bytes(bytes(data))


def run_data(tracking_uri, path, code=2):
    return cli("run", "--data", path, "--epochs", "1", "--tracking-uri", tracking_uri, code=code)


# .npz and .npy files


def test_an_npz_bomb_is_refused_from_its_header_in_bounded_memory(tmp_path):
    """A 256 MiB member (0.3 MB on disk) that is no image array: refused before it is inflated;
    the process's peak RSS stays far below the member's size (bench/bombs.py: 2 GiB)."""
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        zeros_member(archive, "clean.npy", (2**28,))
        archive.writestr("noisy.npy", npy_bytes(np.zeros((4, 16, 16, 1), np.uint8)))
    assert bomb.stat().st_size < 2**21
    script = textwrap.dedent(f"""
        from daeflow.config import DataOptions
        from daeflow.data.prepare import prepare_data
        from daeflow.errors import DataError
        from daeflow.plugin.registry import get_architecture
        try:
            prepare_data(DataOptions(data={str(bomb)!r}), get_architecture("conv_baseline").spec, 0)
        except DataError as exc:
            print(exc)
        # This process's peak (ru_maxrss would keep a large parent's peak across exec).
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        print(status.split()[0])  # KiB
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "DAEFLOW_LOAD_PLUGINS": "", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    message, peak_kib = done.stdout.strip().splitlines()
    assert "1 dimensions (shape (268435456,))" in message
    assert int(peak_kib) * 1024 < 2**28 / 2, f"peak RSS {int(peak_kib) / 1024:.0f} MiB"


def test_an_npz_member_whose_header_claims_29_gib_is_refused(tracking_uri, tmp_path):
    path = tmp_path / "liar.npz"
    _, noisy = make_pairs(n=4)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("clean.npy", npy_header((29 * 2**30,)) + bytes(1000))
        archive.writestr("noisy.npy", npy_bytes(noisy))
    result = run_data(tracking_uri, path)
    says = len(npy_header((29 * 2**30,))) + 29 * 2**30
    one_error_line(result, 2, "'clean'", str(path), f"says {says} bytes", "holds 1128")


def test_an_npz_member_shorter_than_its_zip_directory_says_is_refused(tracking_uri, tmp_path):
    """Header and directory agree on 2048 bytes of data; the compressed stream holds 1024."""
    clean, noisy = make_pairs(n=8)
    path = tmp_path / "short.npz"
    header = npy_header(clean.shape)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("clean.npy", header + clean.tobytes()[:1024])
        archive.writestr("noisy.npy", npy_bytes(noisy))
    set_uncompressed_size(path, len(header) + clean.nbytes)
    result = run_data(tracking_uri, path)
    one_error_line(result, 2, "'clean'", "ends after 1024 of the 2048 bytes")


def test_an_npz_member_larger_than_the_memory_left_is_refused(tracking_uri, tmp_path, monkeypatch):
    path = tmp_path / "pairs.npz"
    np.savez(path, **dict(zip(("clean", "noisy"), make_pairs(n=8), strict=True)))
    monkeypatch.setattr(arrays, "available_memory", lambda: 1000)
    result = run_data(tracking_uri, path)
    one_error_line(result, 2, "'clean'", "2.0 KiB in memory", "1000 bytes available", "numpy.save")


def test_pair_shapes_are_compared_from_the_headers_before_reading(tracking_uri, tmp_path):
    """The noisy member is what gets refused, but the clean one (first) is never inflated."""
    clean, noisy = make_pairs(n=8)
    path = tmp_path / "pairs.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        # A clean member that would fail if read: its data are cut short.
        archive.writestr("clean.npy", npy_header(clean.shape) + clean.tobytes()[:10])
        archive.writestr("noisy.npy", npy_bytes(noisy[:, :8]))
    set_uncompressed_size(path, len(npy_header(clean.shape)) + clean.nbytes)
    result = run_data(tracking_uri, path)
    one_error_line(result, 2, "shapes differ", "(8, 16, 16, 1) vs (8, 8, 16, 1)")


def test_an_npy_header_claiming_more_than_the_file_holds_is_refused(tracking_uri, tmp_path):
    clean, noisy = tmp_path / "clean.npy", tmp_path / "noisy.npy"
    clean.write_bytes(npy_header((2**20, 2**12, 2**12, 1)) + bytes(4096))
    np.save(noisy, make_pairs(n=4)[1])
    result = cli("run", "--clean", clean, "--noisy", noisy, "--tracking-uri", tracking_uri, code=2)
    one_error_line(result, 2, "truncated or corrupt", "header says", "holds 4224")


# .keras files


@pytest.fixture
def keras_file(fresh_model, tmp_path):
    """A real conv_baseline .keras file, and a way to rewrite it member by member."""
    path = tmp_path / "model.keras"
    fresh_model().save(path)

    def rewrite(name: str, change: dict, extra: dict | None = None) -> Path:
        target = tmp_path / name
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
            for info in source.infolist():
                data = change.get(info.filename, lambda data: data)(source.read(info))
                out.writestr(info.filename, data, zipfile.ZIP_DEFLATED)
            for member, data in (extra or {}).items():
                out.writestr(member, data, zipfile.ZIP_DEFLATED)
        return target

    return rewrite


def denoise_with(model: Path, tmp_path: Path, code: int = 2):
    np.save(tmp_path / "in.npy", make_pairs(n=1)[1])
    return cli("denoise", "--model", model, tmp_path / "in.npy", "-o", tmp_path / "out.npy",
               code=code)  # fmt: skip


def test_a_keras_config_json_over_the_cap_is_refused_before_keras(keras_file, tmp_path):
    from daeflow.runtime.backend import KERAS_CONFIG_MAX_BYTES

    padded = keras_file("bomb.keras", {"config.json": lambda c: c + b" " * KERAS_CONFIG_MAX_BYTES})
    assert padded.stat().st_size < 2**20
    result = denoise_with(padded, tmp_path)
    one_error_line(
        result, 2, "refuses the model", "config.json inflates to", "more than the 16 MiB"
    )


def test_a_keras_member_leaving_the_folder_is_refused_without_python_warnings(keras_file, tmp_path):
    evil = keras_file("evil.keras", {}, {"../../evil": b"x", "assets/a": b"y"})
    result = denoise_with(evil, tmp_path)
    one_error_line(result, 2, "refuses the model", "'../../evil'", "outside the model's folder")
    assert "Warning" not in result.output


def test_keras_archive_warnings_become_one_refusal(keras_file, monkeypatch, recwarn):
    """Behind the check: were a member to reach Keras's own archive filter, its warning
    would become daeflow's refusal, not a line printed by Python's warnings machinery."""
    from daeflow.errors import ModelLoadError
    from daeflow.runtime import backend

    evil = keras_file("evil.keras", {}, {"/abs/evil": b"x", "assets/a": b"y"})
    monkeypatch.setattr(backend, "check_keras_archive", lambda path, where: None)
    with pytest.raises(ModelLoadError, match="Skipping invalid path.*outside the model's folder"):
        backend.load_keras_file(evil)
    assert not [w for w in recwarn if "invalid path" in str(w.message)]


# Served requests (in process; tests/test_serving.py sends them to a real scoring server)


@pytest.fixture
def image_pyfunc(fresh_model):
    from daeflow.infer.loading import Denoiser
    from daeflow.infer.pyfunc import ImagePyfunc

    model = fresh_model()
    return ImagePyfunc(Denoiser(model, 255.0, 1, data_dtype="uint8", pyfunc_scale="own"))


def b64(content: bytes) -> str:
    import base64

    return base64.b64encode(content).decode()


@pytest.mark.parametrize(
    "inputs, params, fragment",
    [
        (b64(npy_header((1, 200000, 200000, 1)) + bytes(64)), {}, "decodes to 37.3 GiB"),
        (b64(npy_header((1, 64, 64, 1)) + bytes(64)), {}, "says 4224 bytes"),
        (b64(npy_bytes(np.zeros((1, 64, 64, 1), np.uint8))), {"max_bytes": 4000}, "4.0 KiB"),
        ("A" * 200000, {"max_bytes": 1000}, "146.5 KiB, more than the 1000 bytes"),
        (np.zeros((4, 64, 64, 1), np.int64), {"max_bytes": 2**16}, "(4, 64, 64, 1) int64"),
    ],
    ids=["header-claims-37-GiB", "header-says-more", "over-max-bytes", "base64-too-long", "json"],
)
def test_served_input_is_refused_from_its_size_in_one_sentence(
    image_pyfunc, inputs, params, fragment
):
    from mlflow.exceptions import MlflowException

    encoding = {"encoding": "npy_base64"} if isinstance(inputs, str) else {}
    with pytest.raises(MlflowException) as caught:
        image_pyfunc.predict(inputs, params={**encoding, **params})
    error = caught.value
    assert error.get_http_status_code() == 400
    assert fragment in error.message
    # MLflow's scoring server prefixes the whole input to the message; it must not stick.
    sentence = error.message
    error.message = f"Failed to predict data '{inputs}'. \nError: {error.message}"
    assert error.message == sentence
    assert "stack_trace" not in error.serialize_as_json()


def test_a_served_input_within_the_limit_is_denoised(image_pyfunc):
    import base64

    image = make_pairs(n=1, size=32)[1][0]
    params = {"encoding": "npy_base64", "max_bytes": image.nbytes}
    answer = image_pyfunc.predict(b64(npy_bytes(image)), params=params)
    denoised = np.load(io.BytesIO(base64.b64decode(answer)))
    assert denoised.shape == image.shape and denoised.dtype == image.dtype


def test_an_unexpected_error_in_predict_is_one_sentence_and_logged(image_pyfunc, caplog):
    from mlflow.exceptions import MlflowException

    image_pyfunc.denoiser.model = None  # breaks denoising with a TypeError
    with pytest.raises(MlflowException) as caught:
        image_pyfunc.predict(np.zeros((16, 16, 1), np.uint8))
    assert caught.value.get_http_status_code() == 500
    assert caught.value.message.startswith("Unexpected TypeError while denoising")
    assert "Traceback" in caplog.text
