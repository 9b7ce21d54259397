#!/bin/bash
# Barlow Twins' dead expander units against the learning rate, at the quick scale's setting
# (Fashion-MNIST, 4,000 images, 2 epochs, batch 128, ResNet-18 x0.25, half stem, 3 seeds):
#   experiments/pilot_expander_lr.sh OUT_DIR
# trains base_lr 0.3 (the default, SimCLR's) and 0.03, two processes at a time, then counts
# the expander's dead units and z's rank (experiments/expander_units.py).
set -euo pipefail
out=${1:?usage: experiments/pilot_expander_lr.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
train() {
  OMP_NUM_THREADS=1 "$python" -m dimcollapse train --method barlow-twins \
    --dataset fashion-mnist --subset 4000 --epochs 2 --batch-size 128 --width 0.25 \
    --stem half --monitor-samples 0 --device cpu --workers 0 --data-path device \
    --base-lr "$1" --seed "$2" --quiet --out "$out/lr$1-s$2"
}
for seed in 0 1 2; do
  train 0.3 "$seed" &
  train 0.03 "$seed"
  wait
done
OMP_NUM_THREADS=1 "$python" "$here/expander_units.py" "$out"/lr0.3-s{0,1,2} "$out"/lr0.03-s{0,1,2}
