"""--precision and --devices: the choice and why, logged; models that cross precisions; the
same training on two logical CPU devices as on one."""

import re

import mlflow
import numpy as np
import pytest
from conftest import Process, cli

from daeflow.errors import UsageError
from daeflow.runtime import precision


def data_args(pair_files):
    clean, noisy = pair_files(n=24, size=16)
    return ["--clean", clean, "--noisy", noisy, "--batch-size", "8", "--seed", "3"]


def the_run():
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return run


@pytest.mark.parametrize(
    ("flags", "gpus", "policy"),
    [
        ({"amx_bf16", "avx512_bf16", "avx2"}, [], "mixed_bfloat16"),
        ({"avx512_bf16"}, [], "mixed_bfloat16"),
        ({"avx2", "avx512f"}, [], "float32"),
        ({"amx_bf16"}, ["NVIDIA H200"], "mixed_float16"),
    ],
)
def test_auto_picks_by_hardware(monkeypatch, flags, gpus, policy):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "tensor_core_gpus", lambda: gpus)
    chosen = precision.choose("auto")
    assert chosen.policy == policy
    assert chosen.reason.startswith("auto: ")
    assert precision.choose("float32").reason == "asked for with --precision"


def test_this_machines_cpu_flags_are_read():
    flags = precision.cpu_flags()
    assert "sse2" in flags or not flags  # x86 Linux, or a system without /proc/cpuinfo
    with pytest.raises(UsageError, match="--precision must be one of"):
        precision.choose("bfloat16")


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_model_computes_in_16_bits_and_outputs_float32(policy, fresh_model):
    from daeflow.plugin.building import build_checked
    from daeflow.plugin.registry import get_architecture
    from daeflow.train.trainer import compile_model

    provided = get_architecture("residual_fast")
    model = build_checked(provided, provided.spec.defaults, 1, (16, 16), policy)
    assert precision.training_policy(model) == policy
    assert np.asarray(model(np.zeros((1, 16, 16, 1), np.float32))).dtype == np.float32
    compile_model(model, __import__("daeflow.config").config.TrainOptions())
    scaled = type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert scaled == (policy == "mixed_float16")
    as_float32 = precision.in_policy(model, "float32")
    assert precision.training_policy(as_float32) == "float32"
    np.testing.assert_array_equal(as_float32.get_weights()[0], model.get_weights()[0])


@pytest.mark.slow
def test_a_model_trained_in_bfloat16_denoises_in_float32_and_back(
    tracking_uri, pair_files, tmp_path, trained_model
):
    args = data_args(pair_files)
    trained = cli("run", *args, "--arch", "residual_fast", "--epochs", "2", "--precision",
                  "mixed_bfloat16")  # fmt: skip
    assert "Precision: mixed_bfloat16 (asked for with --precision)." in trained.output
    run = the_run()
    assert run.data.params["precision.policy"] == "mixed_bfloat16"
    assert run.data.params["devices.count"] == "1"
    uri = f"runs:/{run.info.run_id}/model"
    model = mlflow.pyfunc.load_model(uri)
    assert model.metadata.metadata["trained_precision"] == "mixed_bfloat16"

    noisy = np.load(args[3])[:4]
    np.save(tmp_path / "x.npy", noisy)
    outputs = {}
    for policy in ("float32", "mixed_bfloat16"):
        out = tmp_path / f"{policy}.npy"
        done = cli("denoise", tmp_path / "x.npy", "-o", out, "--model", uri, "--precision", policy)
        assert ("Precision: mixed_bfloat16" in done.output) == (policy != "float32")
        outputs[policy] = np.load(out).astype(np.float64)
    assert outputs["float32"].shape == noisy.shape
    assert np.abs(outputs["float32"] - outputs["mixed_bfloat16"]).mean() < 2.0  # of 255

    # And the other way: a model trained in float32, evaluated in bfloat16.
    from daeflow.track.flavor import save_local

    save_local(trained_model("residual_fast"), tmp_path / "f32", {"data_range": 255}, "daeflow")
    clean_path, noisy_path = args[1], args[3]
    scores = {
        policy: cli("evaluate", "--model", tmp_path / "f32", "--clean", clean_path, "--noisy",
                    noisy_path, "--precision", policy).output
        for policy in ("float32", "mixed_bfloat16")
    }  # fmt: skip
    psnr = {k: float(re.search(r"PSNR ([\d.]+) dB", v).group(1)) for k, v in scores.items()}
    assert abs(psnr["float32"] - psnr["mixed_bfloat16"]) < 0.3


@pytest.mark.slow
def test_auto_says_what_it_chose_and_why(tracking_uri, pair_files):
    trained = cli("run", *data_args(pair_files), "--epochs", "1")
    chosen = precision.choose("auto")
    assert f"Precision: {chosen.policy} ({chosen.reason})." in trained.output
    params = the_run().data.params
    assert (params["precision"], params["precision.policy"]) == ("auto", chosen.policy)
    assert params["precision.reason"] == chosen.reason


@pytest.mark.slow
def test_two_logical_cpu_devices_train_as_one(tracking_uri, pair_files, tmp_path):
    """MirroredStrategy over 2 logical CPUs, the same global batch: the same model."""
    args = [*data_args(pair_files), "--epochs", "2", "--precision", "float32",
            "--learning-rate", "0.003"]  # fmt: skip
    # Two devices need a process of their own: TensorFlow splits the CPU only before it starts.
    two_devices = Process("run", *args, "--devices", "2", "--run-name", "d2")
    cli("run", *args, "--devices", "1", "--run-name", "d1")
    code, stderr = two_devices.finish()
    assert code == 0, stderr
    assert any(line.startswith("Devices: /cpu:0, /cpu:1") for line in two_devices.lines)
    found = {
        r.info.run_name: r for r in mlflow.search_runs(search_all_experiments=True,
                                                        output_format="list")
    }  # fmt: skip
    two, one = found["d2"], found["d1"]
    assert (two.data.params["devices.count"], two.data.params["devices.batch_per_device"]) == (
        "2",
        "4",
    )
    assert one.data.params["devices.count"] == "1"
    # Keras issue 21061 (NaN losses under MirroredStrategy) would show here as a failed run.
    for key in ("epoch/loss", "test/psnr"):
        assert np.isfinite(two.data.metrics[key])
        assert two.data.metrics[key] == pytest.approx(one.data.metrics[key], rel=1e-3)


def test_devices_are_checked_before_any_work(tracking_uri, pair_files):
    from conftest import one_error_line

    result = cli("run", *data_args(pair_files), "--devices", "two", code=2)
    one_error_line(result, 2, "--devices must be all, cpu or a number")
