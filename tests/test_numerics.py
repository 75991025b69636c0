"""Importing segsort pins the CPU's code paths (segsort/__init__.py), so the fingerprint's training steps give
the same weights whatever instruction set the environment asks for, or MKL is told the CPU has: the closest
this one machine comes to another CPU. SEGSORT_NATIVE_ISA=1 hands the choice back to the libraries."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # training steps in subprocesses

REPO = Path(__file__).resolve().parents[1]
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "SEGSORT_NATIVE_ISA")


def numerics_output(**env: str) -> str:
    """What `python -m segsort.numerics` prints (the stage's numerics line and the fingerprint)."""
    environment = {key: value for key, value in os.environ.items() if key not in ISA_VARIABLES}
    return subprocess.run([sys.executable, "-m", "segsort.numerics"], env={**environment, **env}, cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


def test_importing_segsort_pins_the_kernels_whatever_the_environment_asks_for():
    pinned = numerics_output()
    if "ATen AVX2 kernels" not in pinned:
        pytest.skip("this CPU has no AVX2: the kernels are below the cap already")
    assert pinned.startswith("numerics: 2 threads, ATen AVX2 kernels, MKL COMPATIBLE,STRICT, no oneDNN\n")
    for request in ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2",
                     "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, {"MKL_ENABLE_INSTRUCTIONS": "AVX512"}):
        assert numerics_output(**request) == pinned, request
    # each request, with the pinning turned off, reaches its library and changes the weights: the pinned
    # settings are the ones that decide them
    fingerprint = pinned.splitlines()[-1]
    for request in ({"ATEN_CPU_CAPABILITY": "default"}, {"MKL_CBWR": "AVX2"}):
        native = numerics_output(SEGSORT_NATIVE_ISA="1", **request)
        assert "native ISA" in native and native.splitlines()[-1] != fingerprint, request
