#!/usr/bin/env bash
# The GPU checks as one prepared run, for a session lent an NVIDIA GPU (the device tool):
#   run(command="bash benchmarks/device_check.sh", timeout_s=570)
# The device image has torch, torchvision and every package dimcollapse needs; the package runs
# from src/ (no install). Fashion-MNIST is not there: the checks use digits and random images.
# Everything lands in $OUT (at most 8 files come back): gpu.txt, pytest_gpu.log, bench.json,
# bench_224.json, guard.json, spectrum.json. Each step has its own time limit, so one that hangs
# cannot take the others with it; about 7 minutes in all on an H200 (estimated, not yet run).
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

{ nvidia-smi -L; $py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } \
    >"$OUT/gpu.txt" 2>&1

# the CUDA tests (skipped on CPU CI): device augmentation == CPU, loaders, bf16 training, bench goal
timeout 150 $py -m pytest -q -p no:cacheprovider -m gpu tests >"$OUT/pytest_gpu.log" 2>&1
echo "pytest -m gpu: exit $?" >>"$OUT/gpu.txt"

# throughput goals: 32 px ResNet-18 (b) >= 85% of (a) and >= 4x (c); 224 px ResNet-50 (b) >= 70%
timeout 120 $py -m dimcollapse bench --device cuda --json >"$OUT/bench.json" 2>>"$OUT/gpu.txt"
timeout 150 $py -m dimcollapse bench --device cuda --backbone resnet50 --image-size 224 \
    --batch 256 --steps 20 --warmup 5 --json >"$OUT/bench_224.json" 2>>"$OUT/gpu.txt"

# the divergence guard's cost per step, and the float64 spectrum on the GPU
timeout 60 $py benchmarks/bench_guard.py --device cuda --width 1 --batch 256 --json \
    >"$OUT/guard.json" 2>>"$OUT/gpu.txt"
timeout 90 $py benchmarks/bench_spectrum.py --device cuda --json >"$OUT/spectrum.json" \
    2>>"$OUT/gpu.txt"
echo "done" >>"$OUT/gpu.txt"
