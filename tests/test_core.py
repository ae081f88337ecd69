import numpy as np
import pytest
import torch

from ebm_teach import core


def test_get_device_honours_environment(monkeypatch):
    monkeypatch.setenv("EBM_TEACH_DEVICE", "cpu")
    assert core.get_device() == torch.device("cpu")
    monkeypatch.delenv("EBM_TEACH_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert core.get_device().type == expected


def test_get_device_rejects_unknown_and_missing_cuda(monkeypatch):
    with pytest.raises(ValueError, match="unknown device"):
        core.get_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            core.get_device("cuda")


def test_seed_everything_reproduces_all_three_generators():
    core.seed_everything(123)
    a = (np.random.rand(), torch.rand(3), __import__("random").random())
    core.seed_everything(123)
    b = (np.random.rand(), torch.rand(3), __import__("random").random())
    assert a[0] == b[0] and a[2] == b[2] and torch.equal(a[1], b[1])


def test_make_generator_is_deterministic(device):
    g1, g2 = core.make_generator(7, device), core.make_generator(7, device)
    assert torch.equal(torch.randn(5, generator=g1, device=device), torch.randn(5, generator=g2, device=device))


def test_check_tensor_shapes_and_messages():
    x = core.check_tensor(np.ones((4, 2), dtype=np.int64), "x", shape=(None, 2))
    assert x.dtype == torch.get_default_dtype() and x.shape == (4, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\); got \(4, 3\)"):
        core.check_tensor(torch.ones(4, 3), "x", shape=(None, 2))
    with pytest.raises(ValueError, match=r"x\[None, :\]"):
        core.check_tensor(torch.ones(3), "x", ndim=2)
    with pytest.raises(ValueError, match="contains 2 NaN/inf value\\(s\\) \\(the first at index \\(1, 0\\)\\)"):
        core.check_tensor(torch.tensor([[0.0, 1.0], [float("nan"), float("inf")]]), "x")


def test_check_binary_names_the_offending_range():
    core.check_binary(torch.tensor([0.0, 1.0, 1.0]), "v")
    with pytest.raises(ValueError, match=r"v must be binary \(0/1\); got 2 value\(s\) in \[0.2, 0.7\]"):
        core.check_binary(torch.tensor([0.0, 0.2, 0.7, 1.0]), "v")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_check_positive_rejects(bad):
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        core.check_positive(bad, "step_size")


def test_check_int_and_probability():
    assert core.check_int(np.int64(3), "k", minimum=1) == 3
    with pytest.raises(TypeError, match="k must be an integer"):
        core.check_int(2.5, "k")
    with pytest.raises(ValueError, match="k must be >= 1"):
        core.check_int(0, "k", minimum=1)
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\)"):
        core.check_probability(1.0, "fraction", allow_one=False)


def test_progress_is_quiet_under_tests():
    it = range(3)
    assert core.progress(it) is it


def test_single_thread_if_small_switches_and_restores():
    before = torch.get_num_threads()
    if before == 1:
        torch.set_num_threads(2)
    try:
        n = torch.get_num_threads()
        with core.single_thread_if_small(10, 1000, "cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == n
        with core.single_thread_if_small(10_000, 1000, "cpu"):
            assert torch.get_num_threads() == n
        with pytest.raises(RuntimeError):
            with core.single_thread_if_small(10, 1000, "cpu"):
                raise RuntimeError("boom")
        assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)
