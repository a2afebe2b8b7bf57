"""``--strategy data_parallel``: Keras' JAX DataParallel, on two virtual CPU devices.

The same fixed-seed run trains once over both devices (each batch split between them) and
once on one device, each in its own JAX process; the replicas must hold the same weights, and
the two runs the same losses and weights within :data:`LOSS_TOLERANCE` and :data:`WEIGHT_TOLERANCE`.
"""

import json

import numpy as np
import pytest
from jax_subprocess import run_on_jax
from train_data import write_config, write_tone_cache

from coughclf.errors import CoughclfError
from coughclf.runs import make_strategy

# The two runs sum the same gradients in another order. Measured: losses within 1e-4; weights within
# 1e-6 but for a few whose gradient is ~0, which Adam (dividing each gradient by its running RMS) moves
# by up to a learning rate (3e-3) per step on float noise alone: up to 2.5e-4 after two epochs.
LOSS_TOLERANCE = 1e-4
WEIGHT_TOLERANCE = 1e-3

TRAIN = """
import json, sys
import keras, numpy as np
from coughclf.cli import main

class Replicas(keras.callbacks.Callback):
    '''Records, at the end of training, the devices of each weight and whether their copies agree.'''
    def on_train_end(self, logs=None):
        report = []
        for variable in self.model.weights:
            shards = variable.value.addressable_shards
            first = np.asarray(shards[0].data)
            report.append({"devices": len(shards), "shape": list(first.shape) == list(variable.shape),
                           "equal": all(np.array_equal(first, np.asarray(s.data)) for s in shards)})
        json.dump(report, open(sys.argv[1], "w"))

import coughclf.train
original = coughclf.train.train
coughclf.train.train = lambda *a, **k: original(*a, **{**k, "callbacks": [Replicas()]})
sys.exit(main(sys.argv[2:]))
"""


def _weights(run):
    import keras

    import coughclf.layers  # noqa: F401  (registers the layers best.keras names)

    return [np.asarray(w) for w in keras.saving.load_model(run / "best.keras", compile=False).weights]


@pytest.mark.slow  # two replicas on virtual CPU devices: ~100 s on the loaded 2-core machine
def test_data_parallel_keeps_replicas_equal_and_matches_one_device(tmp_path):
    cache = write_tone_cache(tmp_path / "cache", clips_per_class=8)
    config = write_config(tmp_path / "tones.toml", cache, epochs=2)
    two_devices = "--xla_force_host_platform_device_count=2"
    for name, strategy in (("parallel", "data_parallel"), ("single", "default")):
        result = run_on_jax(TRAIN, tmp_path / f"{name}.json", "train", config, "--run-dir", tmp_path / name,
                            "--strategy", strategy, "--set", "metrics.examples=0", cwd=tmp_path,
                            XLA_FLAGS=two_devices)
        assert result.returncode == 0, result.stderr[-3000:]

    replicas = json.loads((tmp_path / "parallel.json").read_text())
    assert replicas and all(entry["devices"] == 2 and entry["shape"] and entry["equal"] for entry in replicas)
    single = json.loads((tmp_path / "single.json").read_text())
    assert all(entry["devices"] == 1 for entry in single)  # the default run used one device

    histories = [json.loads((tmp_path / name / "history.json").read_text()) for name in ("parallel", "single")]
    for parallel_row, single_row in zip(*histories, strict=True):
        for key in ("loss", "val_loss"):
            assert parallel_row[key] == pytest.approx(single_row[key], abs=LOSS_TOLERANCE)
    differences = [float(np.abs(parallel - single).max()) for parallel, single in
                   zip(_weights(tmp_path / "parallel"), _weights(tmp_path / "single"), strict=True)]
    assert max(differences) <= WEIGHT_TOLERANCE


def test_data_parallel_on_tensorflow_is_one_line_naming_the_fix():
    with pytest.raises(CoughclfError, match="data_parallel .* KERAS_BACKEND=jax .* --strategy mirrored"):
        make_strategy("data_parallel")
