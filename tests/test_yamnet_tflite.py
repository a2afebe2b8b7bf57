"""YAMNet from the released TFLite model (../shared/weights/yamnet.tflite) against the LiteRT interpreter
running the same file, on real clips of ../shared/data.

The interpreter is not the float network: besides its int8 weights (which coughclf's model takes
as they are, dequantised), it quantises every int8 operator's input on the fly (see
tests/yamnet_tflite_reference.py), and the MobileNet amplifies those roundings: one int8 level
flipped in layer 3 can move a patch's top score by 0.5 at the end. So the tests check two things:

* the emulation of that quantisation on coughclf's layers reproduces each operator of the
  interpreter to float round-off (1e-6, checked operator by operator on the interpreter's own
  inputs while writing it); chained, levels flipped by float summation order are amplified, yet
  it is 7 times closer to the interpreter than the float model and agrees on the top class of 96 %
  of patches: the weights are mapped right, and the quantisation is the difference;
* the float Keras model (what the package uses) stays close: its top class is among the
  interpreter's top 5 on nearly every patch, and the clip embeddings point the same way.

Measured here (16 clips, 160 patches of ESC-10 and covid19_cough; docs/yamnet.md): the float
model's top-1 equals the interpreter's on 80 % of patches and is in its top 5 on 94 %; the
largest score difference is 0.84, the largest embedding difference 3.3 (embeddings reach about
8), the mean cosine of patch embeddings 0.94.
"""

import numpy as np
import pytest

from coughclf.audio import load_audio
from coughclf.errors import CoughclfError
from coughclf.layers.yamnet_frontend import patch_samples
from coughclf.models import build
from coughclf.models.yamnet import tagging_model
from coughclf.pretrained.embedding_head import embedding_model
from coughclf.pretrained.audioset import audioset_class_names
from coughclf.pretrained.tflite_weights import open_interpreter, read_tflite_weights
from conftest import SHARED_DATA
from yamnet_tflite_reference import emulated_patch_scores

CLIP_SECONDS = 5.0
MEL_MATRIX = "yamnet_frames/tf_op_layer_MatMul/MatMul"


@pytest.fixture(scope="module")
def released():
    path = SHARED_DATA.parent / "weights" / "yamnet.tflite"
    if not path.exists() or not SHARED_DATA.exists():
        pytest.skip(f"{path} not found (see ../shared/weights/README.md)")
    return path


@pytest.fixture(scope="module")
def comparison(released):
    """Patch scores and embeddings of 16 real clips: the interpreter's, the Keras model's, the emulation's."""
    data = SHARED_DATA
    files = sorted((data / "esc10_dev").glob("*/*.ogg"))[::20] + sorted((data / "covid19_cough" / "raw").glob(
        "*.mp3"))[:8:2]
    samples = int(CLIP_SECONDS * 16000)
    clips = np.stack([np.pad(audio[:samples], [0, max(0, samples - len(audio))])
                      for audio in (load_audio(path, 16000) for path in files)])
    model = build("yamnet", weights=released, clip_seconds=CLIP_SECONDS)
    patch_scores, _, embeddings = (np.asarray(value) for value in tagging_model(model).predict_on_batch(clips))
    window, hop = patch_samples()
    patches = patch_scores.shape[1]
    pieces = np.stack([np.pad(clip, [0, window + (patches - 1) * hop - samples]) for clip in clips])
    pieces = np.stack([pieces[:, index * hop:index * hop + window] for index in range(patches)], axis=1)
    interpreter = open_interpreter(released, experimental_preserve_all_tensors=True)
    waveform, scores = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    embedding = next(detail["index"] for detail in interpreter.get_tensor_details()
                     if detail["name"].startswith("yamnet_frames/global_average_pooling2d/Mean;"))
    reference_scores, reference_embeddings = [], []
    for piece in pieces.reshape(-1, window):
        interpreter.set_tensor(waveform, piece)
        interpreter.invoke()
        reference_scores.append(interpreter.get_tensor(scores)[0])
        reference_embeddings.append(interpreter.get_tensor(embedding)[0])
    mel_matrix = read_tflite_weights(released)[MEL_MATRIX]
    emulated = np.concatenate([emulated_patch_scores(model, mel_matrix, clip_pieces) for clip_pieces in pieces])
    return {"keras": patch_scores.reshape(-1, 521), "embeddings": embeddings.reshape(-1, 1024),
            "tflite": np.array(reference_scores), "tflite_embeddings": np.array(reference_embeddings),
            "emulated": emulated}


def test_emulated_quantisation_reproduces_the_interpreter(comparison):
    reference, emulated, ours = comparison["tflite"], comparison["emulated"], comparison["keras"]
    emulation_error = np.median(np.abs(reference - emulated).max(axis=1))
    float_error = np.median(np.abs(reference - ours).max(axis=1))
    assert emulation_error < 0.2 * float_error  # measured: 0.0099 against 0.070
    assert np.mean(reference.argmax(axis=1) == emulated.argmax(axis=1)) >= 0.9  # measured: 96 %


def test_float_model_is_close_to_the_interpreter(comparison):
    reference, ours = comparison["tflite"], comparison["keras"]
    top5 = np.argsort(-reference, axis=1)[:, :5]
    assert np.mean([top in row for top, row in zip(ours.argmax(axis=1), top5)]) >= 0.9  # measured: 94 %
    assert np.mean(reference.argmax(axis=1) == ours.argmax(axis=1)) >= 0.75  # measured: 80 %
    embeddings, reference_embeddings = comparison["embeddings"], comparison["tflite_embeddings"]
    cosine = np.sum(embeddings * reference_embeddings, axis=1) / (
        np.linalg.norm(embeddings, axis=1) * np.linalg.norm(reference_embeddings, axis=1) + 1e-12)
    assert np.mean(cosine) >= 0.9  # measured: 0.94


def test_loaded_model_tags_sounds(released):
    model = build("yamnet", weights=released, clip_seconds=1.0)
    names = audioset_class_names()
    silence = np.asarray(model.predict_on_batch(np.zeros((1, 16000), "float32")))[0]
    assert names[int(np.argmax(silence))] == "Silence"
    assert embedding_model(model).output.shape == (None, 2, 1024)


def test_wrong_or_truncated_tflite_is_named(released, tmp_path):
    truncated = tmp_path / "yamnet.tflite"
    truncated.write_bytes(released.read_bytes()[:100_000])
    with pytest.raises(CoughclfError, match="yamnet.tflite is not a readable TFLite model"):
        build("yamnet", weights=truncated)
    other = tmp_path / "other.tflite"
    other.write_bytes(_tiny_tflite())
    with pytest.raises(CoughclfError, match="other.tflite is not a YAMNet checkpoint"):
        build("yamnet", weights=other)


def _tiny_tflite():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def dense(x):
        return tf.matmul(x, tf.ones([4, 2]))

    return tf.lite.TFLiteConverter.from_concrete_functions([dense.get_concrete_function()], dense).convert()
