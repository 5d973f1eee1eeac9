#!/usr/bin/env bash
# The GPU checks of one session, in priority order, each under its own time limit and all under one deadline
# (DEADLINE seconds, default 420), every log written to OUT (default build/gpu_check) as it goes:
#   1. the GPU suite (`pytest -m gpu`: every registered method through the CLI on CUDA, SGP, GDD, resume, demo);
#   2. `sferd-demo --device cuda` (teacher, PD, SFERD-PD, CD, SFERD-CD), timed;
#   3. the distillation step at the `cifar10` config, plain and SFERD-wrapped (guided teacher + SGP student), same process;
#   4. smoke runs of `sferd-distill --method sferd-pd | sferd-cd | gdd` with a `cifar10`-config teacher (35.7 M parameters,
#      random weights: the cost of the full-size recipe, not its quality) on the embedded subset;
#   5. notebook 04's `#| gpu` cell (nbdev_test --flags gpu), where nbdev imports;
#   6. the default suite with the GPU visible.
# Usage on a GPU machine with the project installed: OUT=$OUT bash benchmarks/gpu_check.sh
set -u
# SKIP="demo distill_step ..." leaves steps out; RUNS holds the run directories (default OUT/runs; only logs, metrics
# and reports are copied to OUT).
OUT=${OUT:-build/gpu_check}; RUNS=${RUNS:-$OUT/runs}; DEADLINE=${DEADLINE:-420}; SMOKE_STEPS=${SMOKE_STEPS:-100}; SKIP=${SKIP:-}
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
step demo 150 python3 -m sferd_nb.demo --out "$RUNS/demo" --device cuda --no-progress
cp "$RUNS/demo/report.md" "$OUT/demo_report.md" 2>/dev/null
step distill_step 90 python3 benchmarks/distill_step.py --configs cifar10 --batch 128 --methods pd cd --device cuda --steps 10 --warmup 3 --guided --sgp --compare
python3 - "$RUNS/teacher_cifar10" <<'EOF'
import sys
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.io import export_denoiser, load_denoiser
from sferd_nb.unet import build_unet
course = load_denoiser('data/teachers/cifar10_uncond')       # the course teacher's schedule and parameterisation
net = build_unet('cifar10')
export_denoiser(Denoiser(net, course.schedule, course.parameterization, course.sigma_data), sys.argv[1], dict(data='cifar10-subset'))
print('cifar10-config teacher (random weights):', sum(p.numel() for p in net.parameters()), 'parameters')
EOF
for m in sferd-pd sferd-cd gdd; do
  steps=(--teacher-steps 2 --student-steps 1); [ $m = gdd ] && steps=()
  step "smoke_$m" 100 sferd-distill --method $m --teacher "$RUNS/teacher_cifar10" --out "$RUNS/smoke_$m" --max-steps "$SMOKE_STEPS" \
    --batch-size 128 "${steps[@]}" --device cuda --no-progress --ckpt-every 0
  for f in "$RUNS/smoke_$m"/*/metrics.jsonl; do [ -f "$f" ] && { echo "== $f"; cat "$f"; } >> "$OUT/smoke_$m.metrics"; done
done
python3 -c "import nbdev" 2>/dev/null && step nb04_gpu 60 nbdev_test --flags gpu --path nbs/04_train.ipynb
step default_suite 200 env OMP_NUM_THREADS=1 python3 -m pytest -q -rs -p no:cacheprovider tests/ -n 12
echo "total $(( $(date +%s) - T0 ))s" | tee -a "$OUT/summary.txt"
