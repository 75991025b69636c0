"""SegSort: segmentation by discriminative sorting of segments (Hwang et al., ICCV 2019).

Importing the package pins the CPU's numerical code paths, so that a training run, which amplifies every
rounding difference, ends with the same weights on every x86-64 CPU with AVX2 (Intel or AMD, with AVX-512 or
without), and the tiny tables with it:
- ATen's vectorised kernels are capped at AVX2: AVX-512 kernels sum floats in another order.
- MKL (matrix products; convolutions' backward passes) takes its COMPATIBLE code path in STRICT mode, which
  MKL documents as the one reproducible across Intel and non-Intel processors.
- oneDNN, which picks its kernels by the CPU it finds, is switched off by segsort.stage.setup_torch:
  convolutions take ATen's own kernels, which call MKL; the cap below covers anything that still reaches it.
With MKL's AVX2 branch and oneDNN on, an AMD and an Intel CPU (both with AVX-512) took the same forward pass
of the tiny chain's first training step and computed other gradients. Pinned as here, the step's values stay
the same whatever instruction set MKL and oneDNN are told the CPU has (tests/test_numerics.py).
The libraries read these variables when they first compute, not when torch is imported, so this works as
long as no tensor has been computed yet (setup_torch checks it). Set SEGSORT_NATIVE_ISA=1 to keep each
library's own, faster choice (results then depend on the CPU).
"""
import os

PINNED_NUMERICS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE,STRICT",  # MKL's conditional numerical reproducibility: the path every CPU shares
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # lets cuBLAS be deterministic (torch.use_deterministic_algorithms)
}

if os.environ.get("SEGSORT_NATIVE_ISA") != "1":
    os.environ.update(PINNED_NUMERICS)

__all__ = ["Segmenter"]


def __getattr__(name: str):
    """`from segsort import Segmenter` (segsort.segmenter): imported when first asked for, so that importing the
    package still loads no torch (the stages that only assemble tables start without it)."""
    if name == "Segmenter":
        from segsort.segmenter import Segmenter
        return Segmenter
    raise AttributeError(f"module 'segsort' has no attribute {name!r}")
