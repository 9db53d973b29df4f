# What the end-to-end scripts share; sourced right after `set -eu`:
#   . "$(dirname "$0")/lib.sh"
#   e2e_start NAME SERVICE...   a fresh run directory for tools/up ($run,
#                               TRAINMESH_RUN_DIR), trainctl's config kept in
#                               it, and a free port for each service named
#                               (JOBS, AUTH, METRICS, SCHEDULER, GATEWAY, TRAINER)
#   fail MESSAGE, tc ARGS (trainctl), field SUFFIX (a JSON value from stdin,
#   e.g. field "['state']"), no_sanitizer_findings, and tools/lib.sh's
#   free_port, until_ok, await_healthy
root=${TRAINMESH_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# free_port, until_ok, await_healthy
. "$root/tools/lib.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }
tc() { "$root/tools/trainctl" "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

e2e_start() {
  local name=$1 service
  shift
  export TRAINMESH_RUN_DIR
  TRAINMESH_RUN_DIR=$(mktemp -d "${TRAINMESH_TEST_TMPDIR:-/tmp}/e2e-$name.XXXXXX")
  run=$TRAINMESH_RUN_DIR
  # trainctl login keeps its token here, not in the user's home.
  export TRAINMESH_CONFIG_DIR=$run/config
  # Any free port: tests run side by side.
  for service in "$@"; do export "TRAINMESH_${service}_PORT=$(free_port)"; done
}

# Fails when a service's log holds a sanitizer report (ASan/UBSan builds).
no_sanitizer_findings() {
  if grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$run"/logs/*.log; then
    fail "sanitizer findings in the logs above"
  fi
}
