#!/usr/bin/env bash
# The GPU path, in a few minutes (issue 17, item 5): run from a checkout, on a machine with CUDA.
#
#   bash perf/gpu.sh            # everything goes to $OUT (if set) or a fresh temp folder
#
# (a) torch sees CUDA (prints the device); without CUDA it says so and exits 3, running nothing;
# (b) every method on a tiny suite (MLP on MNIST-1D, 2 dims, 1 seed) with --device cuda, each in
#     its own suite of one temp store: pass/fail per method;
# (c) paper-conv2-fmnist's model and data on the GPU (Conv-2 [16, 32], the full 60k/10k, 1 epoch,
#     DOFBENCH_GPU_DIMS and DOFBENCH_GPU_SEEDS: by default 2 dims × 8 seeds), timed with seeds one
#     trial at a time (the default: Model.batchable says no for conv nets) and stacked
#     (DOFBENCH_STACK_SEEDS=1), and the two runs' d* compared; without Fashion-MNIST (Debian's
#     /usr/share/datasets/fashion-mnist or $DOFBENCH_DATA/FashionMNIST/raw) this part is skipped
#     with a message;
# (d) the anchor benchmark (dofbench ÷ the plain loop) on CUDA (DOFBENCH_BENCH_DEVICE=cuda, quick;
#     the MLP case alone without Fashion-MNIST).
#
# Every step has its own timeout (DOFBENCH_GPU_TIMEOUT seconds per command, default 240); the log
# is $OUT/gpu.log. Exit codes: 0 every step ran and passed, 1 some step failed or timed out,
# 3 no CUDA. To try the script itself on a CPU: DOFBENCH_GPU_DEVICE=cpu DOFBENCH_GPU_DIMS=8
# DOFBENCH_GPU_SEEDS=2 DOFBENCH_GPU_FMNIST='{ subsample = 600, test_subsample = 200 }'.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$(mktemp -d -t dofbench-gpu.XXXXXX)}"
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DOFBENCH=("$PY" -m dofbench.cli)
TIMEOUT="${DOFBENCH_GPU_TIMEOUT:-240}"
DIMS="${DOFBENCH_GPU_DIMS:-256, 2048}"
SEEDS="${DOFBENCH_GPU_SEEDS:-8}"
DEVICE="${DOFBENCH_GPU_DEVICE:-cuda}"
FMNIST_PARAMS="${DOFBENCH_GPU_FMNIST:-{\}}"
export DOFBENCH_CACHE="$OUT/cache"
failed=0

say() { echo "$*" | tee -a "$LOG"; }
step() {  # step NAME CMD...: run with the timeout, log, report pass/fail; returns the command's status
  local name="$1"; shift
  local t0 rc
  t0=$(date +%s.%N)
  timeout "$TIMEOUT" "$@" >>"$LOG" 2>&1
  rc=$?
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" -eq 0 ]; then say "  pass  $name (${secs} s)"
  elif [ "$rc" -eq 124 ]; then say "  FAIL  $name: timed out after ${TIMEOUT} s"; failed=1
  else say "  FAIL  $name: exit $rc (${secs} s; see $LOG)"; failed=1
  fi
  LAST_SECS=$secs
  return "$rc"
}

: >"$LOG"
say "dofbench GPU check: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), output in $OUT"

# (a) ------------------------------------------------------------------------------------ CUDA
if [ "$DEVICE" = cpu ]; then
  say "(a) DOFBENCH_GPU_DEVICE=cpu: no CUDA check, every step on the CPU (a test of this script)"
elif ! timeout 60 "$PY" - >>"$LOG" 2>&1 <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__}: no CUDA (torch.cuda.is_available() is False)")
    sys.exit(3)
p = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}: {torch.cuda.device_count()} device(s); "
      f"cuda:0 = {p.name}, {p.total_memory / 1024**3:.0f} GiB, compute capability {p.major}.{p.minor}")
EOF
then
  tail -n 1 "$LOG"
  echo "no CUDA: nothing run (exit 3)"
  exit 3
else
  say "(a) $(tail -n 1 "$LOG")"
fi

# (b) ----------------------------------------------------------------- every method, tiny suite
TINY="$OUT/tiny.toml"
: >"$TINY"
methods=(random-subspace burn-in-subspace full lottery-subspace lottery-ticket lottery-ticket-imp
         magnitude-pruning random-pruning)
declare -A mparams=([burn-in-subspace]='{ steps = 4 }' [lottery-subspace]='{ d_max = 16 }')
for m in "${methods[@]}"; do
  cat >>"$TINY" <<EOF
[suites.gpu-$m]
description = "GPU check: $m on a tiny MLP"
models   = [{ name = "mlp", params = { hidden = [16] } }]
datasets = [{ name = "mnist1d", params = { num_samples = 600 } }]
methods  = [{ name = "$m", params = ${mparams[$m]:-{\}} }]
dims     = [8, 16]
seeds    = 1
train    = { epochs = 1, batch_size = 64 }
[suites.gpu-$m.threshold]
metric   = "best_train_acc"
epsilons = [0.2]
delta    = 0.1

EOF
done
say "(b) every method on a tiny suite, --device $DEVICE ($TINY)"
for m in "${methods[@]}"; do
  step "$m" "${DOFBENCH[@]}" run "gpu-$m" --config "$TINY" --db "$OUT/tiny.duckdb" --device "$DEVICE" \
    --executor local --no-progress
done

# (c) ------------------------------------------------- Conv-2 on Fashion-MNIST, stacked or not
FMNIST=""
for dir in /usr/share/datasets/fashion-mnist "${DOFBENCH_DATA:-/nonexistent}/FashionMNIST/raw"; do
  if [ -e "$dir/train-images-idx3-ubyte" ] || [ -e "$dir/train-images-idx3-ubyte.gz" ]; then FMNIST="$dir"; fi
done
if [ -z "$FMNIST" ]; then
  say "(c) skipped: no Fashion-MNIST here (neither /usr/share/datasets/fashion-mnist, Debian's"
  say "    dataset-fashion-mnist, nor \$DOFBENCH_DATA/FashionMNIST/raw); copy the idx files there to time it"
else
  CONV="$OUT/conv2.toml"
  cat >"$CONV" <<EOF
[suites.gpu-conv2-fmnist]
description = "paper-conv2-fmnist's model and data (60k/10k), 1 epoch, a few dims and seeds: GPU timing"
models   = [{ name = "conv", params = { channels = [16, 32] } }]
datasets = [{ name = "fashion-mnist", params = $FMNIST_PARAMS }]
methods  = [{ name = "random-subspace" }]
dims     = [$DIMS]
seeds    = $SEEDS
train    = { epochs = 1, batch_size = 128 }
[suites.gpu-conv2-fmnist.threshold]
metric   = "best_train_acc"
epsilons = [0.5, 0.6, 0.7]
delta    = 0.1
EOF
  say "(c) Conv-2 / Fashion-MNIST ($FMNIST), dims [$DIMS] × $SEEDS seeds, 1 epoch, --device $DEVICE"
  step "one trial at a time" "${DOFBENCH[@]}" run gpu-conv2-fmnist --config "$CONV" \
    --db "$OUT/conv2-single.duckdb" --device "$DEVICE" --executor local --no-progress
  single=$LAST_SECS
  step "seeds stacked (DOFBENCH_STACK_SEEDS=1)" env DOFBENCH_STACK_SEEDS=1 "${DOFBENCH[@]}" run \
    gpu-conv2-fmnist --config "$CONV" --db "$OUT/conv2-stacked.duckdb" --device "$DEVICE" --executor local --no-progress
  stacked=$LAST_SECS
  say "    wall: one at a time ${single} s, stacked ${stacked} s (ratio $(awk -v a="$single" -v b="$stacked" 'BEGIN { if (b > 0) printf "%.2f", a / b }'))"
  for db in conv2-single conv2-stacked; do
    timeout 60 "${DOFBENCH[@]}" query --db "$OUT/$db.duckdb" --format csv \
      "select d, count(*) as trials, round(avg(wall_s), 2) as mean_wall_s, round(avg(best_train_acc), 4) as mean_best_train_acc,
       max(coalesce(json_extract_string(method_info, '$.batched'), '1')) as stacked, any_value(device) as device
       from trials where suite = 'gpu-conv2-fmnist' group by d order by d" >"$OUT/$db.csv" 2>>"$LOG" \
      && say "    $db: $(tr '\n' ' ' <"$OUT/$db.csv")"
  done
fi

# (d) ------------------------------------------------------------------------ anchor on CUDA
only=$([ -n "$FMNIST" ] && echo "" || echo mlp)
say "(d) the anchor on $DEVICE (quick${only:+, MLP only: no Fashion-MNIST})"
if step "anchor" env DOFBENCH_BENCH_DEVICE="$DEVICE" DOFBENCH_BENCH_QUICK=1 DOFBENCH_BENCH_ONLY="$only" "$PY" -m perf anchor; then
  sed -n '/^== anchor/,$p' "$LOG" | grep -E '^(\||torch|\(ratios)' | tee "$OUT/anchor.md"
fi

say "done: $([ "$failed" -eq 0 ] && echo 'every step passed' || echo 'some step FAILED'); log $LOG"
exit "$failed"
