#!/usr/bin/env bash
# tools/up --detach, every trainctl workflow against the running mesh, a
# SIGTERM drain through tools/down, and a restart that finds the jobs again.
# No pipefail: `cmd | grep -q` may end cmd early with SIGPIPE, which is fine here.
set -eu
. "$(dirname "$0")/lib.sh"
e2e_start up JOBS AUTH METRICS SCHEDULER GATEWAY
# No trainer: jobs stay queued, so the queue-side flows can be tried here
# (tests/e2e/train_test.sh trains).
export TRAINMESH_TRAINER=0
# Services read every TRAINMESH_<FLAG>: revocations show within a second here.
export TRAINMESH_API_KEY_CACHE_TTL=1s

cleanup() {
  "$root/tools/down" >/dev/null 2>&1 || true
  rm -rf "$TRAINMESH_RUN_DIR"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT

"$root/tools/up" --detach >"$TRAINMESH_RUN_DIR/up.out"
grep -q "trainmesh is up" "$TRAINMESH_RUN_DIR/up.out" || fail "tools/up did not report the mesh up"
grep -q "^TRAINMESH_API_KEY=tm_" "$TRAINMESH_RUN_DIR/credentials.env" || fail "no API key written"
grep -q "^TRAINMESH_AUTH_ENDPOINT=127.0.0.1:$TRAINMESH_AUTH_PORT$" "$TRAINMESH_RUN_DIR/credentials.env" \
  || fail "auth endpoint not written"
grep -q "^TRAINMESH_ENDPOINT=127.0.0.1:$TRAINMESH_JOBS_PORT$" "$TRAINMESH_RUN_DIR/credentials.env" \
  || fail "endpoint not written"

tc health | grep -q SERVING || fail "health"
# The same with the CA named by flag instead of the environment (TLS is on).
ca=$(sed -n 's/^TRAINMESH_TLS_CA=//p' "$TRAINMESH_RUN_DIR/credentials.env")
[ -n "$ca" ] || fail "no TLS CA in the credentials"
bare() { env -u TRAINMESH_TLS_CA TRAINMESH_CREDENTIALS_FILE=/dev/null "$root/tools/trainctl" \
           --endpoint "127.0.0.1:$TRAINMESH_JOBS_PORT" "$@"; }
bare --tls-ca "$ca" health | grep -q SERVING || fail "health with --tls-ca"
! bare health --timeout 2s >/dev/null 2>&1 || fail "a TLS endpoint answered a plaintext client"
# The REST gateway: written to the credentials, serving the same jobs.
gateway=$(sed -n 's/^TRAINMESH_GATEWAY=//p' "$TRAINMESH_RUN_DIR/credentials.env")
[ "$gateway" = "http://127.0.0.1:$TRAINMESH_GATEWAY_PORT" ] || fail "gateway not written: $gateway"
key=$(sed -n 's/^TRAINMESH_API_KEY=//p' "$TRAINMESH_RUN_DIR/credentials.env")
rest() {  # rest METHOD PATH [BODY] -> "STATUS BODY"
  python3 - "$gateway" "$key" "$@" <<'PY'
import sys, urllib.request, urllib.error
base, key, method, path = sys.argv[1:5]
body = sys.argv[5].encode() if len(sys.argv) > 5 else None
req = urllib.request.Request(base + path, data=body, method=method, headers={"Authorization": "Bearer " + key})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
PY
}
rest GET /healthz | grep -q '^200 ' || fail "gateway health"
rest GET /v1/recipes | grep -q '^200 .*"mlp-policy"' || fail "REST recipes: $(rest GET /v1/recipes | head -c 300)"
rest GET /v1/jobs/not-a-job | grep -q '^404 \|^400 ' || fail "REST error: $(rest GET /v1/jobs/not-a-job)"
tc health --endpoint "127.0.0.1:$TRAINMESH_METRICS_PORT" | grep -q SERVING || fail "metrics health"
dev_id=$(tc whoami -o json | field "['subject']")
[ -n "$dev_id" ] || fail "whoami"

# submit (JSON file + -p overrides), get, list
echo '{"steps": 40, "hidden_sizes": [32, 32]}' >"$TRAINMESH_RUN_DIR/hp.json"
id=$(tc submit --model mlp-policy --dataset synthetic://reach --file "$TRAINMESH_RUN_DIR/hp.json" \
       -p steps=50 -p activation=tanh -l team=robots)
[[ $id =~ ^[0-9a-f-]{36}$ ]] || fail "submit printed '$id'"
# PENDING until the jobs service's outbox reaches the scheduler (milliseconds).
for _ in $(seq 1 100); do
  json=$(tc get "$id" -o json)
  [ "$(echo "$json" | field "['state']")" = QUEUED ] && break
  sleep 0.1
done
[ "$(echo "$json" | field "['state']")" = QUEUED ] || fail "state: $json"
[ "$(echo "$json" | field "['hyperparameters']['steps']")" = 50 ] || fail "steps: $json"
[ "$(echo "$json" | field "['hyperparameters']['activation']")" = tanh ] || fail "activation"
[ "$(echo "$json" | field "['hyperparameters']['hidden_sizes']")" = "[32, 32]" ] || fail "sizes"
[ "$(echo "$json" | field "['owner']")" = "$dev_id" ] || fail "owner"
tc list | grep -q "$id" || fail "list lacks the job"
[ "$(tc list -o json -l team=robots | field "['jobs'][0]['id']")" = "$id" ] || fail "label filter"

# idempotent submit
a=$(tc submit --model tabular --dataset synthetic://blobs --request-id nightly-1)
b=$(tc submit --model tabular --dataset synthetic://blobs --request-id nightly-1)
[ "$a" = "$b" ] || fail "request id did not deduplicate ($a vs $b)"

# bad input: a clear error, non-zero exit, and the service stays up
set +e
err=$(tc submit --model mlp-policy --dataset ftp://nowhere -p steps=0 -p bogus=1 2>&1 >/dev/null)
rc=$?
set -e
[ $rc = 1 ] || fail "bad submit exited $rc"
echo "$err" | grep -q "INVALID_ARGUMENT" || fail "no code name: $err"
echo "$err" | grep -q "job.dataset_url: scheme must be one of" || fail "no dataset violation: $err"
echo "$err" | grep -q "job.hyperparameters.steps: must be >= 1" || fail "no steps violation: $err"
echo "$err" | grep -q "job.hyperparameters.bogus: unknown hyperparameter" || fail "no bogus: $err"
tc get "$id" >/dev/null || fail "service down after bad input"

# another user: created by the admin, signs in, sees nothing of dev's
tc users create mallory --password mallory-password-1 >/dev/null || fail "users create"
tc users list | grep -q mallory || fail "users list"
other=$(tc login mallory --password mallory-password-1 --print-token | tail -n 1)
[ "$(tc whoami --token "$other" -o json | field "['name']")" = mallory ] || fail "mallory's token"
set +e
err=$(tc get "$id" --token "$other" 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$err" | grep -q NOT_FOUND || fail "cross-user get: $err"
[ -z "$(tc list --token "$other" -o json | field ".get('jobs', [])" | tr -d '[]')" ] \
  || fail "mallory lists dev's jobs"
set +e
err=$(tc users create eve --password eve-password-1 --token "$other" 2>&1); rc=$?
set -e
[ $rc = 1 ] && echo "$err" | grep -q PERMISSION_DENIED || fail "a non-admin created a user: $err"
# a stored login is used by later calls (before tools/up's key), until logout
echo mallory-password-1 | tc login mallory --password-stdin | grep -q "signed in as mallory" || fail "login"
[ "$(tc whoami -o json | field "['name']")" = mallory ] || fail "stored login not used"
tc logout >/dev/null
[ "$(tc whoami -o json | field "['subject']")" = "$dev_id" ] || fail "still mallory after logout"

# API keys: create (shown once), use, list, revoke
key=$(tc keys create --name ci --scope jobs:read)
[[ $key =~ ^tm_ ]] || fail "keys create printed '$key'"
tc get "$id" --api-key "$key" >/dev/null || fail "read with a new key"
set +e
tc cancel "$id" --api-key "$key" 2>"$TRAINMESH_RUN_DIR/err"; rc=$?
set -e
[ $rc = 1 ] && grep -q PERMISSION_DENIED "$TRAINMESH_RUN_DIR/err" || fail "read-only key wrote"
key_id=$(tc keys list -o json | python3 -c "import json,sys; print([k['id'] for k in json.load(sys.stdin)['apiKeys'] if k['name']=='ci'][0])")
tc keys revoke "$key_id" | grep -q revoked || fail "revoke"
refused=0
for _ in $(seq 1 100); do
  if ! tc get "$id" --api-key "$key" >/dev/null 2>&1; then refused=1; break; fi
  sleep 0.1
done
[ $refused = 1 ] || fail "revoked key still works"

# cancel, watch (exit 3: not COMPLETED), logs, retry with lineage
tc cancel "$id" --reason "wrong dataset" | grep -q CANCELLED || fail "cancel"
set +e
tc cancel "$id" 2>"$TRAINMESH_RUN_DIR/err"; rc=$?
set -e
[ $rc = 1 ] && grep -q FAILED_PRECONDITION "$TRAINMESH_RUN_DIR/err" || fail "second cancel"
set +e
watch=$(tc watch "$id"); rc=$?
set -e
[ $rc = 3 ] || fail "watch of a cancelled job exited $rc"
echo "$watch" | grep -q "QUEUED -> CANCELLED" || fail "watch output: $watch"
tc logs "$id" | grep -q "Cancelled by dev while QUEUED: wrong dataset" || fail "logs"
retry=$(tc retry "$id")
[ "$(tc get "$retry" -o json | field "['retryOf']")" = "$id" ] || fail "retry lineage"
[ "$(tc list --retry-of "$id" -o json | field "['jobs'][0]['id']")" = "$retry" ] || fail "lineage list"
tc recipes | grep -q "^lora-lm" || fail "recipes"

# The inbox: the cancel is there, unread, over gRPC and REST; mallory's is empty.
key=$(sed -n 's/^TRAINMESH_API_KEY=//p' "$TRAINMESH_RUN_DIR/credentials.env")  # not the revoked one
inbox=$(tc notifications)
echo "$inbox" | grep -q "^\* *[0-9]* .*$id  mlp-policy  CANCELLED  Cancelled by dev while QUEUED: wrong dataset" \
  || fail "notifications: $inbox"
echo "$inbox" | tail -n 1 | grep -qx "1 unread" || fail "unread count: $inbox"
[ "$(rest GET /v1/notifications | sed 's/^200 //' | field "['unreadCount']")" = 1 ] || fail "REST notifications"
[ "$(tc notifications --token "$other" -o json | field ".get('unreadCount', '0')")" = 0 ] \
  || fail "mallory sees dev's notifications"
tc notifications read --all | grep -qx "marked 1 read; 0 unread" || fail "read --all"
tc notifications --unread | grep -qx "0 unread" || fail "still unread"
set +e
err=$(tc notifications read 2>&1); rc=$?
set -e
[ $rc = 2 ] || fail "notifications read without ids exited $rc: $err"
rest POST /v1/notifications:markRead '{}' | grep -q '^400 .*"field":"ids"' \
  || fail "REST mark without ids: $(rest POST /v1/notifications:markRead '{}')"

# A sweep: a 2x2 grid, each job labelled, all checked before any is submitted,
# and a second run submits none twice.
sweep() { tc sweep --model mlp-policy --dataset synthetic://reach -p steps=30 "$@"; }
out=$(sweep --grid learning_rate=0.01,0.001 --grid hidden_sizes=[16],[32,32] --name grid-1)
[ "$(echo "$out" | grep -c '^[0-9a-f-]\{36\}  learning_rate=0.0*1 hidden_sizes=\[')" = 4 ] || fail "sweep: $out"
echo "$out" | grep -q "^4 jobs in sweep grid-1" || fail "sweep summary: $out"
echo "$out" | grep -q "^compare: $gateway/compare?jobs=[0-9a-f,-]*$" || fail "compare link: $out"
tc list -l sweep=grid-1 -o json | python3 -c '
import json, sys
jobs = json.load(sys.stdin)["jobs"]
combos = {(j["hyperparameters"]["learning_rate"], tuple(j["hyperparameters"]["hidden_sizes"])) for j in jobs}
assert len(jobs) == 4 and combos == {(0.01, (16,)), (0.01, (32, 32)), (0.001, (16,)), (0.001, (32, 32))}, combos
assert all(j["hyperparameters"]["steps"] == 30 and j["labels"]["sweep"] == "grid-1" for j in jobs), jobs
' || fail "the sweep's jobs: $(tc list -l sweep=grid-1)"
again=$(sweep --grid learning_rate=0.01,0.001 --grid hidden_sizes=[16],[32,32] --name grid-1)
[ "$(echo "$out" | cut -c1-36 | head -n 4)" = "$(echo "$again" | cut -c1-36 | head -n 4)" ] \
  || fail "a repeated sweep made new jobs: $again"
set +e
err=$(sweep --grid steps=10,0 --name bad-1 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 1 ] || fail "an invalid sweep exited $rc"
echo "$err" | grep -q "job 2 of 2 (steps=0)" && echo "$err" | grep -q "job.hyperparameters.steps: must be >= 1" \
  && echo "$err" | grep -q "nothing was submitted" || fail "invalid sweep: $err"
[ "$(tc list -l sweep=bad-1 -o json | field ".get('jobs', [])")" = "[]" ] || fail "an invalid sweep submitted jobs"
# Without --name, the same sweep gets the same name (so a rerun submits nothing twice).
named=$(sweep --grid steps=10,20 --validate-only | tail -n 1)
[[ $named =~ ^valid:\ 2\ jobs\ in\ sweep\ sweep-[0-9a-f]{8}$ ]] || fail "default sweep name: $named"
[ "$named" = "$(sweep --grid steps=10,20 --validate-only | tail -n 1)" ] || fail "the default name is not stable"
[ "$named" != "$(sweep --grid steps=10,30 --validate-only | tail -n 1)" ] || fail "two sweeps share a name"
# Random draws, seeded: the same values twice; --validate-only submits nothing.
draws=$(sweep --random learning_rate=1e-4:1e-2:log --trials 3 --seed 5 --name rnd --validate-only)
[ "$draws" = "$(sweep --random learning_rate=1e-4:1e-2:log --trials 3 --seed 5 --name rnd --validate-only)" ] \
  || fail "seeded draws differ"
[ "$(echo "$draws" | grep -c '^learning_rate=0\.00')" = 3 ] && echo "$draws" | tail -n 1 | grep -qx "valid: 3 jobs in sweep rnd" \
  || fail "random sweep: $draws"
[ "$(tc list -l sweep=rnd -o json | field ".get('jobs', [])")" = "[]" ] || fail "--validate-only submitted jobs"

# a live watch ends cleanly when the service drains on SIGTERM
tc watch "$retry" -o json >"$TRAINMESH_RUN_DIR/watch.out" 2>&1 &
watcher=$!
for _ in $(seq 1 100); do
  grep -q '"seq"' "$TRAINMESH_RUN_DIR/watch.out" && break
  sleep 0.1
done
grep -q '"seq"' "$TRAINMESH_RUN_DIR/watch.out" || fail "watch printed nothing"

# Prometheus: every service serves /metrics (listed by tools/up) with its RPCs
# by method and code, and the mesh's own series reflect what happened above.
[ "$(cut -d' ' -f1 "$TRAINMESH_RUN_DIR/prometheus-targets" | sort | tr '\n' ' ')" = "auth gateway jobs metrics scheduler " ] \
  || fail "prometheus targets: $(cat "$TRAINMESH_RUN_DIR/prometheus-targets")"
python3 - "$TRAINMESH_RUN_DIR/prometheus-targets" <<'PY' || fail "prometheus metrics"
import re, sys, time, urllib.request
targets = dict(line.split() for line in open(sys.argv[1]))
def scrape(name):
    with urllib.request.urlopen("http://%s/metrics" % targets[name], timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples
def rpc(service, method, kind="unary"):
    return 'grpc_type="%s",grpc_service="trainmesh.v1.%s",grpc_method="%s"' % (kind, service, method)
def need(name, key, ok, samples=None):
    samples = samples or scrape(name)
    value = samples.get(key)
    if value is None or not ok(value):
        sys.exit("%s: %s = %s" % (name, key, value))
for name in ("auth", "jobs", "scheduler", "metrics"):
    s = scrape(name)
    need(name, "process_resident_memory_bytes", lambda v: v > 1e6, s)
    need(name, 'grpc_server_handled_total{grpc_type="unary",grpc_service="grpc.health.v1.Health",'
               'grpc_method="Check",grpc_code="OK"}', lambda v: v >= 1, s)
need("auth", "grpc_server_handled_total{%s,grpc_code=\"OK\"}" % rpc("AuthService", "Login"), lambda v: v >= 1)
jobs = scrape("jobs")
need("jobs", "grpc_server_handled_total{%s,grpc_code=\"InvalidArgument\"}" % rpc("JobService", "CreateJob"),
     lambda v: v >= 1, jobs)
need("jobs", "grpc_server_handled_total{%s,grpc_code=\"FailedPrecondition\"}" % rpc("JobService", "CancelJob"),
     lambda v: v >= 1, jobs)
need("jobs", "grpc_server_handling_seconds_count{%s}" % rpc("JobService", "GetJob"), lambda v: v >= 3, jobs)
# Counters exist before anything is counted, so rates over them are 0, not absent.
need("jobs", 'trainmesh_job_transitions_total{state="COMPLETED"}', lambda v: v == 0, jobs)
need("metrics", 'trainmesh_ingest_batches_total{result="stored"}', lambda v: v == 0)
need("jobs", 'trainmesh_job_transitions_total{state="CANCELLED"}', lambda v: v >= 1, jobs)
# The watch started above is open now.
need("jobs", "trainmesh_grpc_server_open_streams{%s}" % rpc("JobService", "WatchJob", "server_stream"),
     lambda v: v == 1, jobs)
# The scheduler reads its queue gauges every 5 s: wait for a read after the
# last submission (the idempotent pair and the retry are queued).
deadline = time.time() + 30
while True:
    sched = scrape("scheduler")
    if sched.get('trainmesh_queue_jobs{state="queued"}', 0) >= 2 or time.time() > deadline:
        break
    time.sleep(0.2)
need("scheduler", 'trainmesh_queue_jobs{state="queued"}', lambda v: v >= 2, sched)
need("scheduler", 'trainmesh_agents{status="online"}', lambda v: v == 0, sched)
need("scheduler", "trainmesh_queue_oldest_wait_seconds", lambda v: v > 0, sched)
need("gateway", 'trainmesh_gateway_requests_total{route="GET /v1/recipes",code="200"}', lambda v: v >= 1)
PY
# --migrate_only (the Kubernetes migration Job): each service applies its
# schema's migrations with nothing but the database URL, and exits 0.
dsn=$(tr '\0' '\n' <"/proc/$(cat "$TRAINMESH_RUN_DIR/pids/jobs.pid")/environ" | sed -n 's/^TRAINMESH_DATABASE_URL=//p')
[ -n "$dsn" ] || fail "no database URL in the jobs service's environment"
for s in auth jobs scheduler metrics; do
  env -u TRAINMESH_DATABASE_URL "$TRAINMESH_BUILD_DIR/services/$s/$s" --migrate_only --database_url="$dsn" \
    >"$TRAINMESH_RUN_DIR/migrate-$s.log" 2>&1 || fail "$s --migrate_only: $(tail -3 "$TRAINMESH_RUN_DIR/migrate-$s.log")"
  grep -q "migrated; exiting" "$TRAINMESH_RUN_DIR/migrate-$s.log" || fail "$s did not migrate: $(cat "$TRAINMESH_RUN_DIR/migrate-$s.log")"
done

"$root/tools/down" >"$TRAINMESH_RUN_DIR/down.out"
grep -q "stopped jobs" "$TRAINMESH_RUN_DIR/down.out" || fail "jobs did not drain: $(cat "$TRAINMESH_RUN_DIR/down.out")"
grep -q "stopped metrics" "$TRAINMESH_RUN_DIR/down.out" || fail "metrics did not drain"
grep -q '"msg":"draining"' "$TRAINMESH_RUN_DIR/logs/jobs.log" || fail "no drain logged"
grep -q '"msg":"bye"' "$TRAINMESH_RUN_DIR/logs/jobs.log" || fail "no clean exit logged"
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true

# restart: what was acknowledged is still there
"$root/tools/up" --detach >/dev/null
[ "$(tc get "$id" -o json | field "['state']")" = CANCELLED ] || fail "job lost across restart"
for _ in $(seq 1 100); do
  [ "$(tc get "$retry" -o json | field "['state']")" = QUEUED ] && break
  sleep 0.1
done
[ "$(tc get "$retry" -o json | field "['state']")" = QUEUED ] || fail "retry lost across restart"
# Stopped, so a leak report at exit would be in the logs too.
"$root/tools/down" >/dev/null
no_sanitizer_findings
echo "e2e: all checks passed"
