#!/usr/bin/env bash
# Every GPU test and GPU benchmark in one go, for a short stay on a GPU machine (about 4-6 minutes on one H200).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        (default: benchmarks/results/gpu)
#
# Writes OUT_DIR/gpu.md (what ran, each part's exit status and time, every benchmark's table), OUT_DIR/gpu.log
# (the whole output) and each benchmark's JSON: step_update_cuda_{b64_t4,b64_t12,b8_t4}.json (b64_t4 also with
# torch.compile, as train.compile does), loader_cuda.json and cotracker_batch_cuda.json. A failing part does not stop the others; the script exits non-zero if any part failed.
# Needs CUDA, torch, timm, zarr and the rest of mosic's CPU dependencies; PyAV, snakemake and wandb are not used.
# CoTracker3 (its GPU test and benchmarks/cotracker_batch.py) runs only where the `cotracker` package imports: install
# it, or point COTRACKER_SRC at a source tree of it (the folder holding cotracker/); otherwise both skip.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results/gpu}"
mkdir -p "$out"
parts="$(mktemp -d)"
export PYTHONPATH="$PWD${COTRACKER_SRC:+:$COTRACKER_SRC}${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=disabled PYTHONUNBUFFERED=1
log="$out/gpu.log"
: > "$log"
status=0
summary=()

part() {  # part NAME TIMEOUT_S COMMAND...: run one part, keep its output and exit status
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "=== $name: $*" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && status=1
    summary+=("| $name | $rc | $(( $(date +%s) - start )) |")
}

# SMOKE=1 runs every part on the CPU with a tiny model, to check the script itself where there is no GPU.
dev=cuda
vits=(--model vit_small_patch14_dinov2 --size 224 --trainable-blocks 2 --published-head --warmup 1)
# CoTracker3 at the measured baseline's setting: 12 x 224², 32x32 = 1,024 points, fp32 (batch 1: 144 ms on an H200).
cotracker=(--batch-sizes 1 8 16 32 --clips 64 --frames 12 --size 224 --grid 32 --runs 3)
if [ "${SMOKE:-0}" = 1 ]; then
    dev=cpu
    vits=(--model test_vit --size 32 --points 16 --warmup 0)
    cotracker=(--batch-sizes 1 2 --clips 2 --frames 4 --size 32 --grid 3 --model-resolution 64 64 --runs 1)
fi
vits=(--device "$dev" "${vits[@]}")
mapfile -t gpu_tests < <(grep -rl "mark.gpu" tests --include='*.py')
part "GPU tests (pytest -m gpu)" 240 python -m pytest -m gpu -q -p no:cacheprovider -o addopts="" "${gpu_tests[@]}"
part "update ViT-S/14, 64 clips, teacher 4 frames (+ torch.compile)" 240 \
    python benchmarks/step_update.py "${vits[@]}" --batch 64 --teacher-frames 4 --block 10 --blocks 5 --compile \
    --tag b64_t4 --out "$parts"
part "update ViT-S/14, 64 clips, teacher 12 frames" 120 \
    python benchmarks/step_update.py "${vits[@]}" --batch 64 --teacher-frames 0 --block 10 --blocks 5 \
    --tag b64_t12 --out "$parts"
part "update ViT-S/14, 8 clips, teacher 4 frames" 90 \
    python benchmarks/step_update.py "${vits[@]}" --batch 8 --teacher-frames 4 --block 20 --blocks 5 \
    --tag b8_t4 --out "$parts"
workers=(0 8 14)
[ "$dev" = cpu ] && workers=(0)
part "loader into GPU memory" 180 python benchmarks/loader.py --device "$dev" --workers "${workers[@]}" --runs 3 --out "$parts"
part "CoTracker3 clips/s at batch 1, 8, 16, 32 (skips without the cotracker package)" 300 \
    python benchmarks/cotracker_batch.py --device "$dev" "${cotracker[@]}" --out "$parts"

{
    echo "# GPU run (\`benchmarks/gpu.sh\`)"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), git ${GIT_SHA:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}; " \
        "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'); " \
        "$(python -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__)' 2>&1)"
    echo
    echo "| part | exit status | seconds |"
    echo "|---|---:|---:|"
    printf '%s\n' "${summary[@]}"
    echo
    echo "GPU tests: $(grep -E '^[0-9]+ (passed|failed)|passed|failed' "$log" | grep -E 'passed|failed' | tail -1)"
    for md in "$parts"/*.md; do
        [ -e "$md" ] || continue
        echo
        sed 's/^# /## /' "$md"
    done
} > "$out/gpu.md"
cp "$parts"/*.json "$out"/ 2>/dev/null || true  # (on the CPU, loader.json: the smoke run's, not a result)
rm -rf "$parts"
cat "$out/gpu.md"
exit "$status"
