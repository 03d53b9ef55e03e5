#!/usr/bin/env bash
# tools/finetune_ablation.sh [PROFILE] [JOBS]: the fine-tuning ablation in two
# stages: pretrain a dense model on classes 0-4 (paper_configs/
# finetune_pretrain.ini), then fine-tune it on classes 5-9 with vanilla
# training vs EWA (paper_configs/ablation_finetune.ini), aggregate, plot.
set -eu
cd "$(dirname "$0")/.."
P=${1:-smoke}; JOBS=${2:-2}; EWA=${EWA:-bin/ewa}
"$EWA" grid --config paper_configs/finetune_pretrain.ini --profile "$P" --jobs 1
PRE=results/finetune_pretrain/$P
# run ids are written quoted (runs.csv): strip the quotes
id=$(awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="run_id") c=i; next} {gsub(/"/, "", $c); print $c}' "$PRE/runs.csv" | tail -1)
CKPT=$PRE/runs/$id/final.safetensors   # relative: run ids do not depend on the clone's path
[ -s "$CKPT" ] || { echo "no pretrained checkpoint $CKPT" >&2; exit 1; }
OUT=results/ablation_finetune/$P
"$EWA" grid --config paper_configs/ablation_finetune.ini --profile "$P" --jobs "$JOBS" \
  --set "finetune.init_checkpoint=$CKPT"
"$EWA" aggregate --runs "$OUT/runs.csv" --out "$OUT"
plots/ablation.sh "$OUT" method "fine-tuning from a dense checkpoint (classes 0-4 -> 5-9)"
