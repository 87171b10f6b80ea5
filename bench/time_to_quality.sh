#!/usr/bin/env bash
# Time to quality: the shipped `ctt fit --config configs/gutenberg-gpu.yaml`, from a cold
# start (books downloaded, fresh token cache, fresh torch.compile cache), timed from process start to exit.
# The books come from a local HTTP mirror of DATA_DIR (the GPU machine has no internet), laid out as gutenberg.org's.
# bash bench/time_to_quality.sh DATA_DIR NAME [extra ctt fit flags]   (repository root on PYTHONPATH; runs in $OUT or /tmp)
set -u
DATA=$1 NAME=$2
shift 2
RUN=${OUT:-/tmp}/ttq-$NAME
rm -rf "$RUN" && mkdir -p "$RUN/mirror"
for book in "$DATA"/pg*.txt; do
  id=$(basename "$book" | sed -E 's/^pg([0-9]+).*/\1/')
  mkdir -p "$RUN/mirror/cache/epub/$id" && cp "$book" "$RUN/mirror/cache/epub/$id/pg$id.txt"
done
python3 -m http.server 8765 --bind 127.0.0.1 --directory "$RUN/mirror" > /dev/null 2>&1 &
mirror=$!
sleep 1
export TORCHINDUCTOR_CACHE_DIR=$RUN/inductor TRITON_CACHE_DIR=$RUN/triton
start=$(date +%s.%N)
python3 -m lightning_app fit --config configs/gutenberg-gpu.yaml --data.data_dir "$RUN/data" \
  --data.gutenberg_mirror http://127.0.0.1:8765 --data.cache_dir "$RUN/cache" \
  --trainer.logger.init_args.save_dir "$RUN" --checkpoint.dirpath "$RUN/ckpt" "$@" 2>&1 |
  python3 -c 'import io, sys, time  # each output line (progress-bar redraws too) stamped with seconds since start
start = float(sys.argv[1])
for line in io.TextIOWrapper(sys.stdin.buffer, newline=""):
    print(f"{time.time() - start:7.2f} {line.rstrip()}", flush=True)' "$start" > "$RUN/log"
status=${PIPESTATUS[0]}
end=$(date +%s.%N)
kill $mirror
echo "$NAME: exit $status, process wall $(awk "BEGIN {printf \"%.1f\", $end - $start}") s, $(ls "$RUN/data" | wc -l) books downloaded"
grep -iE "run summary|best val|error|Tokenizing|LOCAL_RANK| 100/|Validation DataLoader 0: 100|--- sample|BPC plot" "$RUN/log" | awk '!seen[$2 $3 $4]++' | head -20
awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) {if ($i == "val_bpc") v = i; if ($i == "step") s = i}}
  NR > 1 && $v != "" {printf "  step %s val_bpc %s\n", $s, $v}' "$RUN/lightning_logs/version_0/metrics.csv"
