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

# A transformers AST small enough for the default suite: 2 blocks of 32, 56 frames x 36 mel bins.
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
        "max_length": 56, "num_mel_bins": 36, "num_labels": 5}


def random_ast(config, head=True, seed=0):
    """transformers' AST with every parameter drawn at random (LayerNorms included), in eval mode."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.ASTConfig(**config)
    model = (transformers.ASTForAudioClassification if head else transformers.ASTModel)(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model


def random_torchvision(name, seed=0):
    """torchvision's ``resnet18``/``resnet34`` with random weights and BatchNorm statistics, in eval mode."""
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        # Random statistics let activations grow through the stages: a small fc keeps the logits
        # near 1, so float32 probabilities stay comparable instead of saturating.
        model.fc.weight.mul_(0.01)
    return model
