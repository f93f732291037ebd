"""Training computes what it computed when tests/fixtures/golden.json was recorded, bit for bit.

Every preset and variant (tests/golden_cases.py) trains 3 steps on a fixed toy slice; the SHA-256
of every weight and optimizer tensor must match the record. A run written by the earlier code
(tests/fixtures/old_run, stopped mid-epoch) must resume under this code to the recorded tensors.
The cases run in a subprocess with one thread and the CPU kernels held to AVX2, so the bits do not
depend on the x86-64 host; the record is for the torch release that ``make`` installs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from golden_cases import GOLDEN

RECORD = json.loads(GOLDEN.read_text())
PINNED_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MKL_CBWR": "AVX2",
              "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

pytestmark = pytest.mark.skipif(
    torch.__version__.split("+")[0] != RECORD["torch"].split("+")[0]
    or platform.machine() not in ("x86_64", "AMD64"),
    reason=f"the record holds torch {RECORD['torch']} on x86-64 bits")


def _run(*args: str) -> dict:
    env = {**os.environ, **PINNED_ENV}
    r = subprocess.run([sys.executable, str(GOLDEN.parents[1] / "golden_cases.py"), *args],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _diff(want: dict[str, str], got: dict[str, str]) -> list[str]:
    keys = sorted(set(want) | set(got))
    return [k for k in keys if want.get(k) != got.get(k)]


@pytest.mark.slow
def test_every_preset_and_variant_trains_bit_for_bit():
    got = _run()
    assert sorted(got) == sorted(RECORD["cases"])
    bad = {name: _diff(RECORD["cases"][name], got[name]) for name in got}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"{len(bad)} cases differ, e.g. {next(iter(bad.items()))}"


def test_a_run_written_by_the_earlier_code_resumes_bit_for_bit():
    got = _run("--resume-old")
    want = RECORD["old_run"]
    assert got["metrics"] == want["metrics"] == 2  # epoch 1 kept, epoch 2 trained from mid-epoch
    assert not _diff(want["hashes"], got["hashes"])
