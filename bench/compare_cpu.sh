#!/usr/bin/env bash
# Vocabularies and position encodings at equal steps on the CPU: val BPC on the ten shared books
# (last 10% validation). bash bench/compare_cpu.sh [BOOKS_DIR] [STEPS]
set -u
BOOKS=${1:-../shared/data/gutenberg}
STEPS=${2:-300}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "$(date +%F), $(nproc) CPU cores, $STEPS steps of batch 32 x context 128, 128 x 4 model"
echo "| variant | val_bpc | fit time |"
echo "| --- | ---: | ---: |"
for variant in "byte" "char" "bpe" "char, rotary" "char, tied embeddings"; do
  case $variant in
    byte) flags="--data.vocab byte" ;;
    char) flags="--data.vocab char" ;;
    bpe) flags="--data.vocab bpe --data.bpe_vocab_size 4096" ;;
    "char, rotary") flags="--data.vocab char --model.pos_encoding rotary" ;;
    "char, tied embeddings") flags="--data.vocab char --model.tie_embeddings true" ;;
  esac
  python -m lightning_app fit --config configs/quickstart.yaml --data.data_dir "$BOOKS" --data.stride 1 \
    --data.cache_dir "$WORK/cache" --trainer.max_steps "$STEPS" --trainer.val_check_interval "$STEPS" \
    --sample.length 0 --trainer.enable_progress_bar false --trainer.logger false \
    --checkpoint.dirpath "$WORK/ckpt-${variant// /}" $flags > "$WORK/log" 2>&1 || { tail -3 "$WORK/log"; continue; }
  echo "| $variant | $(grep -o 'best val_bpc [0-9.]*' "$WORK/log" | cut -d' ' -f3) | $(grep -o 'fit took [0-9]* s' "$WORK/log" | cut -d' ' -f3) s |"
done
