#!/usr/bin/env bash
# The GPU checks of issue 7 in one run of a few minutes: the layers' GPU tests (bin/layer-tests
# cuda::, every layer's GPU op against the CPU; bin/gpu-tests, whole nets and the device API),
# a 1,000-iteration siamese training on the CPU and on the GPU with their loss curves compared,
# a resume on the GPU, `siamese time --device gpu` per layer, and ms/iteration.
#
#   scripts/gpu-check.sh                 build here (cargo, --features cuda) and run the checks
#   scripts/gpu-check.sh --bundle DIR    build the binaries, the GPU test executable and the
#                                        data into DIR (for a GPU machine without Rust)
#   scripts/gpu-check.sh --run DIR       run the checks from a bundle (no cargo needed)
#
# Results (logs, CSVs, JSON summaries, summary.txt) go to DIR/results. Environment:
# GPU_CHECK_DEVICE (default gpu:0), GPU_CHECK_ITERS (default 1000), GPU_CHECK_TOL (relative
# tolerance of the CPU/GPU loss comparison, default 0.05, with an absolute floor of 0.002).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${GPU_CHECK_DEVICE:-gpu:0}
ITERS=${GPU_CHECK_ITERS:-1000}
TOL=${GPU_CHECK_TOL:-0.05}

die() { echo "gpu-check: $*" >&2; exit 2; }
step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# ---- bundle: everything the checks need, built here ------------------------------------------
bundle() {
  local dir=$1
  command -v cargo >/dev/null || die "--bundle needs cargo (run it where the source is built)"
  mkdir -p "$dir/bin" "$dir/data/mnist" "$dir/experiments" || die "cannot create $dir"
  dir=$(cd "$dir" && pwd)
  cd "$ROOT" || die "cannot enter $ROOT"
  step "cargo build --release -p siamese-cli --features cuda"
  cargo build --release -p siamese-cli --features cuda || die "release build failed"
  cp target/release/siamese "$dir/bin/siamese"
  # Two test executables: the crate's unit tests (src/cuda/tests.rs: every layer's GPU op
  # against the CPU layer) and tests/gpu.rs (whole nets, the device API).
  step "cargo test -p siamese-layers --features cuda --lib --test gpu --no-run"
  local artifacts exe
  artifacts=$(cargo test -p siamese-layers --features cuda --lib --test gpu --no-run \
    --message-format=json | grep '"reason":"compiler-artifact"') || die "test build failed"
  exe=$(echo "$artifacts" | grep '"name":"gpu"' | grep '"kind":\["test"\]' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  [ -n "$exe" ] && [ -x "$exe" ] || die "could not find the gpu test executable in cargo's output"
  cp "$exe" "$dir/bin/gpu-tests"
  exe=$(echo "$artifacts" | grep '"name":"siamese_layers"' | grep '"kind":\["lib"\]' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  [ -n "$exe" ] && [ -x "$exe" ] || die "could not find the layers unit-test executable in cargo's output"
  cp "$exe" "$dir/bin/layer-tests"
  strip --strip-debug "$dir/bin/siamese" "$dir/bin/gpu-tests" "$dir/bin/layer-tests" 2>/dev/null || true
  step "pair LevelDBs from data/mnist-sample"
  rm -rf "$dir/data/mnist"/siamese_*_leveldb
  cargo xtask create-siamese-db --in data/mnist-sample --out "$dir/data/mnist" ||
    die "cannot build the pair LevelDBs"
  rm -rf "$dir/experiments/siamese"
  cp -r experiments/siamese "$dir/experiments/siamese"
  cp scripts/gpu-check.sh "$dir/gpu-check.sh"
  git -C "$ROOT" rev-parse HEAD >"$dir/COMMIT" 2>/dev/null || true
  echo "bundle ready: $dir ($(du -sh "$dir" | cut -f1)); on the GPU machine: $dir/gpu-check.sh --run $dir"
}

# ---- run: the checks, from a bundle ------------------------------------------------------------
cuda_library_path() {
  local d extra=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
    /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [ -d "$d" ] && extra="$extra:$d"
  done
  export LD_LIBRARY_PATH="${extra#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

# The check's solver: the project's hyper-parameters, ITERS iterations, a display row every 10
# iterations smoothed over 10, tests every 250, one snapshot half-way (for the resume check).
write_solver() {
  cat >"$1" <<EOF
net: "experiments/siamese/mnist_siamese_train_test.prototxt"
test_iter: 20
test_interval: 250
base_lr: 0.01
momentum: 0.9
weight_decay: 0
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 10
average_loss: 10
max_iter: $ITERS
snapshot: $((ITERS / 2))
snapshot_after_train: false
snapshot_prefix: "$2"
random_seed: 1701
solver_mode: CPU
EOF
}

# compare_curves A.csv B.csv TOL FROM TO: every train and test loss of B at iterations FROM..TO
# against A's at the same iteration, |b - a| <= TOL * max(|a|, 0.04). Prints the worst.
compare_curves() {
  awk -F, -v tol="$3" -v from="$4" -v to="$5" '
    FNR == 1 { next }
    NR == FNR { tr[$1] = $3; te[$1] = $4; next }
    $1 + 0 < from || $1 + 0 > to { next }
    {
      for (k = 3; k <= 4; k++) {
        if ($k == "") continue
        a = (k == 3) ? tr[$1] : te[$1]
        if (a == "") { missing++; continue }
        d = $k - a; if (d < 0) d = -d
        s = (a < 0 ? -a : a); if (s < 0.04) s = 0.04
        n++
        if (d > maxd) { maxd = d; at = $1 }
        if (d / s > maxr) maxr = d / s
        if (d > tol * s) bad++
      }
    }
    END {
      printf "%d values compared, max abs diff %.3g (iter %s), max rel diff %.3g, %d over tolerance %s, %d missing\n",
        n, maxd, at, maxr, bad, tol, missing
      exit (n == 0 || bad > 0 || missing > 0)
    }' "$1" "$2"
}

json_field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1" 2>/dev/null; }

RESULTS=()
record() { RESULTS+=("$(printf '%-34s %-5s %s' "$1" "$2" "$3")"); }

run_checks() {
  local dir
  dir=$(cd "$1" 2>/dev/null && pwd) || die "no bundle at $1"
  [ -x "$dir/bin/siamese" ] && [ -x "$dir/bin/gpu-tests" ] && [ -x "$dir/bin/layer-tests" ] ||
    die "$dir is not a bundle (make one with scripts/gpu-check.sh --bundle $1)"
  cd "$dir" || die "cannot enter $dir"
  cuda_library_path
  local out="$dir/results" siamese="$dir/bin/siamese"
  rm -rf "$out" runs && mkdir -p "$out"
  echo "bundle: $dir (commit $(cat COMMIT 2>/dev/null || echo unknown)); device $DEVICE"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  command -v nvidia-smi >/dev/null && nvidia-smi -L

  local status line skips log name
  for name in layer-tests gpu-tests; do
    # layer-tests: only its cuda:: tests (every layer's GPU op against the CPU layer).
    local filter=""
    [ "$name" = layer-tests ] && filter="cuda::"
    step "layers: $name $filter"
    log="$out/$name.log"
    timeout 240 "$dir/bin/$name" $filter --test-threads=1 --nocapture 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    line=$(grep -E '^test result:' "$log" | tail -n 1)
    skips=$(grep -c 'skipped:' "$log")
    if [ "$status" -ne 0 ]; then record "$name (gpu)" FAIL "${line:-exit status $status}"
    elif [ "$skips" -gt 0 ]; then
      record "$name (gpu)" SKIP "$skips test(s) $(grep -m1 -o 'skipped:.*' "$log")"
    else record "$name (gpu)" PASS "${line#test result: }"; fi
  done

  write_solver "$out/solver.prototxt" "runs/gpu-check/siamese"
  local dev
  for dev in cpu "$DEVICE"; do
    local tag=${dev%%:*}
    step "train $ITERS iterations on $dev"
    timeout 240 "$siamese" train --solver "$out/solver.prototxt" --device "$dev" \
      --log-csv "$out/loss-$tag.csv" --json-summary "$out/summary-$tag.json" >"$out/train-$tag.log" 2>&1
    status=$?
    tail -n 4 "$out/train-$tag.log"
    if [ "$status" -ne 0 ]; then
      record "train on $dev" FAIL "exit status $status: $(grep -m1 '^error' "$out/train-$tag.log")"
    else
      record "train on $dev" PASS "$(json_field "$out/summary-$tag.json" ms_per_iter_median) ms/iter (median), final loss $(json_field "$out/summary-$tag.json" final_train_loss)"
    fi
    [ "$tag" = cpu ] && mv runs/gpu-check "$out/snapshots-cpu" 2>/dev/null
  done

  step "loss curves: $DEVICE against cpu"
  if [ -s "$out/loss-cpu.csv" ] && [ -s "$out/loss-gpu.csv" ]; then
    if line=$(compare_curves "$out/loss-cpu.csv" "$out/loss-gpu.csv" 1e-4 0 0); then
      record "iteration 0 losses cpu = gpu" PASS "$line"
    else record "iteration 0 losses cpu = gpu" FAIL "$line"; fi
    if line=$(compare_curves "$out/loss-cpu.csv" "$out/loss-gpu.csv" "$TOL" 0 "$ITERS"); then
      record "loss curve cpu vs gpu" PASS "$line"
    else record "loss curve cpu vs gpu" FAIL "$line"; fi
    echo "$line"
  else record "loss curve cpu vs gpu" FAIL "a training did not write its CSV"; fi

  step "resume on $DEVICE from iteration $((ITERS / 2))"
  local state="runs/gpu-check/siamese_iter_$((ITERS / 2)).solverstate"
  if [ -f "$state" ] &&
    timeout 120 "$siamese" train --solver "$out/solver.prototxt" --device "$DEVICE" \
      --snapshot "$state" --log-csv "$out/loss-gpu-resumed.csv" >"$out/train-resumed.log" 2>&1; then
    if line=$(compare_curves "$out/loss-gpu.csv" "$out/loss-gpu-resumed.csv" 1e-4 $((ITERS / 2 + 10)) "$ITERS"); then
      record "resume on gpu = uninterrupted" PASS "$line"
    else record "resume on gpu = uninterrupted" FAIL "$line"; fi
  else record "resume on gpu = uninterrupted" FAIL "no snapshot, or the resumed run failed (train-resumed.log)"; fi

  step "siamese time --device $DEVICE"
  if timeout 120 "$siamese" time --model experiments/siamese/mnist_siamese_train_test.prototxt \
    --device "$DEVICE" --iterations 50 2>&1 | tee "$out/time-gpu.txt"; then
    record "siamese time (gpu)" PASS "$(grep 'Forward-Backward' "$out/time-gpu.txt")"
  else record "siamese time (gpu)" FAIL "see results/time-gpu.txt"; fi

  local gpu_ms
  gpu_ms=$(json_field "$out/summary-gpu.json" ms_per_iter_median)
  if [ -n "$gpu_ms" ] && [ "$gpu_ms" != null ]; then
    if awk -v m="$gpu_ms" 'BEGIN { exit !(m < 1.0) }'; then record "target < 1 ms/iter on gpu" MET "$gpu_ms ms"
    else record "target < 1 ms/iter on gpu" "NOT" "$gpu_ms ms"; fi
  fi

  step "summary"
  printf '%s\n' "${RESULTS[@]}" | tee "$out/summary.txt"
  ! printf '%s\n' "${RESULTS[@]}" | grep -q ' FAIL '
}

case "${1:-}" in
  --bundle) [ $# -eq 2 ] || die "usage: $0 --bundle DIR"; bundle "$2" ;;
  --run) [ $# -eq 2 ] || die "usage: $0 --run DIR"; run_checks "$2" ;;
  "") bundle "$ROOT/target/gpu-check" && run_checks "$ROOT/target/gpu-check" ;;
  -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown argument $1 (expected --bundle DIR, --run DIR or nothing; --help)" ;;
esac
