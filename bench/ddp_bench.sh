#!/usr/bin/env bash
# Multi-GPU runs through `ctt fit` on one host: tokens/s of GPT-2 small (batch 128 per GPU) on 1 and 2 GPUs (DDP),
# what each rank trains on and its val_bpc, and an FSDP smoke run of a larger model.
# bash bench/ddp_bench.sh DATA_DIR   (repository root on PYTHONPATH; results printed, full logs in $OUT if set)
# DEVICES="1 2" (default) picks the runs (1: one GPU, no DDP: the baseline); EXTRA adds ctt fit flags to them, TAG names them.
set -u
DATA=$1
OUT=${OUT:-/tmp}
COMMON="--config bench/speed.yaml --data.data_dir $DATA --data.vocab byte --data.context_len 1024 --data.batch_size 128 --data.stride 128
  --model.dim 768 --model.depth 12 --model.heads 12 --trainer.max_steps 150 --trainer.limit_val_batches 5
  --throughput.window 50 --sample.length 0 --trainer.enable_model_summary false --trainer.callbacks+=tests.probes.RankReport"
tps() { awk -F, 'NR==1 {for (i = 1; i <= NF; i++) if ($i == "tokens_per_sec") c = i} NR > 1 && $c != "" {v = $c} END {print v}' "$1"; }
for n in ${DEVICES-1 2}; do  # DEVICES= (empty) skips to the FSDP run
  run=ddp$n${TAG-}
  strategy=$([ "$n" = 1 ] && echo auto || echo ddp)
  rm -rf "$OUT/$run" && mkdir -p "$OUT/$run"
  NCCL_DEBUG=INFO python3 -m lightning_app fit $COMMON --trainer.devices $n --trainer.strategy $strategy ${EXTRA-} \
    --trainer.logger.init_args.save_dir "$OUT/$run" --checkpoint.dirpath "$OUT/$run/ckpt" > "$OUT/$run.log" 2>&1
  echo "devices=$n (strategy $strategy ${EXTRA-}): exit $?, tokens/s $(tps "$OUT/$run/lightning_logs/version_0/metrics.csv")"
  grep -E "^rank|run summary|throughput" "$OUT/$run.log"
  grep -m 2 -E "NCCL INFO Channel 00.* via " "$OUT/$run.log"  # how the GPUs talk (NVLink P2P or through the host)
done
[ "${FSDP-1}" = 0 ] && exit 0  # FSDP=0 skips the FSDP smoke run
rm -rf "$OUT/fsdp" && mkdir -p "$OUT/fsdp"
python3 -m lightning_app fit --config bench/speed.yaml --data.data_dir "$DATA" --data.context_len 1024 --data.batch_size 8 \
  --model.dim 2048 --model.depth 16 --model.heads 16 --model.compile false --trainer.devices 2 --trainer.strategy fsdp \
  --trainer.max_steps 20 --trainer.limit_val_batches 5 --sample.length 50 --trainer.enable_model_summary false \
  --trainer.logger.init_args.save_dir "$OUT/fsdp" --checkpoint.dirpath "$OUT/fsdp/ckpt" > "$OUT/fsdp.log" 2>&1
status=$?
echo "fsdp (2048 x 16, about $(( (16 * 16 * 2048 * 2048 + 2 * 256 * 2048) / 1000000 )) M parameters): exit $status"
grep -E "run summary|best val|throughput|Error" "$OUT/fsdp.log" | head -5
