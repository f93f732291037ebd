"""What runs between epochs (samples, 2-D plots, in-loop evaluation, checkpoints) leaves training
as it was when tests/fixtures/golden_boundary.json was recorded: 5 variants over 2 epochs, bit for
bit (the same pinned kernels as tests/test_golden.py)."""

from __future__ import annotations

import json

import pytest

from golden_cases import BOUNDARY_RECORD
from test_golden import _diff, _run, pytestmark  # noqa: F401  (the same skip condition)


@pytest.mark.slow
def test_two_epochs_with_everything_between_them_bit_for_bit():
    record = json.loads(BOUNDARY_RECORD.read_text())["cases"]
    got = _run("--boundary")
    assert sorted(got) == sorted(record)
    bad = {name: d for name in got if (d := _diff(record[name], got[name]))}
    assert not bad, f"{len(bad)} cases differ, e.g. {next(iter(bad.items()))}"
