#!/usr/bin/env bash
# The checks to run whenever a GPU machine is at hand, in one go (about 4 minutes on an H200):
#
#     bash benchmarks/gpu_checks.sh MULTI30K_DIR MULTI30K_TOK_DIR OUT_DIR
#
# MULTI30K_DIR holds Multi30k's raw {train,val,test_2016_flickr}.{de,en}(.gz), MULTI30K_TOK_DIR the lowercased,
# tokenized copy (benchmarks/README.md). Writes into OUT_DIR: gpu.txt (the GPU and versions), pytest.txt (the
# CUDA tests, tests/unit/test_cuda.py), smoke.log (one epoch of multi30k_bilstm with trainer=gpu), and one JSON
# per benchmark: train_speed*.json, decode_speed*.json, serve_load*.json, short_task_speed.json. A step that fails
# is reported and the others still run; the exit status is the number of failed steps. ONLY="smoke train_speed"
# runs just the steps named (the decoding and service steps read the smoke run's checkpoint).
set -uo pipefail
raw=$(realpath "$1"); tok=$(realpath "$2"); out=$(realpath -m "$3")
mkdir -p "$out"
cd "$(dirname "$0")/.."
failed=0
exec 3>&2  # the steps' own output goes to their files; the reports below to the caller's stderr
step() {  # step NAME SECONDS COMMAND...: run with a time limit, report, count failures
    local name=$1 limit=$2; shift 2
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
    local start=$SECONDS
    if timeout "$limit" "$@"; then echo "== $name: ok ($((SECONDS - start)) s)" >&3
    else echo "== $name: FAILED, exit $? ($((SECONDS - start)) s)" >&3; failed=$((failed + 1)); fi
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c "import torch, lightning; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version(),
'lightning', lightning.__version__, 'cpus', __import__('os').cpu_count())"; } > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt" >&2

step pytest 300 python -m pytest -q -m gpu -p no:cacheprovider tests/unit/test_cuda.py > "$out/pytest.txt" 2>&1

smoke=$(mktemp -d)/smoke
step smoke 300 python train.py experiment=multi30k_bilstm trainer=gpu trainer.max_epochs=1 data.root="$raw" \
    hydra.run.dir="$smoke" > "$out/smoke.log" 2>&1
ckpt="$smoke/checkpoints/last.ckpt"

step train_speed 300 python benchmarks/train_speed.py --device cuda --precision 32 \
    experiment=ref_bilstm data.root="$tok" > "$out/train_speed.json"
step train_speed_loop_free 300 python benchmarks/train_speed.py --device cuda --precision 32 \
    experiment=ref_bilstm data.root="$tok" model.input_feeding=false > "$out/train_speed_loop_free.json"

step decode_speed 300 python benchmarks/decode_speed.py --device cuda --ckpt "$ckpt" \
    experiment=multi30k_bilstm data.root="$raw" > "$out/decode_speed.json"
step decode_speed_ensemble 300 python benchmarks/decode_speed.py --device cuda --ckpt "$ckpt" --ckpt "$ckpt" \
    experiment=multi30k_bilstm data.root="$raw" > "$out/decode_speed_ensemble2.json"

source=$(ls "$raw"/test_2016_flickr.de* | head -1)
step serve_load 300 python benchmarks/serve_load.py --device cuda --ckpt "$ckpt" --source "$source" \
    --clients 16 --requests 20 > "$out/serve_load.json"
step serve_load_beam5 300 python benchmarks/serve_load.py --device cuda --ckpt "$ckpt" --source "$source" \
    --clients 16 --requests 20 --beam-size 5 > "$out/serve_load_beam5.json"

task=$(mktemp -d)/short_task
step short_task_speed 300 bash -c "python benchmarks/short_task.py --out '$task' >&2 && \
    python benchmarks/train_speed.py --device cuda --precision 32 experiment=ref_bilstm data=text \
    data.root='$task' data.src_lang=src data.tgt_lang=tgt data.src_tokenizer=char data.tgt_tokenizer=word \
    > '$out/short_task_speed.json'"

echo "== $failed step(s) failed" >&3
exit "$failed"
