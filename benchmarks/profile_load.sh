#!/bin/bash
# Profile the portal under load, end to end: seed, serve with gunicorn on PostgreSQL, run the mixed load,
# record every gunicorn worker and decode sandbox with py-spy (--idle, raw collapsed stacks) during a
# separate run, and print the per-request-work table (benchmarks/profile_report.py).
#
#   benchmarks/profile_load.sh [RAW_OUT] [extra load.py options, e.g. --workers 4 --threads 4]
#
# Environment: PY (python with the portal's requirements and py-spy; default .venv/bin/python),
# LOAD_SECONDS (the measured mixed run before the profile, default 30), PROFILE_SECONDS (default 30).
# py-spy attaches with ptrace: run as root or with CAP_SYS_PTRACE.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-profile-raw.txt}
shift || true
if [ ! -x "$(dirname "$PY")/py-spy" ] && ! command -v py-spy >/dev/null; then
  echo "py-spy is not installed: $(dirname "$PY")/pip install py-spy" >&2
  exit 2
fi
"$PY" benchmarks/load.py --seconds "${LOAD_SECONDS:-30}" --cpu-seconds 0 \
  --profile "${PROFILE_SECONDS:-30}" --profile-out "$OUT" "$@"
echo
echo "Raw stacks kept in $OUT; summarise again with: $PY benchmarks/profile_report.py $OUT"
