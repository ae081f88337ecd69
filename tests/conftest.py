import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every available device: the CPU always, CUDA when present (never CUDA only)."""
    return torch.device(request.param)


@pytest.fixture
def one_thread():
    """Run a test on one CPU thread, then restore the count. The tests that use it run thousands of tiny
    tensor operations, where a second intra-op thread only adds synchronisation (10x slower on a busy
    2-core machine); see DEVELOPING.md, "CPU threads"."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
