"""The shared value checks: counts, numbers, devices and names that become paths."""

from __future__ import annotations

import pytest

from embedprobe.common import checks
from embedprobe.errors import BadValueError


@pytest.mark.parametrize("value", [0, -3, True, 1.5, "4", None])
def test_count_refuses_non_counts(value: object) -> None:
    with pytest.raises(BadValueError, match=r"Use an integer >= 1"):
        checks.count("batch size", value, option="--batch-size")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, 1.1, "0.5", True])
def test_number_refuses_out_of_range_and_non_numbers(value: object) -> None:
    with pytest.raises(BadValueError, match=r"\[0, 1\]"):
        checks.number("rate", value, low=0, high=1)


@pytest.mark.parametrize("value", ["bogus", "cuda:", "cuda:-1", "CPU", "cuda:0x", "gpu", ""])
def test_device_syntax(value: str) -> None:
    with pytest.raises(BadValueError, match="cuda:N"):
        checks.device(value)


def test_device_accepts_the_known_forms_without_asking_torch() -> None:
    assert [checks.device(d, check_available=False) for d in ("cpu", "cuda", "cuda:3", "mps")] == [
        "cpu", "cuda", "cuda:3", "mps"]


@pytest.mark.parametrize("value", ["../x", "a/b", "a\\b", "..", ".x", "-x", "x\n", "a b", "", "x..y"])
def test_name_for_path_refuses_path_like_names(value: str) -> None:
    with pytest.raises(BadValueError, match="file name"):
        checks.name_for_path("tag", value)


@pytest.mark.parametrize("value", ["v2", "emodb-small", "aug-paper-s0", "a.b_c+d=e"])
def test_name_for_path_accepts_plain_names(value: str) -> None:
    assert checks.name_for_path("tag", value) == value


def test_cuda_devices_are_checked_against_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert checks.device("cuda") == "cuda" and checks.device("cuda:1") == "cuda:1"
    with pytest.raises(BadValueError, match=r"has 2 CUDA device\(s\)") as err:
        checks.device("cuda:2")
    assert "cuda:0" in str(err.value) and "cuda:1" in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BadValueError, match="--device cpu"):
        checks.device("cuda:0")
