#!/usr/bin/env bash
# One round on a GPU (the numbers in experiments/performance/README.md and README that name a GPU): the
# CUDA tests, the throughput bench on the GPU, then the full-length presets side by side on the one
# GPU until a deadline, their run folders (no checkpoints, TensorBoard or HTML) packed into
# $OUT/{semi,cluster,swiss,seed}.tgz.
#
#   OUT=/tmp/out DEADLINE_S=540 bash experiments/gpu-runs/gpu_session.sh
#
# Runs from the repository root with the machine's own python3 and torch; MNIST from
# $AAE_DATA_DIR (default .devdata/, a copy of the IDX files); wheels in .whl/ are installed first
# (openTSNE and tomli-w are not on the GPU image). Before the first call, here:
#   mkdir -p .devdata && cp -r ../shared/data/mnist .devdata/
#   printf '/.devdata/\n/.whl/\n' >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d .whl openTSNE==1.0.2 tomli-w
# and name .devdata and .whl in the device tool's carry. A run still going at the deadline gets
# SIGTERM and saves a checkpoint; its metrics.jsonl holds every finished epoch.
# QUICK=1: each run trains 1 epoch on 5 000 images (a smoke test of the whole path), no bench;
# DEVICE=cpu QUICK=1 TINY=1 checks the script itself on a CPU in a few minutes.
# RUNSET=cluster: the bench at batch 100 only, then, instead of the presets, 12 runs of the
# 16-cluster preset (seeds 0-3 at interpolation weights 5, 10 and 20; no t-SNE). SEEDS and WEIGHTS
# change the lists, KEY the setting (model.y_mixup): KEY=model.y_vat WEIGHTS="0 5" runs
# cluster-16-y_vat0-s0, ... and packs y_vat0.tgz and y_vat5.tgz; EXTRA adds --set options to
# every run (EXTRA="--set model.y_vat=0": the preset as it was before the VAT term joined it).
# SKIP_TESTS=1 / SKIP_BENCH=1 leave out parts 1 / 2; ALL_RUNS=1 adds a third swiss-roll run and the
# 500-epoch seed preset. Measured on an H200: eight runs side by side train at 9 300 to 13 600
# images/s each, so the semi-supervised presets need about 9.5 minutes for their 100 epochs.
set -u
export PYTHONUNBUFFERED=1
START=$(date +%s)
DEADLINE=$((START + ${DEADLINE_S:-540}))
OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
KEY=${KEY:-model.y_mixup}  # RUNSET=cluster: the setting that WEIGHTS lists
TAG=${KEY##*.}
[ "$KEY" = model.y_mixup ] && TAG=mix  # the names of the first sweep's runs
TINY=${TINY:-0}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export AAE_DATA_DIR=${AAE_DATA_DIR:-$PWD/.devdata} AAE_OFFLINE=1
PY=${PY:-python3}
since() { echo "[$(($(date +%s) - START)) s] $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
TSNE=()
$PY -c "import openTSNE" 2>/dev/null || { echo "no openTSNE: runs skip the t-SNE"; TSNE=(--set train.tsne_points=0); }

# 1. the CUDA tests; CUDA graphs are used below only if the graph tests pass
since "tests"
GRAPH=(--no-cuda-graph)  # CUDA graphs (the default on CUDA) only if their tests pass
if [ "${SKIP_TESTS:-0}" = 1 ]; then
    GRAPH=()  # the tests passed in an earlier call on the same kind of machine
elif [ "$DEVICE" = cuda ]; then
    set -o pipefail
    timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -12 && GRAPH=()
    set +o pipefail
fi
echo "long runs with: ${GRAPH[*]:-CUDA graphs} (graphs only if every CUDA test passed)"

# 2. the bench, alone on the GPU
if [ "$DEVICE" = cuda ] && [ "$QUICK" = 0 ] && [ "${SKIP_BENCH:-0}" = 0 ]; then
    since "bench"
    timeout 120 $PY bench/throughput.py --device cuda --batch-sizes 100 --seconds 1 \
        --variants unsupervised unsupervised-cudagraph unsupervised-bf16 unsupervised-bf16-cudagraph \
        semi-supervised-cudagraph clustering-cudagraph --json "$OUT/bench100.json" 2>&1 \
        | grep -v -i warn | tail -10
    [ "${RUNSET:-presets}" = cluster ] || {
    timeout 40 $PY bench/throughput.py --device cuda --batch-sizes 1024 --seconds 1 \
        --variants unsupervised unsupervised-cudagraph \
        --json "$OUT/bench1024.json" 2>&1 | grep -v -i warn | tail -5
    timeout 70 $PY bench/throughput.py --device cuda --batch-sizes 100 --seconds 1 \
        --variants unsupervised-compiled --json "$OUT/bench_compiled.json" 2>&1 \
        | grep -v -i warn | tail -3
    }
fi

# 3. the full-length presets, side by side on the one GPU
since "long runs"
R=runs/gpu
rm -rf $R  # a warm machine keeps the last call's runs
mkdir -p $R
train() {  # name, then aae train arguments
    local name=$1
    shift
    local q=()
    [ "$QUICK" = 1 ] && q=(--epochs 1 --limit 5000)
    [ "$TINY" = 1 ] && q+=(--set model.encoder_hidden=[64] --set model.decoder_hidden=[64] \
        --set model.disc_hidden=[32])
    $PY -m aae train --device "$DEVICE" "${GRAPH[@]}" --set train.threads=1 --quiet "${TSNE[@]}" \
        --out "$R/$name" "$@" "${q[@]}" >"$R/$name.log" 2>&1 &
    PIDS+=($!)
}
PIDS=()
running() { for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
if [ "${RUNSET:-presets}" = cluster ]; then
    # seeds of the 16-cluster preset at three weights of the interpolation term (experiments/clustering/README.md)
    for w in ${WEIGHTS:-5 10 20}; do
        for s in ${SEEDS:-0 1 2 3}; do
            # shellcheck disable=SC2086  # EXTRA: more --set options, split on spaces
            train "cluster-16-$TAG$w-s$s" --preset cluster-16 --seed "$s" --set "$KEY=$w" ${EXTRA:-} \
                --set train.tsne_points=0
        done
    done
else
    train semi-1000 --preset semi-1000
    train semi-100 --preset semi-100
    train semi-all --preset semi-all
    train cluster-16 --preset cluster-16
    train cluster-30 --preset cluster-30
    train reduce-2d --preset reduce-2d
    train swiss-100 --preset fig3-swissroll --epochs 100 --set "train.sample_epochs=[0,1,10,50,100]"
    train swiss-100-noise --preset fig3-swissroll --epochs 100 --set train.input_noise=0.3 \
        --set "train.sample_epochs=[0,1,10,50,100]"
    if [ "${ALL_RUNS:-0}" = 1 ]; then
        train swiss-100-band --preset fig3-swissroll --epochs 100 --set train.input_noise=0.3 \
            --set prior.roll_noise=0.1 --set "train.sample_epochs=[0,1,10,50,100]"
        train seed --preset seed
    fi
fi
while [ "$(date +%s)" -lt "$DEADLINE" ] && running; do
    sleep 5
    if [ $(( ($(date +%s) - START) % 60 )) -lt 5 ]; then
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
    fi
done
since "deadline; stopping what still runs"
# only this script's own runs (a pattern would stop any other training on the machine)
kill -TERM "${PIDS[@]}" 2>/dev/null
for _ in $(seq 20); do running || break; sleep 1; done
kill -KILL "${PIDS[@]}" 2>/dev/null

# 4. what each run reached
$PY - <<'EOF'
import json, pathlib
for run in sorted(pathlib.Path("runs/gpu").iterdir()):
    m = run / "metrics.jsonl"
    if not run.is_dir() or not m.exists():
        continue
    lines = [json.loads(x) for x in m.read_text().splitlines() if x.strip()]
    if not lines:
        continue
    last = lines[-1]
    keys = ("epoch", "elapsed", "images_per_s", "loss_recon", "test_error", "best_val_error",
            "cluster_error", "cluster_error_majority", "nmi")
    print(run.name, {k: round(last[k], 4) if isinstance(last[k], float) else last[k]
                     for k in keys if k in last and last[k] is not None})
EOF
pack() {  # archive name, run folders and logs: no checkpoints, TensorBoard or HTML reports
    local name=$1
    shift
    tar czf "$OUT/$name.tgz" --exclude=checkpoints --exclude=best --exclude=tb \
        --exclude=report.html "$@" 2>/dev/null
}
if [ "${RUNSET:-presets}" = cluster ]; then  # one archive per weight, without sample grids
    for w in ${WEIGHTS:-5 10 20}; do pack "$TAG$w" --exclude=samples $R/cluster-16-$TAG$w-*; done
else
    pack semi $R/semi-*
    pack cluster $R/cluster-* $R/reduce-2d*
    pack swiss $R/swiss-*
    pack seed $R/seed*
fi
ls -la "$OUT"
since "done"
