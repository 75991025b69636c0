"""Importing segsort caps the CPU's kernels at AVX2 (segsort/__init__.py), so a training step gives the same
weights whatever instruction set the environment asks for; SEGSORT_NATIVE_ISA=1 hands the choice back."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # training steps in subprocesses

REPO = Path(__file__).resolve().parents[1]
TRAINING_STEPS = """
import hashlib
import segsort  # before any tensor is computed
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 3))
optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
images = torch.randn(2, 3, 48, 48)
for _ in range(3):
    loss = net(images).exp().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest())
"""


def weights_digest(**env: str) -> str:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "SEGSORT_NATIVE_ISA")}
    result = subprocess.run([sys.executable, "-c", TRAINING_STEPS], env={**environment, **env,
                            "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_importing_segsort_pins_the_kernels_whatever_the_environment_asks_for():
    pinned = weights_digest()
    assert weights_digest(ONEDNN_MAX_CPU_ISA="AVX", ATEN_CPU_CAPABILITY="default") == pinned
    # the same request with the pinning turned off reaches the libraries and changes the weights: the
    # variables that are pinned are the ones that decide them
    assert weights_digest(ONEDNN_MAX_CPU_ISA="AVX", ATEN_CPU_CAPABILITY="default",
                          SEGSORT_NATIVE_ISA="1") != pinned


def test_a_stage_logs_its_numerics():
    code = "import segsort.stage as s; s.setup_torch({'threads': 1, 'seed': 0})"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("numerics: 1 threads, ATen ") and "capped at AVX2" in result.stdout
