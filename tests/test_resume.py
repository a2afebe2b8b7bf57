"""A resumed run is the run that was interrupted (issue 25 item 7), and a run's best.keras is the model
alone, its resume state a file of its own (issue 23 item 5).

A small model with every source of randomness a run has (augmentation layers, dropout, mixup,
random crops and order) and state that steers its epochs (a warm-up and cosine schedule, weight
averaging; or ReduceLROnPlateau and early stopping) is trained straight through, and again
stopped after an epoch and resumed: both end with the same variables and history, on TensorFlow
and on JAX.
"""

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from train_data import write_config, write_tone_cache  # noqa: E402

AUGMENTED = """
[augment]
mixup = { alpha = 0.4 }
random_gain = { min_db = -3, max_db = 3 }
coloured_noise = { snr_db = [10.0, 30.0], probability = 0.5 }
frequency_masking = { num_masks = 1, max_width = 4 }
"""
# Every override is a source of state a resumed run must restore; epochs = 3 is short but resumes mid-run.
SCHEDULED = ["model.dropout=0.3", 'optimizer.schedule="cosine"', "optimizer.warmup_epochs=1", "optimizer.ema=0.9"]
ON_PLATEAU = ["model.dropout=0.3", 'optimizer.schedule="plateau"', "optimizer.decay_rate=0.5", "train.patience=2",
              'train.monitor="val_loss"']


class Interrupted(Exception):
    """What stops a run after an epoch here (the state on disk is as a kill -9 there leaves it: its
    records are written atomically)."""


def final_state(config_path, run_dir, overrides, stop_after=None, check_interrupted=None):
    """Train ``config_path`` into ``run_dir`` to the end (``stop_after``: interrupted after that epoch, the
    folder checked by ``check_interrupted``, then trained again); returns the model's and the optimizer's
    variables at the end, and the history."""
    import keras

    from coughclf.config import load_config
    from coughclf.train import train

    class Recorded(keras.callbacks.Callback):
        arrays = {}

        def on_epoch_end(self, epoch, logs=None):
            if epoch == stop_after:
                raise Interrupted

        def on_train_end(self, logs=None):
            variables = {f"model:{i}": v for i, v in enumerate(self.model.variables)}
            variables.update({f"optimizer:{i}": v for i, v in enumerate(self.model.optimizer.variables)})
            Recorded.arrays = {name: keras.ops.convert_to_numpy(v) for name, v in variables.items()}

    config = load_config(config_path, overrides)
    if stop_after is not None:
        with pytest.raises(Interrupted):
            train(config, run_dir, callbacks=[Recorded()], evaluate_after=False)
        if check_interrupted:
            check_interrupted(Path(run_dir))
    train(config, run_dir, callbacks=[Recorded()], evaluate_after=False)
    return Recorded.arrays, json.loads((Path(run_dir) / "history.json").read_text())


def resume_comparison(root, overrides, stop_after, check_interrupted=None):
    """``(straight, resumed)``: :func:`final_state` of the same run trained straight through and resumed."""
    cache = write_tone_cache(root / "cache")
    config_path = write_config(root / "tones.toml", cache, epochs=3, extra=AUGMENTED)
    return (final_state(config_path, root / "straight", overrides),
            final_state(config_path, root / "resumed", overrides, stop_after, check_interrupted))


def assert_same_run(straight, resumed):
    (straight_arrays, straight_history), (resumed_arrays, resumed_history) = straight, resumed
    assert [row["epoch"] for row in resumed_history] == [0, 1, 2]
    assert resumed_history == straight_history  # every epoch's loss and metrics, to the last bit
    assert resumed_arrays.keys() == straight_arrays.keys()
    for name, values in straight_arrays.items():
        np.testing.assert_array_equal(resumed_arrays[name], values, err_msg=name)


def carries_the_model_alone(run):
    """The folder of a run stopped after its first epoch: best.keras holds no optimizer state and loads in
    safe mode, uncompiled; the resume state holds the optimizer, the random generators and the epoch."""
    import h5py

    from coughclf.model_files import load_model_file
    from coughclf.resume_state import random_generator_states

    with zipfile.ZipFile(run / "best.keras") as archive:
        assert json.loads(archive.read("config.json")).get("compile_config") in (None, {})
        with archive.open("model.weights.h5") as weights, h5py.File(weights, "r") as stored:
            assert "layers" in stored and "optimizer" not in stored
    model = load_model_file(run / "best.keras")
    assert not model.compiled
    generators = random_generator_states(model)
    assert len(generators) >= 5  # dropout and the four augmentation layers
    with h5py.File(run / "resume.weights.h5", "r") as state:
        assert "optimizer" in state and len(state["coughclf_resume"]) == len(generators)
        assert json.loads(state["coughclf_resume"].attrs["state"])["epoch"] == 1
    assert sorted(path.name for path in run.iterdir() if ".keras" in path.name or path.name.endswith(".h5")) == [
        "best.keras", "resume.weights.h5"]


def test_a_resumed_run_ends_with_the_weights_of_the_uninterrupted_run(tmp_path):
    straight, resumed = resume_comparison(tmp_path, SCHEDULED, stop_after=0, check_interrupted=carries_the_model_alone)
    assert_same_run(straight, resumed)
    assert any(name.startswith("model:") and values.dtype.kind in "iu" for name, values in straight[0].items())


@pytest.mark.slow
def test_a_resumed_run_on_plateau_and_streamed_data_ends_with_the_weights_of_the_uninterrupted_run(tmp_path,
                                                                                                  monkeypatch):
    from coughclf import pipeline

    monkeypatch.setattr(pipeline, "AUTO_IN_MEMORY_BYTES", 0)  # the shards are read every epoch
    assert_same_run(*resume_comparison(tmp_path, ON_PLATEAU, stop_after=1))


def test_a_resumed_run_on_jax_ends_with_the_weights_of_the_uninterrupted_run(tmp_path):
    pytest.importorskip("jax")
    from jax_subprocess import run_on_jax

    completed = run_on_jax(f"import runpy; runpy.run_path({str(Path(__file__))!r}, run_name='__main__')", tmp_path,
                           cwd=TESTS.parent)
    assert completed.returncode == 0, completed.stderr[-3000:]
    saved = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("straight", "resumed")}
    assert saved["straight"]["backend"] == "jax"
    arrays = {name: dict(np.load(tmp_path / f"{name}.npz")) for name in ("straight", "resumed")}
    assert_same_run((arrays["straight"], saved["straight"]["history"]), (arrays["resumed"], saved["resumed"]["history"]))


def test_a_run_killed_after_it_stopped_resumes_only_to_write_its_training_json(tmp_path):
    import keras

    from coughclf.config import load_config
    from coughclf.train import train

    class StopThenDie(keras.callbacks.Callback):
        """Stops training in the first epoch (as early stopping would), dies once the epoch is committed."""

        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            raise Interrupted

    cache = write_tone_cache(tmp_path / "cache", clips_per_class=8)
    config = load_config(write_config(tmp_path / "tones.toml", cache, epochs=3))
    with pytest.raises(Interrupted):
        train(config, tmp_path / "run", callbacks=[StopThenDie()], evaluate_after=False)
    train(config, tmp_path / "run", evaluate_after=False)
    summary = json.loads((tmp_path / "run" / "training.json").read_text())
    assert (summary["epochs_run"], summary["epochs_this_session"], summary["stopped_early"]) == (1, 0, True)
    assert not (tmp_path / "run" / "resume.weights.h5").exists()


# --- the resume state on its own ------------------------------------------------------------------

def tiny_model():
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def test_the_resume_state_restores_variables_generators_and_callback_counters(tmp_path):
    import keras

    from coughclf.resume_state import random_generator_states, read_resume_point, restore_resume_state, \
        write_resume_state

    keras.utils.set_random_seed(1)
    model = tiny_model()
    model.fit(np.ones((8, 4)), np.zeros((8, 2)), epochs=2, verbose=0)
    stopping, plateau = keras.callbacks.EarlyStopping(patience=3), keras.callbacks.ReduceLROnPlateau(patience=2)
    stopping.wait, stopping.best, stopping.best_epoch = 2, np.float32(0.25), 4
    plateau.wait, plateau.cooldown_counter, plateau.best = 1, 0, float("inf")
    path = tmp_path / "resume.weights.h5"
    write_resume_state(path, model, epoch=5, stopped=True, callbacks=[stopping, keras.callbacks.History(), plateau])
    assert read_resume_point(path)[:2] == (5, True)

    keras.utils.set_random_seed(2)
    fresh, stopping, plateau = tiny_model(), keras.callbacks.EarlyStopping(), keras.callbacks.ReduceLROnPlateau()
    restore_resume_state(path, fresh, [stopping, plateau])
    for saved, restored in [(model.variables, fresh.variables), (model.optimizer.variables, fresh.optimizer.variables)]:
        assert len(saved) == len(restored)
        for a, b in zip(saved, restored):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert len(random_generator_states(fresh)) == 1
    assert (stopping.wait, stopping.best, stopping.best_epoch) == (2, 0.25, 4)
    assert (plateau.wait, plateau.cooldown_counter, plateau.best) == (1, 0, float("inf"))


def test_a_damaged_resume_state_and_an_old_backup_folder_are_named_with_the_fix(tmp_path):
    from coughclf.errors import CoughclfError
    from coughclf.runs import resumed_rows

    (tmp_path / "backup").mkdir()
    with pytest.raises(CoughclfError, match=r"backup was written by an older coughclf.*new --run-dir"):
        resumed_rows(tmp_path)
    (tmp_path / "resume.weights.h5").write_bytes(b"not a state")
    with pytest.raises(CoughclfError, match=r"resume.weights.h5 is damaged .*delete it to train the run again"):
        resumed_rows(tmp_path)


if __name__ == "__main__":  # the JAX half of the test above, in a child process: argv[1] is the output folder
    import keras

    output = Path(sys.argv[1])
    for name, (arrays, history) in zip(("straight", "resumed"), resume_comparison(output, SCHEDULED, 1)):
        np.savez(output / f"{name}.npz", **arrays)
        (output / f"{name}.json").write_text(json.dumps({"backend": keras.backend.backend(), "history": history}))
