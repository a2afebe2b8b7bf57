"""PyTorch is optional: importing coughclf never imports it, .safetensors load without it, .pth says what to install."""

import subprocess
import sys
from pathlib import Path

import pytest

from torch_reference import torch

torchvision = pytest.importorskip("torchvision")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_TORCH = """
import sys
import coughclf.cli, coughclf.layers, coughclf.models.checkpoints, coughclf.optimizers
from coughclf import models
models.available()
imported = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "transformers"))
assert not imported, f"importing coughclf imported {imported[:5]}"
sys.modules["torch"] = None  # from here on, as if PyTorch were not installed
from coughclf.errors import CoughclfError
model = models.build("resnet18", weights=sys.argv[1], input_mode="image", image_size=(32, 32))
print("safetensors", model.get_layer("fc").kernel.shape)
try:
    models.build("resnet18", weights=sys.argv[2])
except CoughclfError as error:
    print("pth", error)
"""


def test_importing_coughclf_never_imports_torch_and_safetensors_need_none(tmp_path):
    state = torchvision.models.resnet18(weights=None, num_classes=7).state_dict()
    safetensors_numpy.save_file({key: value.numpy() for key, value in state.items()}, str(tmp_path / "r18.safetensors"))
    torch.save(state, tmp_path / "r18.pth")
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(tmp_path / "r18.safetensors"),
                             str(tmp_path / "r18.pth")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "safetensors (512, 7)" in lines
    assert any(line.startswith("pth ") and "pip install 'coughclf[torch]'" in line for line in lines), lines
