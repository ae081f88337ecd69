import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every available device: the CPU always, CUDA when present (never CUDA only)."""
    return torch.device(request.param)
