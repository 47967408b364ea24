#!/usr/bin/env bash
# Ours against PyTorch and the GEMM ceiling, back to back, as docs/performance.md reports them:
# per round and thread count `siamese train` (300 iterations), `siamese time`, `siamese embed` of
# 10,000 digits, then PyTorch's training and inference (batches 64, 128, 256); the ceiling at
# the end; startup last.
#   scripts/bench-side-by-side.sh BENCH_DIR SIAMESE [SIAMESE_BASELINE]
# BENCH_DIR holds solver.prototxt + train_test.prototxt (the *Method* of docs/performance.md),
# w.caffemodel (any weights of the deploy net) and t10k-10000-idx3-ubyte; VENV is a Python
# environment with torch, numpy and threadpoolctl (default /work/bench-venv).
set -euo pipefail
B=$1; BINS=("$2" "${3:-}"); NAMES=(new baseline); VENV=${VENV:-/work/bench-venv}; ROUNDS=${ROUNDS:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd); REF=$REPO/../shared/bench
M=$REPO/experiments/siamese/mnist_siamese.prototxt
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "start $(date -u +%H:%M:%S) load $(load)"
for r in $(seq "$ROUNDS"); do for t in 1 2; do
  for i in 0 1; do
    bin=${BINS[$i]}; [ -n "$bin" ] || continue
    tag="${NAMES[$i]} t$t r$r"
    "$bin" train --solver "$B/solver.prototxt" --iterations 300 --threads "$t" --json-summary "$B/summary.json" > /dev/null
    python3 -c "import json; d = json.load(open('$B/summary.json')); print('train $tag median', round(d['ms_per_iter_median'], 2), 'mean', round(d['ms_per_iter_mean'], 2), 'rss', round(d['peak_rss_mb'], 1), 'loss', d['final_train_loss'])"
    "$bin" time --model "$B/train_test.prototxt" --threads "$t" --iterations 300 | grep "Forward-Backward" | sed "s/^/time $tag /"
    "$bin" embed --model "$M" --weights "$B/w.caffemodel" --images "$B/t10k-10000-idx3-ubyte" --threads "$t" --out "$B/feats.csv" 2>&1 | sed "s/^/embed $tag /"
  done
  (cd "$REF" && "$VENV/bin/python" siamese_torch.py --iters 300 --threads "$t" 2>&1 | grep "^timing" | sed "s/^/torch t$t r$r /")
  # Three batches: the embed target compares against PyTorch's fastest.
  for batch in 64 128 256; do
    (cd "$REF" && "$VENV/bin/python" embed_torch.py --images 10000 --batch "$batch" --threads "$t" 2>&1 | grep "images/s" | sed "s/^/torch-embed t$t r$r /")
  done
done; done
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$VENV/bin/python" "$REF/gemm_ceiling.py" --backend numpy --threads 1,2 2>&1 | grep "^numpy.*sq2048"
for i in 0 1; do
  bin=${BINS[$i]}; [ -n "$bin" ] || continue
  for _ in $(seq 11); do
    s=$(date +%s%N)
    "$bin" embed --model "$M" --weights "$B/w.caffemodel" --images "$B/t10k-10000-idx3-ubyte" --limit 1 --out "$B/feats1.csv" 2> /dev/null
    echo $(( ($(date +%s%N) - s) / 100000 ))
  done | sort -n | awk -v b="${NAMES[$i]}" '{a[NR] = $1} END {printf "startup %s: median %.1f ms (%.1f to %.1f)\n", b, a[6] / 10, a[1] / 10, a[11] / 10}'
done
echo "end $(date -u +%H:%M:%S) load $(load)"
