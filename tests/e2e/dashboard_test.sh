#!/usr/bin/env bash
# The web dashboard in Debian's chromium (headless, playwright-core) against
# the whole mesh from tools/up with a trainer agent: gateway/web/tests/
# dashboard.test.mjs. Screenshots of every page go to $TRAINMESH_SCREENSHOTS
# (default: the run directory, kept when the test fails).
set -eu
. "$(dirname "$0")/lib.sh"
e2e_start dashboard JOBS AUTH METRICS SCHEDULER GATEWAY TRAINER
shots=${TRAINMESH_SCREENSHOTS:-$run/screenshots}

ok=0
cleanup() {
  "$root/tools/down" >/dev/null 2>&1 || true
  if [ $ok = 1 ] && [ -z "${KEEP:-}" ]; then rm -rf "$run"; else echo "run directory kept: $run" >&2; fi
}
trap cleanup EXIT

command -v chromium >/dev/null || fail "chromium is not installed (tools/deps installs it)"
"$root/tools/up" --detach >"$run/up.out" || fail "tools/up: $(tail -5 "$run/up.out")"
gateway=$(sed -n 's/^TRAINMESH_GATEWAY=//p' "$run/credentials.env")
"$root/tools/trainctl" users create viewer --password viewer-password-1 >/dev/null || fail "users create"

cd "$root/gateway/web"
TRAINMESH_GATEWAY=$gateway DEV_USER=dev DEV_PASSWORD=$(cat "$run/dev-password") \
  OTHER_USER=viewer OTHER_PASSWORD=viewer-password-1 SCREENSHOTS=$shots CHROMIUM=$(command -v chromium) \
  node tests/dashboard.test.mjs || fail "dashboard steps failed (screenshots in $shots)"
no_sanitizer_findings
ok=1
echo "dashboard_test: OK ($(ls "$shots" | wc -l) screenshots)"
