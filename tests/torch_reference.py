"""PyTorch, torchvision and transformers as references in a test process that runs TensorFlow.

The CUDA build of torch depends on triton, whose LLVM crashes the process (segmentation fault)
when it loads after TensorFlow's; torch._dynamo imports triton when it is installed, and
torchvision and transformers import torch._dynamo. Marked absent here, triton counts as not
installed, which the CPU references never need. coughclf itself only calls ``torch.load``,
which imports neither.
"""

import sys

import pytest

if "triton" not in sys.modules:
    sys.modules["triton"] = None  # an import of it now raises ImportError: "not installed"

torch = pytest.importorskip("torch")
