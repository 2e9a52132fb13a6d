#!/usr/bin/env bash
# The GRU against the count baselines on the built-in smoke log (issue 14, part 3): exp 4's
# smoke cells at L = 10 and exp 1's at threshold 2 (chunks 0 and 1 of each), 3 seeds, under
# the thesis split and leave-one-out, with the smoke profile as it is and with the settings
# probed for small logs. One output
# folder per configuration under OUT; the tables at the end come from
# benchmarks/baseline_table.py. Not a test: about 15 minutes on 2 cores.
#
#   bash benchmarks/baseline_study.sh [OUT]        (default bench_out/baselines)
#   CONFIGS="smoke-thesis moderate-thesis" bash benchmarks/baseline_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-bench_out/baselines}
mkdir -p "$OUT"
# The recipe for small logs the probes below point to: a wider GRU, a lower learning rate with
# room for more epochs (docs/validation.md, "Small logs: why the GRU trails Markov").
MODERATE="--set hidden_size=128 --set lr=0.003 --set epochs=30 --set patience=3"
EXP4="--experiment exp4 --set seq_len=10"  # 8,000 plays a chunk
EXP1="--experiment exp1 --set threshold=2"  # 20,000 plays a chunk

declare -A SETS=(
  [smoke-thesis]="$EXP4"
  [smoke-loo]="$EXP4 --set split=leave_one_out"
  [patience3-thesis]="$EXP4 --set epochs=30 --set patience=3"
  [lr003-thesis]="$EXP4 --set epochs=30 --set patience=3 --set lr=0.003"
  [hidden128-thesis]="$EXP4 --set epochs=30 --set patience=3 --set hidden_size=128"
  [noretrain-thesis]="$EXP4 --set retrain=false"
  [moderate-thesis]="$EXP4 $MODERATE"
  [moderate-loo]="$EXP4 $MODERATE --set split=leave_one_out"
  [exp1-smoke-thesis]="$EXP1"
  [exp1-smoke-loo]="$EXP1 --set split=leave_one_out"
  [exp1-moderate-thesis]="$EXP1 $MODERATE"
  [exp1-moderate-loo]="$EXP1 $MODERATE --set split=leave_one_out"
)
CONFIGS=${CONFIGS:-"${!SETS[*]}"}

for name in $CONFIGS; do
  echo "== $name: ${SETS[$name]}"
  # shellcheck disable=SC2086
  $PY -m seqrec run --profile smoke --models gru --set seeds=3 --no-tensorboard \
      --out "$OUT/$name" ${SETS[$name]} > "$OUT/$name.log" 2>&1 \
      || { echo "$name failed, see $OUT/$name.log"; exit 1; }
done
for name in $CONFIGS; do
  echo "### $name (${SETS[$name]:-smoke as it is})"
  $PY benchmarks/baseline_table.py "$OUT/$name"
done
