#!/usr/bin/env bash
# The web dashboard in Debian's chromium (headless, playwright-core) against
# the whole mesh from tools/up with a trainer agent: gateway/web/tests/
# dashboard.test.mjs. Screenshots of every page go to $TRAINMESH_SCREENSHOTS
# (default: the run directory, kept when the test fails).
set -eu
root=${TRAINMESH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TRAINMESH_RUN_DIR
TRAINMESH_RUN_DIR=$(mktemp -d "${TRAINMESH_TEST_TMPDIR:-/tmp}/e2e-dashboard.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for service in JOBS AUTH METRICS SCHEDULER GATEWAY TRAINER; do export "TRAINMESH_${service}_PORT=$(free_port)"; done
export TRAINMESH_CONFIG_DIR=$TRAINMESH_RUN_DIR/config
run=$TRAINMESH_RUN_DIR
shots=${TRAINMESH_SCREENSHOTS:-$run/screenshots}

ok=0
cleanup() {
  "$root/tools/down" >/dev/null 2>&1 || true
  if [ $ok = 1 ] && [ -z "${KEEP:-}" ]; then rm -rf "$run"; else echo "run directory kept: $run" >&2; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v chromium >/dev/null || fail "chromium is not installed (tools/deps installs it)"
"$root/tools/up" --detach >"$run/up.out" || fail "tools/up: $(tail -5 "$run/up.out")"
gateway=$(sed -n 's/^TRAINMESH_GATEWAY=//p' "$run/credentials.env")
"$root/tools/trainctl" users create viewer --password viewer-password-1 >/dev/null || fail "users create"

cd "$root/gateway/web"
TRAINMESH_GATEWAY=$gateway DEV_USER=dev DEV_PASSWORD=$(cat "$run/dev-password") \
  OTHER_USER=viewer OTHER_PASSWORD=viewer-password-1 SCREENSHOTS=$shots CHROMIUM=$(command -v chromium) \
  node tests/dashboard.test.mjs || fail "dashboard steps failed (screenshots in $shots)"
if grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$run"/logs/*.log; then
  fail "sanitizer findings in the logs above"
fi
ok=1
echo "dashboard_test: OK ($(ls "$shots" | wc -l) screenshots)"
