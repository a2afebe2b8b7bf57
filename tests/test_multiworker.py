"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 train together and end with identical weights."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from train_data import write_config, write_tone_cache

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
from coughclf.config import load_config
from coughclf.runs import make_strategy
from coughclf.train import train

config_path, run_dir, weights_path = sys.argv[1:4]
strategy = make_strategy("multiworker")

class SaveFinalWeights(keras.callbacks.Callback):
    # Trainable weights: gradients are all-reduced, so they must agree exactly. BatchNorm moving
    # statistics are not trained: each worker averages its own half of every global batch.
    def on_train_end(self, logs=None):
        np.savez(weights_path, *[keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights])

train(load_config(config_path), run_dir, strategy, callbacks=[SaveFinalWeights()], evaluate_after=False)
print("replicas", strategy.num_replicas_in_sync)
"""


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow  # two worker processes training: ~70 s on the loaded 2-core machine
def test_two_workers_finish_with_identical_weights_and_only_the_chief_writes(tmp_path):
    cache = write_tone_cache(tmp_path / "cache")
    config = write_config(tmp_path / "mw.toml", cache, epochs=2)
    run_dir = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(config), str(run_dir), str(tmp_path / f"weights-{index}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300)[0])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
        assert "replicas 2" in output
    chief, other = (np.load(tmp_path / f"weights-{index}.npz") for index in range(2))
    assert len(chief.files) == len(other.files) > 0
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], other[name])
    initial = np.load(tmp_path / "weights-0.npz")
    assert any(np.any(initial[name] != 0) for name in initial.files)
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]  # the chief's run folder, written once
    assert (run_dir / "best.keras").exists() and (run_dir / "training.json").exists()
