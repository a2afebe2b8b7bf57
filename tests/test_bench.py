"""``coughclf bench train`` and ``coughclf bench frontend``: any backend, no TensorFlow needed, PyTorch beside."""

import argparse
import importlib.util
import json
import pytest
from jax_subprocess import run_on_jax

from coughclf.bench import frontend, tflite, train
from coughclf.commands import bench as bench_command
from coughclf.errors import CoughclfError
from coughclf.models import spec

# Runs the CLI as on a GPU machine that has JAX but not TensorFlow (nor, if asked, PyTorch): the
# packages named in argv[1] made unimportable, then each bench command of argv[2:] in turn. Their
# specs load nothing, without origin: SciPy takes any "torch" in sys.modules for PyTorch, and PyTorch
# asks importlib.util.find_spec("tensorflow") and reads the origin of what it gets.
WITHOUT = """
import contextlib, importlib.abc, importlib.machinery, io, json, sys

class Absent(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in sys.argv[1].split(","):
            return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

sys.meta_path.insert(0, Absent())
from coughclf.cli import main
outputs = []
for command in sys.argv[2:]:
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(["bench", *command.split(), "--json"])
    outputs.append({"code": code, "results": json.loads(printed.getvalue()) if code == 0 else None})
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "tensorflow")
print(json.dumps({"outputs": outputs, "tensorflow_modules": loaded}))
"""


def _parse(module, *argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(list(argv))


def _assert_timing(timing):
    assert 0 < timing["p10"] <= timing["median"] <= timing["p90"] and timing["cpu_median"] >= 0


def _bench_on_jax_without(commands, absent, folder):
    """The results of ``coughclf bench COMMAND --json`` for each command, run in one JAX process where
    the packages ``absent`` cannot be imported; asserts that TensorFlow was never imported."""
    result = run_on_jax(WITHOUT, ",".join(absent), *commands, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert [output["code"] for output in report["outputs"]] == [0] * len(commands), result.stderr[-3000:]
    assert report["tensorflow_modules"] == []
    return [output["results"] for output in report["outputs"]]


@pytest.mark.slow  # a JAX process compiling a train step: ~13 s loaded
def test_train_and_frontend_benchmarks_run_on_jax_without_tensorflow(tmp_path):
    commands = ["train --model cough_small_cnn --batch-size 2 --steps 2 --warmup 1",
                "frontend --batch-sizes 2 --seconds 0.25 --repeats 2 --warmup 1 --librosa-clips 1 --compare-torch",
                "train --model cough_small_cnn --input-mode waveform --batch-size 2 --steps 2 --warmup 1 "
                "--teacher cough_small_cnn"]
    trained, measured, distilled = _bench_on_jax_without(commands, ["tensorflow", "torch"], tmp_path)
    _assert_timing(distilled["distillation"]["step_ms"])  # the distillation row needs no TensorFlow either
    assert trained["backend"] == "jax" and trained["devices"] == ["cpu:0"]
    assert trained["input_shape"] == [313, 128] and trained["trainable_params"] == 4_682
    for name in ("step_ms", "step_with_copy_ms", "host_to_device_ms"):
        _assert_timing(trained[name])
    assert "torch" not in trained  # not asked for

    assert measured["samples"] == 4000 and measured["backend"] == "jax"
    assert measured["keras_b2_clips_per_s"] > 0 and measured["librosa_one_core_clips_per_s"] > 0
    _assert_timing(measured["host_to_device_b2_ms"])
    _assert_timing(measured["host_to_device_int16_b2_ms"])
    # --compare-torch where PyTorch is missing: the run goes on and says why nothing was compared.
    assert "PyTorch is not installed" in measured["torch"]["skipped"]
    assert "torchaudio_b2_clips_per_s" not in measured


def test_bench_command_lists_the_benchmarks_not_their_helpers():
    names = [name for name, _ in bench_command.benchmarks()]
    assert {"train", "frontend", "pipeline", "prepare", "tflite"} <= set(names)
    assert not [name for name in names if name.startswith("_")]
    assert not train.NEEDS_TENSORFLOW and not frontend.NEEDS_TENSORFLOW


def _must_not_build(*args, **kwargs):
    raise AssertionError("the error must come before the model is built")


def test_compare_torch_is_refused_for_a_model_without_a_pytorch_reference(monkeypatch):
    monkeypatch.setattr("coughclf.models.build", _must_not_build)
    monkeypatch.setattr("coughclf.bench._torch.check_torch_beside_backend", lambda: None)
    with pytest.raises(CoughclfError, match="--compare-torch .* 'kws_cnn'.*--model cough_crnn"):
        train.run(_parse(train, "--model", "kws_cnn", "--compare-torch"))


def test_frontend_rejects_clips_shorter_than_a_frame():
    with pytest.raises(CoughclfError, match="--seconds 0.01 is shorter than one 1024-sample frame"):
        frontend.run(_parse(frontend, "--seconds", "0.01"))


def test_train_step_under_tensorflow_reports_the_step_and_the_copy_apart():
    results = train.run(_parse(train, "--model", "cough_small_cnn", "--batch-size", "4", "--steps", "2",
                               "--warmup", "1", "--input-mode", "waveform", "--dtype-policy", "mixed_bfloat16"))
    assert results["backend"] == "tensorflow" and results["input_shape"] == [160000]
    assert results["input_megabytes"] == round(4 * 160000 * 4 / 2**20, 2)
    assert results["trainable_params"] == 4_682 and results["dtype_policy"] == "mixed_bfloat16"
    for name in ("step_ms", "step_with_copy_ms", "host_to_device_ms", "host_to_device_int16_ms"):
        _assert_timing(results[name])
    import keras

    assert keras.config.dtype_policy().name == "float32"  # the policy was the benchmark's alone


def test_the_distillation_row_times_the_step_with_a_frozen_teacher_and_the_teacher_alone():
    results = train.run(_parse(train, "--model", "cough_small_cnn", "--input-mode", "waveform", "--batch-size", "2",
                               "--steps", "2", "--warmup", "1", "--teacher", "cough_small_cnn"))
    distillation = results["distillation"]
    assert distillation["teacher"] == "cough_small_cnn" and distillation["teacher_params"] == 4_682
    _assert_timing(distillation["step_ms"])
    _assert_timing(distillation["teacher_ms"])
    assert distillation["step_over_plain"] == pytest.approx(
        distillation["step_ms"]["median"] / results["step_ms"]["median"], rel=1e-2)
    with pytest.raises(CoughclfError, match="--teacher hears the waveform: add --input-mode waveform"):
        train.run(_parse(train, "--teacher", "cough_small_cnn"))


def test_compare_torch_is_refused_beside_tensorflow_before_any_work(monkeypatch):
    monkeypatch.setattr("coughclf.models.build", _must_not_build)
    with pytest.raises(CoughclfError, match="--compare-torch .* KERAS_BACKEND=jax"):
        train.run(_parse(train, "--compare-torch"))
    with pytest.raises(CoughclfError, match="--compare-torch .* KERAS_BACKEND=jax"):
        frontend.run(_parse(frontend, "--compare-torch"))


@pytest.mark.slow  # a CPU-bound PyTorch CRNN step and a JAX compile of the Keras one: ~40 s here
@pytest.mark.skipif(not all(importlib.util.find_spec(name) for name in ("torch", "torchaudio")),
                    reason="PyTorch and torchaudio are not installed")
def test_compare_torch_times_the_reports_crnn_beside_keras_on_jax(tmp_path):
    commands = ["train --model cough_crnn --batch-size 2 --steps 1 --warmup 1 --compare-torch",
                "frontend --batch-sizes 2 --seconds 0.25 --repeats 1 --warmup 1 --librosa-clips 0 --compare-torch"]
    trained, measured = _bench_on_jax_without(commands, ["tensorflow"], tmp_path)
    reference = trained["torch"]
    # The PyTorch model is the report's own: its parameter count is the report's.
    assert reference["trainable_params"] == spec("cough_crnn").report_params == 2_724_226
    assert reference["device"] in ("cpu", "cuda") and reference["torch"]
    _assert_timing(reference["step_ms"])
    _assert_timing(reference["host_to_device_ms"])
    assert trained["step_over_torch"] == round(trained["step_ms"]["median"] / reference["step_ms"]["median"], 3)

    assert measured["torchaudio_b2_clips_per_s"] > 0 and "librosa_one_core_clips_per_s" not in measured
    assert measured["keras_over_torchaudio_b2"] == round(
        measured["keras_b2_clips_per_s"] / measured["torchaudio_b2_clips_per_s"], 2)


def test_tflite_bench_builds_with_the_options_and_times_the_chosen_variants():
    options = tflite.builder_options(["clip_seconds=1.0", "num_classes=4", "sample_rate=8000"])
    assert options == {"input_mode": "waveform", "clip_seconds": 1.0, "num_classes": 4, "sample_rate": 8000}
    result = tflite.measure("kws_cnn", repeats=2, warmup=1, calibration=2, quantizations=["dynamic"], options=options)
    assert result["clip_samples"] == 8000
    assert set(result["latency_ms"]) == {"keras_predict_on_batch", "keras_compiled_call",
                                         "tflite_float32", "tflite_dynamic"}
    assert 0 < result["dynamic_size_fraction_of_float32"] < 0.5
    with pytest.raises(CoughclfError, match="key=value"):
        tflite.builder_options(["frames"])


def test_tflite_bench_times_a_trained_model_from_its_run_folder_or_keras_file(tmp_path):
    from coughclf.models import build

    model = build("kws_cnn", input_mode="waveform", clip_seconds=0.5, num_classes=3, sample_rate=8000)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "best.keras")
    for source in (tmp_path / "run", tmp_path / "run" / "best.keras"):
        result = tflite.measure(str(source), repeats=2, warmup=1, calibration=2, quantizations=["float16"])
        assert result["clip_samples"] == 4000  # the trained model's input, not the registry default
        assert set(result["size_bytes"]) == {"tflite_float32", "tflite_float16"}


def test_the_streaming_tflite_bench_compares_a_hop_with_the_whole_window():
    result = tflite.measure_streaming("kws_cnn", repeats=2, warmup=1, calibration=2,
                                      options={"num_classes": 3, "frontend": {"n_mels": 32}})
    assert result["hop_samples"] == 320 and result["hop_ms"] == 20.0 and result["window_samples"] == 16000
    assert set(result["compute_ms_per_hop"]) == {"window_tflite_float32", "streaming_tflite_float32"}
    macs = result["multiply_accumulates_per_hop"]
    assert macs["window"] > 10 * macs["streaming"] > 0
    assert result["max_score_difference"] <= 1e-5
    assert result["real_time_factor"]["streaming_tflite_float32"] > 0
