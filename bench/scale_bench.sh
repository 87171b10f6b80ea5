#!/usr/bin/env bash
# Tokenizing and training memory on a 100 MB corpus (the ten shared books repeated 15 times) against
# the 6.7 MB one. Run from the repository root:  bash bench/scale_bench.sh [BOOKS_DIR]
# Needs GNU time (/usr/bin/time). Prints wall seconds and peak RSS for each step.
set -eu
BOOKS=${1:-../shared/data/gutenberg}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/big" "$WORK/small"
cp "$BOOKS"/*.txt "$WORK/small/"
for i in $(seq -w 1 15); do for f in "$BOOKS"/*.txt; do cp "$f" "$WORK/big/$i-$(basename "$f")"; done; done
echo "corpus: $(du -sh "$WORK/big" | cut -f1) in $(ls "$WORK/big" | wc -l) files; $(nproc) cores; $(date +%F)"
measure() {  # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" > "$WORK/log" 2>&1 || { tail -5 "$WORK/log"; exit 1; }
  read -r secs kb < "$WORK/time"
  printf '| %s | %.1f s | %s | %.0f MB |\n' "$label" "$secs" "$(grep -o 'load_or_build: .*' "$WORK/log" || echo -)" "$((kb / 1024))"
}
TOKENIZE='import sys, time; from pathlib import Path; from lightning_app.token_cache import load_or_build
start = time.perf_counter(); c = load_or_build(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
print(f"load_or_build: {time.perf_counter() - start:.2f} s for {len(c.tokens):,} tokens")'
echo "| step | process wall | in-process | peak RSS |"
echo "| --- | ---: | --- | ---: |"
for vocab in byte char; do
  measure "tokenize + cache 100 MB, $vocab" python -c "$TOKENIZE" "$WORK/big" $vocab "$WORK/cache"
  measure "load cached 100 MB, $vocab" python -c "$TOKENIZE" "$WORK/big" $vocab "$WORK/cache"
done
FIT="fit --data.vocab char --data.cache_dir $WORK/cache --model.dim 64 --model.depth 2 --model.heads 4 --data.context_len 64
  --trainer.max_steps 20 --trainer.limit_val_batches 2 --sample.length 0 --trainer.enable_progress_bar false
  --trainer.logger false --checkpoint.dirpath $WORK/ckpt --trainer.enable_model_summary false"
python -m lightning_app $FIT --data.data_dir "$WORK/small" > /dev/null 2>&1  # both caches exist before the fits are timed
measure "20 training steps, 6.7 MB corpus (char)" python -m lightning_app $FIT --data.data_dir "$WORK/small"
measure "20 training steps, 100 MB corpus (char)" python -m lightning_app $FIT --data.data_dir "$WORK/big"
