"""benchmarks/pcgu_update_size.py on a hand-built sparse adapter: relative changes computed by hand."""

from __future__ import annotations

import benchmark_scripts
import pytest
import torch

from debias import sparse_adapter


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rows = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]))
        self.cols = torch.nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        self.norm = torch.nn.Parameter(torch.tensor([2.0, 0.0]))


def test_relative_change_per_unit_by_hand(tmp_path):
    update_size = benchmark_scripts.load("pcgu_update_size")
    base = _Tiny()
    base_weights = {name: param.detach().clone() for name, param in base.named_parameters()}
    trained = _Tiny()
    with torch.no_grad():
        trained.rows[0] += torch.tensor([0.3, 0.4])  # ‖Δ‖ 0.5 on ‖row‖ 5: 0.1
        trained.rows[2] += torch.tensor([0.0, 1.0])  # 1 on 2: 0.5
        trained.cols[:, 1] += torch.tensor([0.25, 0.0])  # column 1: 0.25 on 1
        trained.norm += torch.tensor([0.0, 2.0])  # the whole vector: 2 on 2 = 1.0
    changed = {
        "rows": (0, torch.tensor([0, 2])),
        "cols": (1, torch.tensor([1])),
        "norm": (None, torch.tensor([0])),  # a 1-D parameter is one unit
    }
    sparse_adapter.save(tmp_path / "a", trained, changed, {})

    changes = update_size.relative_changes(tmp_path / "a", base_weights.__getitem__)
    assert changes["rows"] == pytest.approx([0.1, 0.5])
    assert changes["cols"] == pytest.approx([0.25])
    assert changes["norm"] == pytest.approx([1.0])
    result = update_size.summary(changes)
    assert result["units"] == 4 and result["parameters"] == 3
    assert result["largest_unit"] == pytest.approx(1.0)
    assert result["median_unit"] == pytest.approx((0.25 + 0.5) / 2)
    assert result["median_of_parameter_medians"] == pytest.approx(0.3)  # medians 0.3, 0.25, 1.0
