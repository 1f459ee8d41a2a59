#!/usr/bin/env bash
# The GPU checks in one script (a GPU lease is short): `make bench` on the GPU,
# then the DnCNN-S paper recipe for as many steps as TRAIN_SECONDS allow, scored on Set12.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [TRAIN_SECONDS] [DATA_DIR]
#
# DATA_DIR holds train400/ and set12/ (default ../shared/data). The recipe's step
# count is sized from the measured throughput (the slower of the train step and the
# grain pipeline at the paper's batch of 128); the step schedule keeps its shape
# (learning rate x0.1 at 60% of the steps), so the run is the recipe, shortened.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR [TRAIN_SECONDS] [DATA_DIR]}
train_seconds=${2:-240}
data=${3:-../shared/data}
threads=$(nproc)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# JAX and PyTorch share the GPU inside the bench process.
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.45
cnnrecon=(python3 -c 'import sys; from cnnrecon.cli import console_main; sys.argv[0] = "cnnrecon"; console_main()')

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c 'import jax, flax, optax, torch; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, "torch", torch.__version__, jax.devices())' | tee -a "$out/gpu.txt"

if [[ -z ${GPU_CHECK_STEPS:-} ]]; then  # GPU_CHECK_STEPS=N: the recipe alone, N steps
# DnCNN-17 at the paper's batch: fp32 and bf16 against PyTorch eager and torch.compile.
python3 benchmarks/bench.py --device gpu --only dncnn17_train data_pipeline --dtype float32 bfloat16 \
  --torch-compile --batch-size 128 --data-threads "$threads" --warmup 10 --repeats 50 \
  --out "$out/bench_dncnn17_b128.json" 2>&1 | tee "$out/bench.txt"
# The CPU bench's workloads as they are (batch 32), against PyTorch eager.
python3 benchmarks/bench.py --device gpu --only dncnn17_train unet_train demo_train dncnn17_infer_b1 \
  dncnn17_infer_b8 gatys_step --dtype float32 bfloat16 --warmup 10 --repeats 50 \
  --out "$out/bench_workloads.json" 2>&1 | tee -a "$out/bench.txt"

# Under a deadline (GPU_CHECK_DEADLINE seconds after the start), leave 70 s for the Set12 evaluation.
if [[ -n ${GPU_CHECK_DEADLINE:-} ]] && ((GPU_CHECK_DEADLINE - SECONDS - 70 < train_seconds)); then
  train_seconds=$((GPU_CHECK_DEADLINE - SECONDS - 70))
fi
steps=$(python3 - "$out/bench_dncnn17_b128.json" "$train_seconds" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))['workloads']
step = next(r for r in rows if r['name'] == 'dncnn17_train' and r['dtype'] == 'float32')
pipe = next(r for r in rows if r['name'] == 'data_pipeline')
images_per_s = min(step['cnnrecon_images_per_s'], pipe['pipeline_images_per_s'])
# 70% of the time box: compilation, evaluations and checkpoints take the rest.
print(min(80_000, max(1_000, int(0.7 * float(sys.argv[2]) * images_per_s / 128) // 100 * 100)))
EOF
)
else
  steps=$GPU_CHECK_STEPS
fi
echo "paper recipe: $steps steps (the paper: 80,000)" | tee "$out/recipe.txt"
# SIGTERM at the time box saves a checkpoint and exits 0; the evaluation scores whatever step it reached.
# The progress bar goes to the log with one line per refresh; the console gets the other lines.
started=$SECONDS
timeout -s TERM "$train_seconds" "${cnnrecon[@]}" train --config experiments/dncnn_s_sigma25.py --workdir runs/paper \
  --config.train.steps="$steps" --config.train.eval_every=$((steps / 4)) --config.train.checkpoint_every=$((steps / 4)) \
  --config.data.train="$data/train400" --config.data.eval="$data/set12" --config.data.num_threads="$threads" \
  --config.report.baselines=False 2>&1 | tr '\r' '\n' | tee -a "$out/recipe.txt" | grep -v 'step/s]$'
grep 'step/s]$' "$out/recipe.txt" | tail -n 1
echo "training took $((SECONDS - started)) s (compilation and evaluations included)" | tee -a "$out/recipe.txt"
"${cnnrecon[@]}" eval --workdir runs/paper --data "$data/set12" --seeds 0,1,2 --no-baselines --out runs/paper/set12 2>&1 \
  | tee -a "$out/recipe.txt"
cp runs/paper/set12/*.md "$out/" 2>/dev/null
cp runs/paper/report.md "$out/paper_report.md" 2>/dev/null
tar -cf "$out/tensorboard.tar" -C runs/paper tb
