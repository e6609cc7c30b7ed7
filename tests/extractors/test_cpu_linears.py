"""oneDNN linears: prepacked bf16 equals torch's bf16 linear, keeps its state dict, and is used by bf16 runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embedprobe.extractors.cpu_linears import (
    prepacked_supported,
    use_onednn_linears,
    use_prepacked_linears,
)
from embedprobe.extractors.precision import cpu_bf16_supported

needs_prepacked = pytest.mark.skipif(not prepacked_supported(), reason="this torch has no prepacked oneDNN linears")


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 16, bias=False), nn.LayerNorm(16))
    return net.eval().requires_grad_(False)


@needs_prepacked
def test_prepacked_equals_bf16_linear_and_keeps_the_state_dict() -> None:
    net = small_net().to(torch.bfloat16)
    x = torch.randn(5, 7, 32)
    want = net(x.to(torch.bfloat16))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert use_prepacked_linears(net) == 2
    assert type(net[0]).__name__ == "PrepackedLinear" and net[0].weight.dtype == torch.bfloat16
    got = net(x)  # fp32 input is cast like autocast would
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    torch.testing.assert_close(got.float(), want.float(), rtol=1e-2, atol=1e-2)
    after = net.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], state[k]) for k in state)
    state["0.weight"] = torch.zeros_like(state["0.weight"])
    net.load_state_dict(state)  # packs the new weight
    assert torch.equal(net.state_dict()["0.weight"], state["0.weight"])


@needs_prepacked
def test_fp32_linears_are_left_alone() -> None:
    net = small_net()
    assert use_prepacked_linears(net) == 0 and type(net[0]) is nn.Linear


def test_onednn_fp32_linears_equal_torch() -> None:
    net = small_net()
    x = torch.randn(3, 32)
    want = net(x)
    assert use_onednn_linears(net) == 2
    torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-5)


@needs_prepacked
@pytest.mark.skipif(not cpu_bf16_supported(), reason="no native bf16 on this CPU")
def test_bf16_extractors_run_prepacked() -> None:
    from embedprobe.extractors import EXTRACTORS

    entry = EXTRACTORS.get("wavlm-base")
    ext = entry.cls.for_tests(entry.spec).load()
    assert ext.runtime_config()["precision"] == "bf16"
    assert ext.runtime_config()["prepacked_linears"] > 0
