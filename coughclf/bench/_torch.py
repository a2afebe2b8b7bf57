"""The reports' PyTorch references that ``--compare-torch`` times beside coughclf in the same run.

* :func:`cough_crnn`: the COVID-19 cough report's CRNN as its authors wrote it in PyTorch
  (2,724,226 parameters at 128 mels × 313 frames; :mod:`coughclf.models.cough` is its Keras
  version), taking ``[batch, 1, mels, frames]``;
* :func:`log_mel`: torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB``, the PyTorch counterpart of
  :class:`coughclf.layers.LogMelSpectrogram`, and :func:`spec_augment`, two frequency and two time
  masks as :class:`coughclf.layers.SpecAugment` applies by default.

PyTorch and torchaudio are optional: :func:`load` says why they cannot be used instead of failing.
"""

import importlib


def load(need_torchaudio=False):
    """``(torch, torchaudio or None, None)`` when they import, else ``(None, None, reason)``."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None, None, ("PyTorch is not installed: pip install torch (and torchaudio) to time the "
                            "reports' PyTorch models beside coughclf")
    try:
        torchaudio = importlib.import_module("torchaudio")
    except (ImportError, OSError) as error:  # a torchaudio built for another torch fails with OSError
        if need_torchaudio:
            return None, None, f"torchaudio does not import ({error}): pip install torchaudio matching torch"
        torchaudio = None
    return torch, torchaudio, None


def check_torch_beside_backend():
    """PyTorch's GPU compiler (triton, which its optimizers import) and TensorFlow crash together in one
    process (a segmentation fault, TensorFlow 2.21 with PyTorch 2.14): refuse before either loads."""
    import keras

    from coughclf.errors import CoughclfError

    if keras.backend.backend() == "tensorflow":
        raise CoughclfError("--compare-torch cannot run beside Keras on TensorFlow (PyTorch's triton and "
                            "TensorFlow crash in one process): run it with KERAS_BACKEND=jax")


def device(torch):
    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronizer(torch):
    """A function that waits for the device's queued work (nothing to wait for on the CPU)."""
    return torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)


def describe(torch, torchaudio):
    described = {"torch": torch.__version__, "device": device(torch),
                 "torchaudio": getattr(torchaudio, "__version__", None)}
    if torch.cuda.is_available():
        # PyTorch runs float32 convolutions in TF32 by default (matmuls not): figures depend on it.
        described.update(gpu=torch.cuda.get_device_name(),
                         cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                         matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return described


def cough_crnn(torch, mels=128, frames=313, num_classes=2):
    """The report's CRNN: four Conv2d(3) → ReLU → MaxPool2d(2) → BatchNorm blocks (1→16 stride 2, pool
    stride 2; 16→32 stride 2; 32→64; 64→128), BiLSTM(256) over time on channels × frequency, Tanh,
    Linear(T→1) across time + ReLU, Linear(num_classes)."""
    from torch import nn

    def block(channels_in, channels_out, stride, pool_stride):
        return [nn.Conv2d(channels_in, channels_out, 3, stride=stride), nn.ReLU(),
                nn.MaxPool2d(2, stride=pool_stride), nn.BatchNorm2d(channels_out)]

    class CRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(*block(1, 16, 2, 2), *block(16, 32, 2, 1), *block(32, 64, 1, 1),
                                      *block(64, 128, 1, 1))
            with torch.no_grad():
                channels, bands, steps = self.conv(torch.zeros(1, 1, mels, frames)).shape[1:]
            self.lstm = nn.LSTM(channels * bands, 256, batch_first=True, bidirectional=True)
            self.time_fc = nn.Sequential(nn.Linear(steps, 1), nn.ReLU())
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.conv(x).flatten(1, 2).transpose(1, 2)
            x, _ = self.lstm(x)
            return self.fc(self.time_fc(torch.tanh(x).transpose(1, 2)).flatten(1))

    return CRNN()


def log_mel(torchaudio, sample_rate, n_fft, hop_length, n_mels):
    """``[batch, samples]`` → ``[batch, 1, n_mels, frames]`` dB (top 80 dB), Slaney mels as librosa's;
    the channel axis is the CRNN's and lets the masks draw one mask per example."""
    import torch

    return torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                                             n_mels=n_mels, norm="slaney", mel_scale="slaney"),
        torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80),
        torch.nn.Unflatten(1, (1, n_mels)))


def spec_augment(torchaudio):
    """Two frequency masks (≤ 15 bands) and two time masks (≤ 20 frames), one draw per example."""
    import torch

    frequency = torchaudio.transforms.FrequencyMasking(15, iid_masks=True)
    time = torchaudio.transforms.TimeMasking(20, iid_masks=True)
    return torch.nn.Sequential(frequency, frequency, time, time)


def train_step(torch, model, inputs, labels, front_end=None, learning_rate=1e-4):
    """``step()``: one Adam step of ``model`` on the device-resident batch (through ``front_end``
    first, when given), waiting for the device; as ``bench train`` times Keras' step."""
    optimizer = torch.optim.Adam(model.parameters(), learning_rate)
    loss_function = torch.nn.CrossEntropyLoss()
    wait = synchronizer(torch)

    def step():
        optimizer.zero_grad()
        batch = inputs if front_end is None else front_end(inputs)
        loss_function(model(batch), labels).backward()
        optimizer.step()
        wait()
    return step
