#!/usr/bin/env bash
# The GPU checks of one session, in priority order, each under its own time limit and all under one deadline
# (DEADLINE seconds, default 420), every log written to OUT (default build/gpu_check) as it goes:
#   1. the GPU suite (`pytest -m gpu`: every registered method through the CLI on CUDA, SGP, GDD, resume, demo);
#   2. full-size smoke runs, `benchmarks/fullsize_smoke.py` (a random-weight teacher at the named config; `sferd-distill
#      --method sferd-pd | sferd-cd | gdd` for SMOKE_STEPS steps per stage, then `sferd-eval` of each student):
#      `imagenet64` (296 M parameters, class-conditional; a stand-in ImageNet-64 in the official npz format) at batch
#      SMOKE_BATCH_IN64, then `cifar10` (35.7 M) at batch 128 — the cost of the recipes, not their quality;
#   3. `sferd-demo --preset full --device cuda` (teacher, PD, SFERD-PD, CD, SFERD-CD; the preset of the recorded GPU timings), timed;
#   4. the distillation step at the `cifar10` config, plain and SFERD-wrapped (guided teacher + SGP student), same process;
#   5. notebook 04's `#| gpu` cell (nbdev_test --flags gpu), where nbdev imports;
#   6. the default suite with the GPU visible.
# Usage on a GPU machine with the project installed: OUT=$OUT bash benchmarks/gpu_check.sh
set -u
# SKIP="demo distill_step ..." leaves steps out; RUNS holds the run directories (default OUT/runs; only logs, metrics
# and reports are copied to OUT).
OUT=${OUT:-build/gpu_check}; RUNS=${RUNS:-$OUT/runs}; DEADLINE=${DEADLINE:-420}; SMOKE_STEPS=${SMOKE_STEPS:-200}; SMOKE_BATCH_IN64=${SMOKE_BATCH_IN64:-16}; SKIP=${SKIP:-}
mkdir -p "$OUT" "$RUNS"; T0=$(date +%s)
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
step() {   # step NAME LIMIT CMD...: run CMD under min(LIMIT, time left), log to OUT/NAME.log, record rc and seconds
  local name=$1 limit=$2; shift 2
  case " $SKIP " in *" $name "*) echo "SKIPPED $name (SKIP)" | tee -a "$OUT/summary.txt"; return;; esac
  local l; l=$(left); [ "$l" -lt "$limit" ] && limit=$l
  if [ "$limit" -lt 20 ]; then echo "SKIPPED $name (deadline)" | tee -a "$OUT/summary.txt"; return; fi
  local s; s=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "$name rc=$rc ${limit}s-limit $(( $(date +%s) - s ))s" | tee -a "$OUT/summary.txt"
  tail -n 4 "$OUT/$name.log" | sed 's/\r/\n/g' | tail -n 3
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; git log --oneline -1; date -u; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

step gpu_suite 180 python3 -m pytest -q -rs -p no:cacheprovider -m gpu tests/ -n 4
for cfg in imagenet64 cifar10; do
  batch=128; limit=240; [ $cfg = imagenet64 ] && { batch=$SMOKE_BATCH_IN64; limit=360; }
  step "smoke_$cfg" $limit python3 benchmarks/fullsize_smoke.py --config $cfg --device cuda --steps "$SMOKE_STEPS" \
    --batch $batch --eval-samples 64 --out "$RUNS/smoke"
  cp "$RUNS/smoke/$cfg/smoke.json" "$OUT/smoke_$cfg.json" 2>/dev/null
done
step demo 150 python3 -m sferd_nb demo --preset full --out "$RUNS/demo" --device cuda --no-progress
cp "$RUNS/demo/report.md" "$OUT/demo_report.md" 2>/dev/null
step distill_step 90 python3 benchmarks/distill_step.py --configs cifar10 --batch 128 --methods pd cd --device cuda --steps 10 --warmup 3 --guided --sgp --compare
python3 -c "import nbdev" 2>/dev/null && step nb04_gpu 60 nbdev_test --flags gpu --path nbs/04_train.ipynb
step default_suite 200 env OMP_NUM_THREADS=1 python3 -m pytest -q -rs -p no:cacheprovider tests/ -n 12
echo "total $(( $(date +%s) - T0 ))s" | tee -a "$OUT/summary.txt"
