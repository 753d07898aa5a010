#!/usr/bin/env bash
# The GPU path, run for real (issue 22): install, gpu-marked tests, correctness of bf16 /
# channels_last / torch.compile / SIGTERM-resume through the stage CLIs, throughput with
# `python -m pose_study bench`, and a 2-rank NCCL step when the machine has 2 GPUs.
#
#   scripts/gpu-check.sh [--cpu] [--out DIR] [--work DIR] [--wheels DIR] [--budget S] [--sections LIST]
#
#   --cpu       dry mode: the same code paths tiny on the CPU (64 px, *_tiny presets, a few steps),
#               in the current environment (no install); CI runs this (tests/workflow/test_gpu_check.py)
#   --out DIR   where results go (default: $OUT); it receives summary.json, summary.md,
#               gpu-check.log and details.tar.gz (every section's JSON, logs, curves, commands)
#   --work DIR  scratch folder (default: a new folder under ${TMPDIR:-/tmp})
#   --wheels DIR  offline installs: wheels installed with --no-index (default: .whl/ if present)
#   --budget S  wall-clock seconds for the whole run (default 570 on a GPU, 1200 with --cpu): each
#               section's limit is cut to what is left, so the summary is always written
#   --sections  comma-separated subset of: install,env,tests,data,correctness,bench,ddp (default: all;
#               correctness, bench and ddp read the splits that data writes into --work)
#
# Install (GPU mode): with $PYTHON set, that interpreter is used as it is. Otherwise, when PyPI
# answers, a fresh venv gets `pip install torch==2.13.0` (the CUDA build on a GPU machine) and
# `pip install -e '.[test]'`. When it does not (a machine with no
# registry), the machine's own python3 and its torch are used, the wheels of --wheels DIR are
# installed into a target folder with --no-index, and the tree itself is put first on PYTHONPATH.
# The stage CLIs need, beyond a stock CUDA PyTorch image: jsonschema and its dependencies
# (jsonschema-specifications, referencing, rpds-py, attrs). Fetch them where pip works with
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       --platform manylinux_2_17_x86_64 -d .whl jsonschema
# Every section is timed and guarded: a failing section is recorded, and the next one still runs.
# Exit status: 0 when every section and check passed, 1 otherwise, 2 on bad arguments.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CPU=0
OUT_DIR=${OUT:-}
WORK=""
WHEELS=""
SECTIONS="install,env,tests,data,correctness,bench,ddp"
BUDGET=""

usage() { sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) CPU=1 ;;
        --out) OUT_DIR=$2; shift ;;
        --work) WORK=$2; shift ;;
        --wheels) WHEELS=$2; shift ;;
        --sections) SECTIONS=$2; shift ;;
        --budget) BUDGET=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$OUT_DIR" ]; then
    echo "gpu-check: give --out DIR or set OUT (where the summary is written)" >&2; exit 2
fi
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
[ -z "$WHEELS" ] && [ -d "$ROOT/.whl" ] && WHEELS=$ROOT/.whl
PROFILE=$([ $CPU = 1 ] && echo cpu || echo gpu)
BUDGET=${BUDGET:-$([ $CPU = 1 ] && echo 1200 || echo 570)}
DEADLINE=$(( $(date +%s) + BUDGET - 30 ))  # 30 s kept for the summary and the archive
LOG=$OUT_DIR/gpu-check.log
rm -f "$OUT_DIR/summary.json" "$OUT_DIR/summary.md" "$OUT_DIR/details.tar.gz"
: > "$LOG"
: > "$WORK/sections.tsv"
: > "$WORK/commands.txt"
cd "$ROOT" || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ $CPU = 1 ] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
# cmd SECTION ARGV...: run one command, recorded in commands.txt, output into the log
cmd() {
    local section=$1; shift
    printf '[%s] %s\n' "$section" "$*" >> "$WORK/commands.txt"
    "$@" 2>&1 | tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}
# section NAME TIMEOUT_S FUNCTION: run a section under a time limit, record its exit status and times
section() {
    local name=$1 limit=$2 fn=$3 start end t0 rc left
    case ",$SECTIONS," in *",$name,"*) ;; *) say "== $name: not selected"; return 0 ;; esac
    start=$(date -u +%H:%M:%S); t0=$(date +%s)
    left=$(( DEADLINE - t0 ))
    if [ "$left" -lt 10 ]; then
        say "== $name: skipped, the --budget of ${BUDGET} s is spent"
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" 125 "$start" "$start" 0 >> "$WORK/sections.tsv"
        return 0
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    say "== $name: start (limit ${limit} s)"
    timeout --kill-after=10 "$limit" bash -c "$fn"; rc=$?
    end=$(date -u +%H:%M:%S)
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$start" "$end" "$(( $(date +%s) - t0 ))" >> "$WORK/sections.tsv"
    say "== $name: exit $rc after $(( $(date +%s) - t0 )) s"
}
check() { cmd "$1" "$PY" -m pose_study.benchmarks.gpu_check "$1" --work "$WORK" --profile "$PROFILE" "${@:2}"; }

# --- install ----------------------------------------------------------------------------------
pypi_reachable() {
    python3 - <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=5)
except Exception:
    sys.exit(1)
EOF
}
choose_python() {
    # writes $WORK/python (the interpreter every later section uses) and $WORK/install.json
    local mode note=""
    if [ $CPU = 1 ] || [ -n "${PYTHON:-}" ]; then
        mode=existing; echo "${PYTHON:-$ROOT/.venv/bin/python}" > "$WORK/python"
    elif pypi_reachable; then
        mode=pypi
        if cmd install python3 -m venv "$WORK/venv" &&
           cmd install "$WORK/venv/bin/pip" install --quiet "torch==2.13.0" &&
           cmd install "$WORK/venv/bin/pip" install --quiet -e ".[test]"; then
            echo "$WORK/venv/bin/python" > "$WORK/python"
        else
            note="pip install failed (see gpu-check.log); falling back to the machine's python3"
            echo python3 > "$WORK/python"
        fi
    else
        mode=offline; echo python3 > "$WORK/python"
        note="PyPI unreachable: the machine's python3 and torch"
        if [ -n "$WHEELS" ]; then
            cmd install python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" \
                "$WHEELS"/*.whl || note="$note; wheel install failed"
        fi
    fi
    local py; py=$(cat "$WORK/python")
    local imports=ok
    PYTHONPATH="$ROOT:$WORK/site" "$py" -c "from pose_study import cli; cli.build_parser()" 2>>"$LOG" ||
        imports="failed: see gpu-check.log for the missing module; carry its wheels with --wheels DIR"
    MODE=$mode NOTE=$note IMPORTS=$imports python3 - "$WORK/install.json" "$py" <<'PYEOF' 2>&1 | tee -a "$LOG"
import json, os, sys
info = {"mode": os.environ["MODE"], "python": sys.argv[2], "note": os.environ["NOTE"],
        "cli_imports": os.environ["IMPORTS"], "ok": os.environ["IMPORTS"] == "ok"}
open(sys.argv[1], "w").write(json.dumps(info, indent=1))
print(json.dumps(info))
PYEOF
    [ "$imports" = ok ]
}

run_tests() {
    local rc files
    # only the files that hold gpu tests: collecting the rest would import what a bare GPU image
    # may lack (snakemake, a browser), and one collection error would stop the whole run
    files=$(grep -rl --include='test_*.py' 'pytest.mark.gpu' tests | sort)
    cmd tests "$PY" -m pytest -m gpu -q -p no:cacheprovider --junitxml "$WORK/pytest-gpu.xml" $files
    rc=$?
    # exit 5 = no tests collected: named in the summary and counted as a failure, never hidden
    [ "$rc" = 5 ] && say "pytest -m gpu collected no tests (exit 5): counted as a failure"
    check tests --junit "$WORK/pytest-gpu.xml" --rc "$rc"
}
nvidia_info() { command -v nvidia-smi >/dev/null && cmd env nvidia-smi || true; }

# --- the run ----------------------------------------------------------------------------------
say "gpu-check ($PROFILE profile) in $ROOT; work $WORK; results $OUT_DIR; budget ${BUDGET} s"
export ROOT WORK LOG CPU WHEELS PROFILE OUT_DIR SECTIONS
export -f say cmd pypi_reachable choose_python
section install 300 choose_python
PY=$(cat "$WORK/python" 2>/dev/null || echo python3)
[ -d "$WORK/site" ] && export PYTHONPATH="$PYTHONPATH:$WORK/site"
export PY PYTHONPATH
export -f check run_tests nvidia_info
section env 60 "nvidia_info; check env"
section tests 150 run_tests
section data 120 "check data"
section correctness 300 "check correctness"
section bench 420 "check bench"
section ddp 180 "check ddp"

say "== summary"
# the summary needs only the standard library: a plain python3 writes it if $PY is broken
for py in "$PY" python3; do
    "$py" -m pose_study.benchmarks.gpu_check summary --work "$WORK" --profile "$PROFILE" --out "$OUT_DIR" 2>&1 |
        tee -a "$LOG"
    status=${PIPESTATUS[0]}
    [ -f "$OUT_DIR/summary.json" ] && break
done
# details: every section's JSON, logs, curves and commands (no data, checkpoints or weights)
tar -czf "$OUT_DIR/details.tar.gz" -C "$WORK" --exclude='*.h5' --exclude='*.pt' --exclude=checkpoint \
    --exclude=venv --exclude=site . 2>>"$LOG"
say "done: exit $status; results in $OUT_DIR"
exit "$status"
