"""SegSort: segmentation by discriminative sorting of segments (Hwang et al., ICCV 2019).

Importing the package pins the CPU's numerical code paths. oneDNN (convolutions), ATen (vectorised
kernels) and MKL (matrix products) otherwise pick their kernels by the instruction set of the CPU they run
on, and AVX-512 kernels sum floats in another order than AVX2 ones: a training run, which amplifies every
rounding difference, then ends with other weights and the tiny tables change with the machine. Capped at
AVX2, every x86-64 CPU that has AVX2 takes the same code paths. The libraries read these variables when
they first compute, not when torch is imported, so this works as long as no tensor has been computed yet
(segsort.stage.setup_torch checks it). Set SEGSORT_NATIVE_ISA=1 to keep each library's own choice.
"""
import os

PINNED_NUMERICS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility, AVX2 code branch
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # lets cuBLAS be deterministic (torch.use_deterministic_algorithms)
}

if os.environ.get("SEGSORT_NATIVE_ISA") != "1":
    os.environ.update(PINNED_NUMERICS)
