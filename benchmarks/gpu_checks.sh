#!/usr/bin/env bash
# Every check that needs a CUDA GPU, as one prepared run (at most 9 minutes: the parts' limits).
#
#   bash benchmarks/gpu_checks.sh [OUT_DIR]        (repo root; OUT_DIR defaults to $OUT or gpu_out)
#
# Uses the machine's own python3 with torch, numpy, pandas, pyarrow, tqdm, scipy and pytest
# (nothing is installed; the package is imported from src/). Each part has its own time limit,
# so one that hangs or fails does not cost the others; each writes its log to OUT_DIR:
#   env.txt       torch, CUDA and the card
#   tests.log     the CUDA test cases: every model forward + backward on CUDA, and CUDA against
#                 CPU (loss and gradients, float64) for every model
#   models.md     bench_models at the thesis' sizes (batch 1000, embedding and hidden 1000;
#                 the DNC at L = 50), eager, every model against its reference
#   compiled.md   the same for the GRUs with torch.compile (train.compile=true)
# The figures go to docs/benchmarks.md ("Models"), with the card's name.
set -u
out=${1:-${OUT:-gpu_out}}
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

part() {  # part NAME SECONDS COMMAND...: run with a time limit, log to OUT_DIR/NAME
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start))s"
    tail -n 25 "$out/$name"
}

part env.txt 30 "$py" -c "import torch; print(torch.__version__, torch.version.cuda); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE')"
part tests.log 90 "$py" -m pytest -q -p no:cacheprovider tests/test_models.py -k cuda
part models.md 240 "$py" benchmarks/bench_models.py --device cuda --sizes thesis --steps 5
part compiled.md 180 "$py" benchmarks/bench_models.py --device cuda --sizes thesis --steps 5 \
    --only gru,user_gru --compile
