#!/usr/bin/env bash
# Attacks on a running mesh (tools/up, one mesh for every case), each a real
# attempt that must fail to do harm; one line per case, "security: CASE: ok".
# A failing case prints why and the run goes on; the test fails at the end.
#
#   gateway-input       bytes gRPC cannot carry in metadata (LF in ?access_token=,
#                       TAB and 200 bytes in X-Request-Id, 0x80 in Authorization):
#                       400 with a BadRequest naming the field; the gateway lives on
#   script-*            script jobs against their sandbox: a link to /etc/shadow
#                       as an output, other processes' environments, another job's
#                       artifacts, the gateway's port, a fork bomb, a setsid child
#                       that outlives a cancel, a FIFO as an output, 1 GB of output
#   inward-dataset      http:// datasets on loopback and link-local (cloud
#                       metadata) addresses: refused, the content never fetched
#   shared-pool-agent   a non-admin's agent key registers a shared-pool agent: 403;
#                       a key an admin granted pool:shared may (and is no admin)
#   login-throttle      six wrong passwords for one user: 429 with RetryInfo, also
#                       for the right one; another user still signs in
#   jwt-kid-flood       200 tokens with made-up key ids: 401 (a fetch did not
#                       find the kid) or 503 with RetryInfo (the fetch budget is
#                       spent), at once, while real requests go on succeeding
#   cross-tenant        user B calls every route of /openapi.json that takes an id
#                       with user A's ids: 403/404 only, nothing of A's in any answer
#   artifact-sha256     a model's download and its last chunk's sha256 agree
#   queued-metrics      metrics routes of a job that has not reported: 404 for
#                       another user, 200 for its owner
#   signed-url          ?access_token= takes only a signed URL's token, on its own
#                       path: a login token there, the signed token on another
#                       stream or as a bearer are 401; B's signed URL for A's job
#                       is 404; only streams and downloads can be signed
#
# Run: TRAINMESH_BUILD_DIR=build/asan bash tests/security/security_test.sh
# (KEEP=1 keeps the run directory: logs, artifacts.)
# No pipefail: `cmd | grep -q` may end cmd early with SIGPIPE, which is fine here.
set -eu
# Run as `flock LOCK ctest ...`, this shell holds the lock's descriptor: no
# daemon started below (postgres, the services) may inherit it, or a run
# killed before its cleanup would keep the lock held for good.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  [ "$fd" -gt 2 ] && [ "$fd" != 255 ] || continue
  case $(readlink "/proc/$$/fd/$fd" 2>/dev/null) in *.lock) eval "exec $fd>&-" ;; esac
done
. "$(dirname "$0")/../e2e/lib.sh"
e2e_start security JOBS AUTH METRICS SCHEDULER TRAINER GATEWAY
# Cancels reach the trainer within a heartbeat; leases long enough for a
# loaded 2-core machine running an ASan build.
export TRAINMESH_LEASE=15s TRAINMESH_LEASE_GRACE=5s TRAINMESH_HEARTBEAT_INTERVAL=500ms
export TRAINMESH_PROGRESS_REPORT_INTERVAL=500ms TRAINMESH_ACQUIRE_WAIT=5s
export TRAINMESH_API_KEY_CACHE_TTL=1s TRAINMESH_THREADS=1
# The trainer's script limits this test leans on (the operator's flags).
script_max_processes=64
script_max_output_bytes=$((64 << 20))
export TRAINMESH_SCRIPT_MAX_PROCESSES=$script_max_processes
export TRAINMESH_SCRIPT_MAX_OUTPUT_BYTES=$script_max_output_bytes

py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
mark=$($py -c 'import secrets; print(secrets.token_hex(6))')
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "${KEEP:-}" ] || return 0
  "$root/tools/down" >/dev/null 2>&1 || true
  rm -rf "$run"
}
trap cleanup EXIT
# Stopped by ctest or Ctrl-C: still stop the mesh (the EXIT trap runs on exit).
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- helpers ----------------------------------------------------------------
# j EXPR: EXPR over j, the JSON read from stdin.
j() { $py -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
# api CREDENTIAL METHOD PATH [BODY] [CURL ARGS...]: "STATUS BODY" from the
# gateway; CREDENTIAL is a token or key, "-" for none.
api() {
  local cred=$1 method=$2 path=$3 body=${4:-} f code
  shift 4 2>/dev/null || shift $#
  f=$(mktemp "$run/http.XXXXXX")
  local args=(-sS -o "$f" -w '%{http_code}' -X "$method" --max-time 30)
  [ "$cred" = - ] || args+=(-H "Authorization: Bearer $cred")
  [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data "$body")
  code=$(curl "${args[@]}" "$@" "$gw$path") || true
  echo "$code $(cat "$f")"
  rm -f "$f"
}
code_of() { echo "${1%% *}"; }
body_of() { echo "${1#* }"; }
# ok200 RESPONSE WHAT: the body of a 200, else fail.
ok200() { [ "$(code_of "$1")" = 200 ] || fail "$2: $1"; body_of "$1"; }
job_get() { api "${2:-$devkey}" GET "/v1/jobs/$1"; }
job_state() { job_get "$1" "${2:-}" | sed 's/^[0-9]* //' | j "j.get('state', '')"; }
is_state() { [ "$(job_state "$1" "${3:-}")" = "$2" ]; }
ended() { case $(job_state "$1" "${2:-}") in COMPLETED | FAILED | CANCELLED) return 0 ;; esac; return 1; }
# wait_end ID [CRED]: the job ends (150 s at most); prints its state.
wait_end() {
  until_ok 150 ended "$1" "${2:-}" || fail "job $1 did not end: $(job_get "$1" "${2:-}")"
  job_state "$1" "${2:-}"
}
# submit CRED JSON: the new job's id.
submit() { ok200 "$(api "$1" POST /v1/jobs "$2")" "submit $2" | j "j['id']"; }
# script_job CASE SCRIPT [HYPERPARAMETERS JSON]: a bash script job of dev's
# (the trainer's owner; only it runs scripts), labelled case=CASE.
script_job() {
  submit "$devkey" "$($py -c '
import json, sys
hp = {"command": "/bin/bash", "args": ["-c", sys.argv[2]]}
hp.update(json.loads(sys.argv[3] or "{}"))
print(json.dumps({"model": "script", "datasetUrl": "synthetic://none", "hyperparameters": hp,
                  "labels": {"case": sys.argv[1]}}))' "$1" "$2" "${3:-}")"
}
logs_of() { tc logs "$1" 2>&1 || true; }
in_logs() { logs_of "$1" | grep -qF -- "$2"; }
error_log() { ok200 "$(api "$devkey" GET "/v1/jobs/$1/errorLog")" "errorLog of $1" | j "j.get('text', '')"; }
# artifact_code ID NAME [OUT]: the HTTP status of downloading artifact NAME.
artifact_code() {
  curl -sS -o "${3:-/dev/null}" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $devkey" \
    "$gw/v1/jobs/$1/artifact?name=$2" || true
}
gateway_healthy() {
  kill -0 "$gw_pid" 2>/dev/null || fail "the gateway (pid $gw_pid) is gone: $(tail -n 20 "$run/logs/gateway.log")"
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$gw/healthz")" = 200 ] || fail "/healthz is not 200"
}
mesh_healthy() {
  gateway_healthy
  local s
  for s in jobs auth metrics scheduler trainer; do
    kill -0 "$(cat "$run/pids/$s.pid")" 2>/dev/null || fail "the $s process is gone: $(tail -n 20 "$run/logs/$s.log")"
  done
  tc health | grep -q SERVING || fail "the jobs service is not serving"
}
# violation FILE FIELD: FILE is a google.rpc.Status JSON (INVALID_ARGUMENT)
# whose BadRequest detail has a field violation for FIELD.
violation() {
  $py - "$1" "$2" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read()
try:
    body = json.loads(raw)
except ValueError:
    sys.exit("not JSON: %r" % raw[:300])
fields = [v.get("field") for d in body.get("details", [])
          if d.get("@type") == "type.googleapis.com/google.rpc.BadRequest"
          for v in d.get("fieldViolations", [])]
if body.get("code") != 3 or sys.argv[2] not in fields:
    sys.exit("not an INVALID_ARGUMENT with a BadRequest naming %s: %s" % (sys.argv[2], raw[:500]))
PY
}
# raw_http FILE REQUEST: REQUEST (with Python escapes: \r\n, \t, \x80 are
# bytes) sent as is to the gateway; prints the status, the body into FILE.
raw_http() {
  $py - "$TRAINMESH_GATEWAY_PORT" "$1" "$2" <<'PY'
import socket, sys
port, out, text = int(sys.argv[1]), sys.argv[2], sys.argv[3]
request = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(request)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
if b"transfer-encoding: chunked" in head.lower():
    decoded = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        decoded += rest[:size]
        body = rest[size + 2:]
    body = decoded
open(out, "wb").write(body)
first = head.split(b"\r\n")[0].split()
print(first[1].decode() if len(first) > 1 else "none")
PY
}

failed=()
# run_case NAME FUNCTION: runs FUNCTION in a subshell (a `fail` ends only it).
run_case() {
  local rc
  set +e
  (
    set -eE
    trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
    "$2"
  )
  rc=$?
  set -e
  if [ $rc = 0 ]; then
    echo "security: $1: ok"
  else
    echo "security: $1: FAILED"
    failed+=("$1")
  fi
}

# ---- the mesh, users and jobs -----------------------------------------------
"$root/tools/up" --detach >"$run/up.out" 2>&1 || { cat "$run/up.out"; fail "tools/up"; }
grep -q "trainmesh is up" "$run/up.out" || fail "tools/up did not report the mesh up"
gw=$(sed -n 's/^TRAINMESH_GATEWAY=//p' "$run/credentials.env")
devkey=$(sed -n 's/^TRAINMESH_API_KEY=//p' "$run/credentials.env")
[ -n "$gw" ] && [ -n "$devkey" ] || fail "no gateway or key in the credentials"
gw_pid=$(cat "$run/pids/gateway.pid")
trainer_pid=$(cat "$run/pids/trainer.pid")

# Users: alice (A) and bob (B), neither an admin; carol is the one whose
# password is guessed at.
for u in alice bob carol; do tc users create "$u" --password "$u-password-$mark" >/dev/null || fail "users create $u"; done
login() { ok200 "$(api - POST /v1/auth:login "{\"name\": \"$1\", \"password\": \"$1-password-$mark\"}")" "login $1"; }
login_a=$(login alice)
tok_a=$(echo "$login_a" | j "j['accessToken']")
uid_a=$(echo "$login_a" | j "j['user']['id']")
tok_b=$(login bob | j "j['accessToken']")
[ -n "$tok_a" ] && [ -n "$tok_b" ] && [ -n "$uid_a" ] || fail "logins"

# A's own agent (the curl agent of examples/, over REST) runs one job of A's
# to COMPLETED, with metrics and logs; A's second job then waits in the queue
# (no agent of A's is left, and dev's trainer takes only dev's jobs).
label_a="alice-secret-$mark"
created=$(ok200 "$(api "$tok_a" POST /v1/apiKeys '{"name": "a-agent", "scopes": ["agent"]}')" "A's agent key")
key_a=$(echo "$created" | j "j['secret']")
keyid_a=$(echo "$created" | j "j['apiKey']['id']")
TRAINMESH_GATEWAY=$gw TRAINMESH_AGENT_KEY=$key_a AGENT_NAME="alice-agent-$mark" AGENT_JOBS=1 AGENT_STEPS=5 \
  "$root/examples/curl-agent.sh" 2>"$run/agent-a.log" &
bg_pids+=($!)
job_a1=$(submit "$tok_a" "{\"model\": \"mlp-policy\", \"datasetUrl\": \"synthetic://reach\",
  \"hyperparameters\": {\"steps\": 5}, \"labels\": {\"probe\": \"$label_a\"}}")

# dev's jobs for the trainer, all submitted now and checked later, in the
# order the trainer takes them (oldest first). A model to download, whose
# files a script then tries to read.
policy=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=20 -p checkpoint_every=10)
# Inward datasets: a loopback server whose CSV starts with a secret.
secret="TM-DATASET-SECRET-$mark"
mkdir -p "$run/www"
printf '%s,label\n1,0\n2,1\n3,0\n4,1\n' "$secret" >"$run/www/s.csv"
www_port=$(free_port)
$py -m http.server --bind 127.0.0.1 --directory "$run/www" "$www_port" >"$run/www.log" 2>&1 &
bg_pids+=($!)
serves_secret() { curl -sf --max-time 5 "http://127.0.0.1:$www_port/s.csv" 2>/dev/null | grep -qF "$secret"; }
until_ok 30 serves_secret || fail "the dataset server does not serve"
www_gets=$(grep -c 'GET /s.csv' "$run/www.log" || true)
inward=$(tc submit --model tabular --dataset "http://127.0.0.1:$www_port/s.csv" -p target_column=label -p steps=5)
metadata=$(tc submit --model tabular --dataset "http://169.254.169.254/latest/meta-data/" -p target_column=label -p steps=5)
# Scripts.
shadow_line=$(head -n 1 /etc/shadow)
s_link=$(script_job link 'ln -s /etc/shadow "$TRAINMESH_OUTPUT_DIR/x.txt"
mkdir -p "$TRAINMESH_OUTPUT_DIR/sub" && ln -s /etc "$TRAINMESH_OUTPUT_DIR/sub/etc"
echo plain >"$TRAINMESH_OUTPUT_DIR/ok.txt"
cat /etc/shadow 2>&1 | head -c 300; echo
echo done-link')
s_environ=$(script_job environ 'echo ENV-BEGIN
for f in /proc/[0-9]*/environ /proc/$PPID/environ /proc/1/environ; do
  echo "== $f"; tr "\0" "\n" <"$f" 2>&1
done
echo "ENV-END-$((6 * 7))"')
s_connect=$(script_job connect "for p in $TRAINMESH_GATEWAY_PORT $TRAINMESH_JOBS_PORT $TRAINMESH_AUTH_PORT; do
  if (exec 3<>/dev/tcp/127.0.0.1/\$p) 2>/dev/null; then echo \"CONNECTED \$p\"; else echo \"CONNECT-FAILED \$p\"; fi
  if python3 -c 'import socket, sys; socket.create_connection((\"127.0.0.1\", int(sys.argv[1])), 3)' \$p 2>/dev/null; then
    echo \"PY-CONNECTED \$p\"; else echo \"PY-CONNECT-FAILED \$p\"; fi
done")
s_fifo=$(script_job fifo 'mkfifo "$TRAINMESH_OUTPUT_DIR/pipe" && echo "fifo-made-$((6 * 7))"
echo fine >"$TRAINMESH_OUTPUT_DIR/ok.txt"')
s_big=$(script_job big 'head -c 1G /dev/zero >"$TRAINMESH_OUTPUT_DIR/big"; echo "head exited $?"')

# A's first job ends on A's agent; A's second then waits in the queue for good.
[ "$(wait_end "$job_a1" "$tok_a")" = COMPLETED ] \
  || fail "A's job on A's agent: $(job_get "$job_a1" "$tok_a") $(cat "$run/agent-a.log")"
agent_a=$(sed -n 's/.*registered as \([0-9a-f-]*\).*/\1/p' "$run/agent-a.log" | head -n 1)
[ -n "$agent_a" ] || fail "A's agent did not register: $(cat "$run/agent-a.log")"
job_a2=$(submit "$tok_a" "{\"model\": \"mlp-policy\", \"datasetUrl\": \"synthetic://reach\",
  \"hyperparameters\": {\"steps\": 5}, \"labels\": {\"probe\": \"$label_a\"}}")
until_ok 30 is_state "$job_a2" QUEUED "$tok_a" || fail "A's second job: $(job_get "$job_a2" "$tok_a")"

# ---- cases --------------------------------------------------------------------

case_gateway_input() {
  local code long
  code=$(curl -sS -o "$run/c1" -w '%{http_code}' --max-time 10 "$gw/v1/jobs:watch?access_token=%0A") || true
  [ "$code" = 400 ] || fail "?access_token=%0A: HTTP $code $(head -c 300 "$run/c1")"
  violation "$run/c1" access_token || fail "?access_token=%0A"
  gateway_healthy
  code=$(raw_http "$run/c1" "GET /v1/jobs HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer $devkey\r\nX-Request-Id: ab\tcd\r\nConnection: close\r\n\r\n")
  [ "$code" = 400 ] || fail "TAB in X-Request-Id: HTTP $code $(head -c 300 "$run/c1")"
  violation "$run/c1" X-Request-Id || fail "TAB in X-Request-Id"
  gateway_healthy
  long=$(printf 'r%.0s' $(seq 1 200))
  code=$(curl -sS -o "$run/c1" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $devkey" \
           -H "X-Request-Id: $long" "$gw/v1/jobs") || true
  [ "$code" = 400 ] || fail "200-byte X-Request-Id: HTTP $code $(head -c 300 "$run/c1")"
  violation "$run/c1" X-Request-Id || fail "200-byte X-Request-Id"
  code=$(raw_http "$run/c1" "GET /v1/jobs HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \x80$devkey\r\nConnection: close\r\n\r\n")
  [ "$code" = 400 ] || fail "0x80 in Authorization: HTTP $code $(head -c 300 "$run/c1")"
  violation "$run/c1" Authorization || fail "0x80 in Authorization"
  gateway_healthy
  [ "$(cat "$run/pids/gateway.pid")" = "$gw_pid" ] || fail "the gateway was restarted"
  # The same requests with sane values pass: the refusals above are for the bytes.
  code=$(curl -sS -o "$run/c1" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $devkey" \
           -H "X-Request-Id: sec-$mark" "$gw/v1/jobs") || true
  [ "$code" = 200 ] || fail "a sane request: HTTP $code $(head -c 300 "$run/c1")"
}

case_shared_pool_agent() {
  local r key_b
  key_b=$(ok200 "$(api "$tok_b" POST /v1/apiKeys '{"name": "b-agent", "scopes": ["agent"]}')" "B's agent key" \
            | j "j['secret']")
  r=$(api "$key_b" POST /v1/agents "{\"agent\": {\"name\": \"b-shared-$mark\", \"sharedPool\": true}}")
  [ "$(code_of "$r")" = 403 ] || fail "a non-admin registered a shared-pool agent: $r"
  [ "$(body_of "$r" | j "j.get('code')")" = 7 ] || fail "not PERMISSION_DENIED: $r"
  # The same key may register its own agent: the refusal is for the shared pool.
  r=$(ok200 "$(api "$key_b" POST /v1/agents "{\"agent\": {\"name\": \"b-own-$mark\"}}")" "B's own agent")
  [ "$(echo "$r" | j "j.get('sharedPool', False)")" = False ] || fail "B's agent is shared: $r"
  r=$(ok200 "$(api "$key_b" GET '/v1/agents?includeOffline=true')" "B's agents")
  ! echo "$r" | grep -q "b-shared-$mark" || fail "the refused agent was registered: $r"
  echo "$r" | grep -q "b-own-$mark" || fail "B's own agent is not listed: $r"
  # B cannot grant itself the pool, nor make keys for others; an admin's
  # grant to B (a key that is B's: agent + pool:shared) registers a
  # shared-pool agent of B's, and acts as B, never as the admin.
  r=$(api "$tok_b" POST /v1/apiKeys '{"name": "b-pool", "scopes": ["agent", "pool:shared"]}')
  [ "$(code_of "$r")" = 403 ] || fail "a non-admin made a pool:shared key: $r"
  r=$(api "$tok_b" POST '/v1/apiKeys?forUser=alice' '{"name": "for-a", "scopes": ["agent"]}')
  [ "$(code_of "$r")" = 403 ] || fail "a non-admin made a key for another user: $r"
  key_b=$(ok200 "$(api "$devkey" POST '/v1/apiKeys?forUser=bob' '{"name": "operator", "scopes": ["agent", "pool:shared"]}')" \
            "an admin grants the pool to B" | j "j['secret']")
  r=$(ok200 "$(api "$key_b" POST /v1/agents "{\"agent\": {\"name\": \"granted-$mark\", \"sharedPool\": true}}")" \
        "the granted key registers a shared-pool agent")
  [ "$(echo "$r" | j "j.get('sharedPool', False)")" = True ] || fail "the granted agent is not shared: $r"
  [ "$(echo "$r" | j "j.get('owner', '')")" = "$(ok200 "$(api "$tok_b" GET /v1/auth/whoami)" "B" | j "j['subject']")" ] \
    || fail "the granted agent is not B's: $r"
  r=$(api "$key_b" GET /v1/users)
  [ "$(code_of "$r")" = 403 ] || fail "the granted key acts as an admin: $r"
}

case_login_throttle() {
  local i r
  for i in 1 2 3 4 5; do
    r=$(api - POST /v1/auth:login "{\"name\": \"carol\", \"password\": \"wrong-$i\"}")
    [ "$(code_of "$r")" = 401 ] || fail "wrong password $i: $r"
  done
  r=$(api - POST /v1/auth:login '{"name": "carol", "password": "wrong-6"}')
  [ "$(code_of "$r")" = 429 ] || fail "6th wrong password: $r"
  body_of "$r" | j "[d for d in j.get('details', []) if d.get('@type') == 'type.googleapis.com/google.rpc.RetryInfo'][0]['retryDelay']" \
    >/dev/null || fail "no RetryInfo in the 429: $r"
  r=$(api - POST /v1/auth:login "{\"name\": \"carol\", \"password\": \"carol-password-$mark\"}")
  [ "$(code_of "$r")" = 429 ] || fail "the right password got through the throttle: $r"
  # Another user is not locked out with carol.
  [ -n "$(login bob | j "j['accessToken']")" ] || fail "bob cannot sign in"
}

case_jwt_kid_flood() {
  rm -f "$run/flood.half" "$run/flood.go"
  # 200 tokens: bob's header with a made-up kid (and ES256), bob's claims, a
  # garbage signature. Half are sent, then the flood waits for the normal
  # requests below (a file, not a timer) before it sends the rest.
  $py - "$gw" "$tok_b" "$mark" "$run/flood" >"$run/flood.out" 2>&1 <<'PY' &
import base64, concurrent.futures, json, os, sys, time, urllib.error, urllib.request
gw, token, mark, base = sys.argv[1:5]
def b64(data): return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
header, claims, _ = token.split(".")
hdr = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
def forged(i):
    h = dict(hdr, alg="ES256", kid="made-up-%s-%d" % (mark, i))
    return "%s.%s.%s" % (b64(json.dumps(h).encode()), claims, b64(os.urandom(64)))
def send(i):
    if i >= 150:  # the last quarter after the normal requests were made
        deadline = time.time() + 120
        while not os.path.exists(base + ".go"):
            if time.time() > deadline:
                return (i, "no go", "")
            time.sleep(0.05)
    req = urllib.request.Request(gw + "/v1/jobs", headers={"Authorization": "Bearer " + forged(i)})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return (i, r.status, r.read().decode(errors="replace")[:200])
    except urllib.error.HTTPError as e:
        return (i, e.code, e.read().decode(errors="replace")[:300])
    except Exception as e:
        return (i, "error", repr(e))
results = []
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    futures = [pool.submit(send, i) for i in range(200)]
    for n, f in enumerate(concurrent.futures.as_completed(futures)):
        results.append(f.result())
        if len(results) == 100:
            open(base + ".half", "w").close()
# A kid a key fetch did not find: 401. A kid nothing was fetched for (the
# shared fetch budget is spent): 503 with RetryInfo, never a wait.
unknown = [r for r in results if r[1] == 401 and "unknown key id" in r[2]]
later = [r for r in results if r[1] == 503 and "RetryInfo" in r[2]]
bad = [r for r in results if r not in unknown and r not in later]
print(json.dumps({"sent": len(results), "unknown_kid": len(unknown), "retry_later": len(later),
                  "bad": bad[:5], "bad_count": len(bad)}))
sys.exit(1 if bad or len(results) != 200 else 0)
PY
  local flood=$! n=0 r
  until_ok 120 test -e "$run/flood.half" || { kill $flood 2>/dev/null; fail "the flood did not get half way: $(cat "$run/flood.out")"; }
  # Meanwhile: bob's real token and dev's key keep working.
  for n in 1 2 3 4 5; do
    r=$(api "$tok_b" GET /v1/jobs)
    [ "$(code_of "$r")" = 200 ] || { touch "$run/flood.go"; fail "a real token during the flood: $r"; }
    r=$(api "$devkey" GET "/v1/jobs/$policy")
    [ "$(code_of "$r")" = 200 ] || { touch "$run/flood.go"; fail "an API key during the flood: $r"; }
  done
  kill -0 $flood 2>/dev/null || fail "the flood ended before the normal requests were made"
  touch "$run/flood.go"
  wait $flood || fail "made-up kids: $(cat "$run/flood.out")"
  grep -q '"sent": 200' "$run/flood.out" || fail "flood: $(cat "$run/flood.out")"
  r=$(api "$tok_b" GET /v1/jobs)
  [ "$(code_of "$r")" = 200 ] || fail "a real token after the flood: $r"
}

case_cross_tenant() {
  # A's jobs: one COMPLETED (it has events, metrics, logs and a cost) and one QUEUED.
  local key_b2
  key_b2=$(ok200 "$(api "$tok_b" POST /v1/apiKeys '{"name": "b-agent-2", "scopes": ["agent"]}')" "B's agent key" \
             | j "j['secret']")
  # Every route with a path parameter, as B (a login token, then an agent
  # key), with A's ids in the path and in every id field of the body (and
  # B's credential as the job token the trainers' routes take). What is
  # acceptable:
  #   403/404 everywhere: B lacks the scope (admin, internal, agent,
  #     job:report routes) or A's resource does not exist for B;
  #   501 only for the route /openapi.json marks "gRPC only" (client
  #     streaming: the gateway answers before any backend is called).
  # Never 2xx, and no answer may hold A's user id or A's job label.
  $py - "$gw" "$tok_b" "$key_b2" "$job_a1" "$job_a2" "$uid_a" "$keyid_a" "$agent_a" "$label_a" "alice-agent-$mark" <<'PY' \
    || fail "cross-tenant probe"
import http.client, json, re, socket, sys, urllib.parse, urllib.request
gw, tok_b, key_b, job1, job2, uid_a, keyid_a, agent_a, label_a, agent_name_a = sys.argv[1:11]
doc = json.load(urllib.request.urlopen(gw + "/openapi.json", timeout=30))
schemas = doc["components"]["schemas"]
host = urllib.parse.urlparse(gw)
def resolve(s):
    while "$ref" in s:
        s = schemas[s["$ref"].split("/")[-1]]
    return s
def fill(schema, value, cred, depth=0):
    """A body with `value` in every id field, the caller's credential as any
    job token (and one element in lists of messages)."""
    schema = resolve(schema)
    if depth > 3 or "properties" not in schema:
        return None
    body = {}
    for name, prop in schema["properties"].items():
        if prop.get("readOnly"):
            continue
        p = resolve(prop)
        if p.get("type") == "string" and (name == "id" or name.endswith("Id") or name in ("retryOf", "baseJob")):
            body[name] = value
        elif p.get("type") == "string" and name == "jobToken":
            body[name] = cred
        elif p.get("type") == "string" and name in ("reason", "name"):
            body[name] = "probe"
        elif "properties" in p:
            sub = fill(p, value, cred, depth + 1)
            if sub:
                body[name] = sub
        elif p.get("type") == "array" and "properties" in resolve(p.get("items", {})):
            sub = fill(p["items"], value, cred, depth + 1)
            if sub:
                body[name] = [sub]
    return body
def targets(path):
    if path.startswith("/v1/users/"): return [("A's user", uid_a)]
    if path.startswith("/v1/apiKeys/"): return [("A's key", keyid_a)]
    if path.startswith("/v1/agents/"): return [("A's agent", agent_a)]
    return [("A's done job", job1), ("A's queued job", job2)]
leaks = [uid_a, label_a, agent_name_a]
rows, bad = [], []
for path, item in sorted(doc["paths"].items()):
    if "{" not in path:
        continue
    for method, op in item.items():
        content = op["responses"].get("200", {}).get("content", {})
        streaming = "text/event-stream" in content
        grpc_only = "gRPC only" in op.get("description", "")
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        for cred_name, cred in (("B token", tok_b), ("B agent key", key_b)):
            for target_name, value in targets(path):
                url = re.sub(r"\{[^}]+\}", value, path)
                body = None
                if schema is not None:
                    body = json.dumps(fill(schema, value, cred) or {}).encode()
                headers = {"Authorization": "Bearer " + cred}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                if streaming:
                    headers["Accept"] = "text/event-stream"
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
                try:
                    conn.request(method.upper(), url, body=body, headers=headers)
                    resp = conn.getresponse()
                    status = resp.status
                    text = b""
                    try:
                        while len(text) < 1 << 16:
                            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                            if not chunk:
                                break
                            text += chunk
                    except (socket.timeout, TimeoutError):
                        pass  # a stream that stays open: what came is the answer
                    text = text.decode(errors="replace")
                except (socket.timeout, TimeoutError):
                    status, text = "timeout", ""
                finally:
                    conn.close()
                allowed = {501} if grpc_only else {403, 404}
                leaked = [l for l in leaks if l in text]
                rows.append((method.upper(), path, cred_name, target_name, status))
                if status not in allowed or leaked:
                    bad.append("%s %s as %s on %s: %s %s%s" % (method.upper(), url, cred_name, target_name, status,
                               text[:200], " LEAKS %s" % leaked if leaked else ""))
width = max(len(r[0]) + len(r[1]) for r in rows) + 2
print("  %-*s %-12s %-15s %s" % (width, "route", "as", "with", "status"))
for m, p, c, t, s in rows:
    print("  %-*s %-12s %-15s %s" % (width, m + " " + p, c, t, s))
if len(rows) < 40:
    bad.append("only %d probes: /openapi.json lists too few routes with a parameter" % len(rows))
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
  # Nothing of A's changed: the queued job is still queued, uncancelled; the
  # finished one is as it was; no job was made from A's (B has none); A's key
  # still works and A's agent is still A's.
  local r
  r=$(ok200 "$(job_get "$job_a2" "$tok_a")" "A's queued job")
  [ "$(echo "$r" | j "j['state']")" = QUEUED ] || fail "A's queued job changed: $r"
  [ "$(echo "$r" | j "j.get('cancelRequested', False)")" = False ] || fail "A's queued job got a cancel: $r"
  r=$(ok200 "$(job_get "$job_a1" "$tok_a")" "A's done job")
  [ "$(echo "$r" | j "(j['state'], j['attempt'])")" = "('COMPLETED', 1)" ] || fail "A's done job changed: $r"
  r=$(ok200 "$(api "$tok_b" GET /v1/jobs)" "B's jobs")
  [ "$(echo "$r" | j "len(j.get('jobs', []))")" = 0 ] || fail "B has jobs now: $r"
  r=$(ok200 "$(api "$tok_a" GET /v1/jobs)" "A's jobs")
  [ "$(echo "$r" | j "len(j.get('jobs', []))")" = 2 ] || fail "A's jobs: $r"
  r=$(ok200 "$(api "$key_a" GET "/v1/agents/$agent_a")" "A's agent with A's key")
  [ "$(echo "$r" | j "j['owner']")" = "$uid_a" ] || fail "A's agent: $r"
}

# sse PATH_WITH_QUERY: "STATUS BODY" of a stream opened for a few seconds
# (what a browser's EventSource gets).
sse() {
  local f code
  f=$(mktemp "$run/sse.XXXXXX")
  code=$(curl -sS -N -o "$f" -w '%{http_code}' --max-time 5 -H 'Accept: text/event-stream' "$gw$1" 2>/dev/null) || true
  echo "$code $(tr '\n' ' ' <"$f")"
  rm -f "$f"
}
refused401() { [ "$(code_of "$1")" = 401 ] || body_of "$1" | grep -q '"code":16'; }

case_signed_url() {
  local r url token
  url=$(ok200 "$(api "$tok_a" POST /v1/auth:signUrl "{\"path\": \"/v1/jobs/$job_a1/logs:stream\"}")" "A signs" \
          | j "j['url']")
  case $url in "/v1/jobs/$job_a1/logs:stream?access_token="*) ;; *) fail "signed URL: $url" ;; esac
  token=${url#*access_token=}
  ! echo "$url" | grep -qF "$tok_a" || fail "the signed URL carries A's login token"
  r=$(sse "$url")
  [ "$(code_of "$r")" = 200 ] && ! refused401 "$r" || fail "A's signed URL: $r"
  # A login token or an API key in the URL.
  r=$(sse "/v1/jobs/$job_a1/logs:stream?access_token=$tok_a")
  refused401 "$r" || fail "a login token as ?access_token=: $r"
  r=$(sse "/v1/jobs/$job_a1:watch?access_token=$devkey")
  refused401 "$r" || fail "an API key as ?access_token=: $r"
  # The signed token elsewhere: another stream of the same job, the feed, a bearer.
  r=$(sse "/v1/jobs/$job_a1/metrics:stream?access_token=$token")
  refused401 "$r" || fail "the logs URL's token on metrics: $r"
  r=$(sse "/v1/jobs:watch?access_token=$token")
  refused401 "$r" || fail "the logs URL's token on the feed: $r"
  r=$(api "$token" GET "/v1/jobs/$job_a1")
  [ "$(code_of "$r")" = 401 ] || fail "the signed token as a bearer: $r"
  r=$(api "$token" POST /v1/auth:signUrl "{\"path\": \"/v1/jobs/$job_a1:watch\"}")
  [ "$(code_of "$r")" = 401 ] || fail "a signed token signs again: $r"
  # B signs a URL for A's job: a good signature, not B's job.
  url=$(ok200 "$(api "$tok_b" POST /v1/auth:signUrl "{\"path\": \"/v1/jobs/$job_a1/logs:stream\"}")" "B signs" \
          | j "j['url']")
  r=$(sse "$url")
  { [ "$(code_of "$r")" = 404 ] || body_of "$r" | grep -q '"code":5'; } || fail "B's URL for A's logs: $r"
  ! echo "$r" | grep -q "$label_a" || fail "B's URL shows A's data: $r"
  # Only streams and downloads can be signed.
  api "$tok_a" POST /v1/auth:signUrl '{"path": "/v1/jobs"}' >"$run/c1"
  [ "$(code_of "$(cat "$run/c1")")" = 400 ] || fail "signing /v1/jobs: $(cat "$run/c1")"
  body_of "$(cat "$run/c1")" >"$run/c2"
  violation "$run/c2" path || fail "signing /v1/jobs"
  # A download through a signed URL: the model's bytes.
  [ "$(wait_end "$policy")" = COMPLETED ] || fail "the model's job: $(job_get "$policy")"
  url=$(ok200 "$(api "$devkey" POST /v1/auth:signUrl "{\"path\": \"/v1/jobs/$policy/artifact?name=model.pt\"}")" \
          "sign a download" | j "j['url']")
  r=$(curl -sS -o "$run/model.pt" -w '%{http_code}' --max-time 30 "$gw$url") || true
  [ "$r" = 200 ] && [ -s "$run/model.pt" ] || fail "download by signed URL: HTTP $r"
  # The query is signed too: that URL's token fetches no other file, and no
  # query parameter overrides the job of the path.
  token=${url#*access_token=}
  r=$(sse "/v1/jobs/$policy/artifact?name=model.json&access_token=$token")
  refused401 "$r" || fail "a signed model.pt URL fetched model.json: $(echo "$r" | head -c 300)"
  url=$(ok200 "$(api "$tok_a" POST /v1/auth:signUrl "{\"path\": \"/v1/jobs/$job_a1/logs:stream?jobId=$job_a2\"}")" \
          "A signs a query that names another job" | j "j['url']")
  r=$(sse "$url")
  { [ "$(code_of "$r")" = 400 ] || body_of "$r" | grep -q '"code":3'; } || fail "?jobId= overrode the path: $r"
}

case_queued_metrics() {
  local p code
  until_ok 30 is_state "$job_a2" QUEUED "$tok_a" || fail "A's job is not queued: $(job_get "$job_a2" "$tok_a")"
  for p in metrics metricNames logs cost metrics:recent; do
    code=$(code_of "$(api "$tok_b" GET "/v1/jobs/$job_a2/$p")")
    [ "$code" = 404 ] || fail "B reads $p of A's queued job: $(api "$tok_b" GET "/v1/jobs/$job_a2/$p")"
    code=$(code_of "$(api "$tok_a" GET "/v1/jobs/$job_a2/$p")")
    [ "$code" = 200 ] || fail "A reads $p of A's queued job: $(api "$tok_a" GET "/v1/jobs/$job_a2/$p")"
  done
  for p in metrics:stream logs:stream; do
    code=$(curl -sS -o "$run/c9" -w '%{http_code}' --max-time 3 -H "Authorization: Bearer $tok_b" \
             -H 'Accept: text/event-stream' "$gw/v1/jobs/$job_a2/$p" 2>/dev/null) || true
    [ "$code" = 404 ] || fail "B streams $p of A's queued job: HTTP $code $(head -c 300 "$run/c9")"
    code=$(curl -sS -o "$run/c9" -w '%{http_code}' --max-time 3 -H "Authorization: Bearer $tok_a" \
             -H 'Accept: text/event-stream' "$gw/v1/jobs/$job_a2/$p" 2>/dev/null) || true
    [ "$code" = 200 ] || fail "A streams $p of A's queued job: HTTP $code $(head -c 300 "$run/c9")"
  done
}

case_artifact_sha256() {
  local out hex
  [ "$(wait_end "$policy")" = COMPLETED ] || fail "the model's job: $(job_get "$policy")"
  out=$(tc download "$policy" -o "$run/dl") || fail "trainctl download: $out"
  hex=$(echo "$out" | awk '$1 ~ /model\.pt$/ { print $5 }')
  [ -n "$hex" ] && [ "$hex" = "$(sha256sum "$run/dl/model.pt" | cut -d' ' -f1)" ] \
    || fail "trainctl's sha256 $hex is not the file's: $out"
  # Over REST as NDJSON: the chunks put together are the file, and the last
  # one's sha256 is theirs.
  curl -sS --max-time 60 -H "Authorization: Bearer $devkey" -H 'Accept: application/x-ndjson' \
    "$gw/v1/jobs/$policy/artifact" >"$run/dl/model.ndjson" || fail "NDJSON download"
  $py - "$run/dl/model.ndjson" "$run/dl/model.pt" <<'PY' || fail "NDJSON chunks"
import base64, hashlib, json, sys
chunks = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert chunks and all("result" in c for c in chunks), [c for c in chunks if "result" not in c][:1]
data = b"".join(base64.b64decode(c["result"].get("data", "")) for c in chunks)
last = chunks[-1]["result"].get("sha256")
file = open(sys.argv[2], "rb").read()
assert data == file, "the NDJSON bytes differ from trainctl's file (%d vs %d bytes)" % (len(data), len(file))
assert last == hashlib.sha256(data).hexdigest(), "last chunk's sha256 %s, bytes' %s" % (last, hashlib.sha256(data).hexdigest())
assert int(chunks[0]["result"].get("totalSize", 0)) == len(data), chunks[0]["result"].get("totalSize")
PY
  # The raw bytes (the default) are the same file.
  curl -sS --max-time 60 -o "$run/dl/model.raw" -H "Authorization: Bearer $devkey" "$gw/v1/jobs/$policy/artifact" \
    || fail "raw download"
  cmp -s "$run/dl/model.raw" "$run/dl/model.pt" || fail "raw download differs"
}

case_inward_dataset() {
  local text
  [ "$(wait_end "$inward")" = FAILED ] || fail "a loopback dataset: $(job_get "$inward")"
  text=$(error_log "$inward")
  echo "$text" | grep -q "127.0.0.1" || fail "the error log does not name the host: $text"
  echo "$text" | grep -q "loopback" || fail "the error log does not say loopback: $text"
  ! echo "$text" | grep -qF "$secret" || fail "the error log holds the dataset's content: $text"
  ! logs_of "$inward" | grep -qF "$secret" || fail "the job's log holds the dataset's content"
  [ "$(grep -c 'GET /s.csv' "$run/www.log" || true)" = "$www_gets" ] \
    || fail "the trainer fetched the loopback URL: $(tail -n 3 "$run/www.log")"
  [ "$(wait_end "$metadata")" = FAILED ] || fail "a link-local dataset: $(job_get "$metadata")"
  text=$(error_log "$metadata")
  echo "$text" | grep -q "169.254.169.254" && echo "$text" | grep -q "link-local" \
    || fail "the metadata URL's error log: $text"
}

case_script_link() {
  local body
  [ "$(wait_end "$s_link")" = COMPLETED ] || fail "the job: $(job_get "$s_link") $(logs_of "$s_link" | tail -n 5)"
  # Outputs were collected (ok.txt), the links were not.
  [ "$(artifact_code "$s_link" ok.txt "$run/link-ok")" = 200 ] && grep -qx plain "$run/link-ok" \
    || fail "ok.txt is not an artifact"
  [ "$(artifact_code "$s_link" x.txt "$run/link-x")" = 404 ] || fail "x.txt downloads: $(head -c 300 "$run/link-x")"
  [ "$(artifact_code "$s_link" sub/etc/shadow "$run/link-y")" = 404 ] || fail "sub/etc/shadow downloads"
  until_ok 30 in_logs "$s_link" "skipped output x.txt" || fail "no skip logged: $(logs_of "$s_link" | tail -n 10)"
  # Nothing of /etc/shadow anywhere: the answers, the log, the artifact store.
  for body in "$run/link-x" "$run/link-y"; do
    ! grep -qF -- "$shadow_line" "$body" || fail "/etc/shadow in an answer"
  done
  ! logs_of "$s_link" | grep -qF -- "$shadow_line" || fail "/etc/shadow in the job's log"
  ! grep -rqF -- "$shadow_line" "$run/artifacts/$s_link" || fail "/etc/shadow in the artifact store"
  [ -z "$(find "$run/artifacts/$s_link" -type l)" ] || fail "links in the artifact store: $(find "$run/artifacts/$s_link" -type l)"
}

case_script_environ() {
  local logs name value names
  [ "$(wait_end "$s_environ")" = COMPLETED ] || fail "the job: $(job_get "$s_environ")"
  until_ok 30 in_logs "$s_environ" ENV-END-42 || fail "no output: $(logs_of "$s_environ" | tail -n 10)"
  logs=$(logs_of "$s_environ")
  # It did read environments (its own has its job id)...
  echo "$logs" | grep -q "TRAINMESH_JOB_ID=$s_environ" || fail "no environment was read: $logs"
  # ...but none of the agent's: its key, the mesh's keys, or any TRAINMESH_
  # variable the trainer has that a script is not given.
  local agent_key
  agent_key=$(sed -n 's/^TRAINMESH_AGENT_API_KEY=//p' "$run/keys.env")
  for value in "$agent_key" "$devkey" "$(sed -n 's/^TRAINMESH_SERVICE_API_KEY=//p' "$run/keys.env")"; do
    [ -n "$value" ] || continue
    ! echo "$logs" | grep -qF -- "$value" || fail "an API key in the script's view: ${value:0:8}..."
  done
  ! echo "$logs" | grep -v "TRAINMESH_JOB_TOKEN=" | grep -q "tm_" || fail "a tm_ key: $(echo "$logs" | grep "tm_")"
  names=$(tr '\0' '\n' <"/proc/$trainer_pid/environ" | sed -n 's/^\(TRAINMESH_[A-Z0-9_]*\)=.*/\1/p')
  for name in $names; do
    case $name in
      TRAINMESH_JOB_ID | TRAINMESH_ATTEMPT | TRAINMESH_JOB_TOKEN | TRAINMESH_DATASET_URL | TRAINMESH_DATASET_PATH | \
        TRAINMESH_OUTPUT_DIR | TRAINMESH_SEED | TRAINMESH_HYPERPARAMETERS) continue ;;
    esac
    ! echo "$logs" | grep -q "$name=" || fail "the agent's $name in the script's view"
    value=$(tr '\0' '\n' <"/proc/$trainer_pid/environ" | sed -n "s/^$name=//p")
    case $name in
      *KEY* | *TOKEN* | *SECRET* | *PASSWORD* | *DATABASE_URL*)
        # Secrets are long; a short value (TRAINMESH_API_KEY_CACHE_TTL=1s) would
        # match by chance inside the job's own token.
        [ ${#value} -lt 16 ] || ! echo "$logs" | grep -qF -- "$value" || fail "the value of the agent's $name in the script's view" ;;
    esac
  done
  [ -n "$names" ] || fail "the trainer has no TRAINMESH_ variables to look for"
}

case_script_other_job() {
  local files f logs
  [ "$(wait_end "$policy")" = COMPLETED ] || fail "the other job: $(job_get "$policy")"
  files=$(echo "$run/artifacts/$policy/"*.pt)
  [ -f "$run/artifacts/$policy/model.pt" ] || fail "the other job has no model to steal: $files"
  # Another job's model and checkpoints, and the agent's and the mesh's secrets.
  files="$files $run/keys.env $run/credentials.env $run/dev-password $run/trainer.agent"
  [ "${TRAINMESH_TLS:-1}" = 0 ] || files="$files $run/tls/trainer.key $run/tls/server.key"
  for f in $files; do [ -f "$f" ] || fail "no $f on the host"; done
  s_other=$(script_job other-job "for f in $files; do
  if head -c 64 \"\$f\" >/dev/null 2>&1; then echo \"READ-OK \$f\"; else echo \"READ-FAILED \$f\"; fi
done
ls $run/artifacts 2>&1 | head -n 3
echo \"done-other-\$((6 * 7))\"")
  wait_end "$s_other" >/dev/null
  until_ok 30 in_logs "$s_other" done-other-42 || fail "no output: $(logs_of "$s_other" | tail -n 10)"
  logs=$(logs_of "$s_other")
  ! echo "$logs" | grep -q "READ-OK /" || fail "the script read: $(echo "$logs" | grep "READ-OK /")"
  [ "$(echo "$logs" | grep -c "READ-FAILED /")" = "$(echo $files | wc -w)" ] || fail "unexpected output: $logs"
  # The artifact root is not even there to list.
  echo "$logs" | grep -q "cannot access.*No such file or directory" || fail "ls of the artifact root: $logs"
  # (What the script printed: its " out " lines; the "running ..." line quotes the script.)
  ! echo "$logs" | grep -E " a[0-9]+ out " | grep -v "READ-FAILED /" | grep -q "$policy" \
    || fail "the artifact root is listed: $logs"
}

case_script_connect() {
  local logs
  # The ports answer on the host...
  (exec 3<>"/dev/tcp/127.0.0.1/$TRAINMESH_GATEWAY_PORT") || fail "the gateway's port is closed on the host"
  wait_end "$s_connect" >/dev/null
  until_ok 30 in_logs "$s_connect" "PY-CONNECT-FAILED $TRAINMESH_AUTH_PORT" \
    || until_ok 1 in_logs "$s_connect" "PY-CONNECTED $TRAINMESH_AUTH_PORT" \
    || fail "no output: $(logs_of "$s_connect" | tail -n 10)"
  logs=$(logs_of "$s_connect")
  # ...not in the sandbox.
  ! echo "$logs" | grep -q "CONNECTED [0-9]" || fail "a connection was made: $(echo "$logs" | grep "CONNECTED [0-9]")"
  [ "$(echo "$logs" | grep -c "CONNECT-FAILED $TRAINMESH_GATEWAY_PORT")" = 2 ] || fail "the gateway probe did not run: $logs"
}

case_script_fork_bomb() {
  local id most=0 n text num=$((RANDOM * 32768 + RANDOM))
  # Every process forks two more and waits for them; one that cannot fork
  # becomes `sleep 1000.NUM` (exec: no fork needed), so the bomb holds every
  # process the sandbox allows until the job's timeout. Quiet (no stderr);
  # its shells are named by their $0, its sleeps by NUM.
  id=$(submit "$devkey" "$($py -c '
import json, sys
print(json.dumps({"model": "script", "datasetUrl": "synthetic://none", "labels": {"case": "fork-bomb"},
  "hyperparameters": {"command": "/bin/sh", "timeout_seconds": 10,
                      "args": ["-c", "exec 2>/dev/null; b() { b & b & wait; exec sleep 1000.%s; }; b" % sys.argv[2],
                               sys.argv[1]]}}))' "bomb-$mark" "$num")")
  bombs() { pgrep -f "bomb-$mark|sleep 1000\\.$num" | wc -l; }
  many() { [ "$(bombs)" -ge 20 ]; }
  until_ok 150 many || fail "the bomb never went off: $(job_get "$id") $(logs_of "$id" | tail -n 5)"
  # Held at the process limit while it runs (then the timeout ends it).
  local deadline=$((SECONDS + 150))
  while ! ended "$id"; do
    [ $SECONDS -lt $deadline ] || fail "the bomb's job does not end: $(job_get "$id")"
    n=$(bombs)
    [ "$n" -le $most ] || most=$n
    # The sandbox's processes, and bwrap outside it (its command line names the bomb).
    [ "$n" -le $((script_max_processes + 2)) ] || fail "$n bomb processes; the limit is $script_max_processes"
    sleep 0.2
  done
  echo "  fork bomb: at most $most processes seen (the limit: $script_max_processes)"
  [ "$most" -ge 20 ] || fail "the bomb was not seen running: at most $most processes"
  [ "$(job_state "$id")" = FAILED ] || fail "the bomb's job: $(job_get "$id")"
  text=$(error_log "$id")
  echo "$text" | grep -q "timeout_seconds" || fail "the bomb's error log: $text"
  none_left() { [ "$(bombs)" = 0 ]; }
  until_ok 30 none_left || fail "$(bombs) bomb processes left after the job ended: $(pgrep -af "bomb-$mark|sleep 1000\\.$num" | head -n 3)"
  mesh_healthy
}

case_script_setsid() {
  local id r
  id=$(script_job setsid "setsid sleep 1000.$$ </dev/null >/dev/null 2>&1 &
echo started; sleep 900.$$")
  sleeping() { pgrep -f "sleep 1000.$$" >/dev/null; }
  until_ok 150 sleeping || fail "the setsid child never ran: $(job_get "$id") $(logs_of "$id" | tail -n 5)"
  until_ok 30 is_state "$id" RUNNING || fail "not RUNNING: $(job_get "$id")"
  r=$(api "$devkey" POST "/v1/jobs/$id:cancel" '{"reason": "security test"}')
  [ "$(code_of "$r")" = 200 ] || fail "cancel: $r"
  [ "$(wait_end "$id")" = CANCELLED ] || fail "the job: $(job_get "$id")"
  gone_all() { ! pgrep -f "sleep 1000.$$" >/dev/null && ! pgrep -f "sleep 900.$$" >/dev/null; }
  until_ok 30 gone_all || fail "left behind: $(pgrep -af "sleep [19]00.$$")"
}

case_script_fifo() {
  [ "$(wait_end "$s_fifo")" = COMPLETED ] || fail "the job: $(job_get "$s_fifo") $(logs_of "$s_fifo" | tail -n 5)"
  until_ok 30 in_logs "$s_fifo" fifo-made-42 || fail "no FIFO was made: $(logs_of "$s_fifo" | tail -n 10)"
  [ "$(artifact_code "$s_fifo" ok.txt "$run/fifo-ok")" = 200 ] && grep -qx fine "$run/fifo-ok" || fail "ok.txt is not an artifact"
  [ "$(artifact_code "$s_fifo" pipe)" = 404 ] || fail "the FIFO is an artifact"
  [ ! -e "$run/artifacts/$s_fifo/pipe" ] || fail "the FIFO is in the artifact store"
  until_ok 30 in_logs "$s_fifo" "skipped output pipe" || fail "no skip logged: $(logs_of "$s_fifo" | tail -n 10)"
}

case_script_big_output() {
  local text used
  [ "$(wait_end "$s_big")" = FAILED ] || fail "1 GB of output: $(job_get "$s_big")"
  text=$(error_log "$s_big")
  echo "$text" | grep -q "64 MiB\|size limit\|script_max_output_bytes" || fail "the error log does not say why: $text"
  # Not served (404, or 400: a FAILED job has no model to download), not stored.
  case $(artifact_code "$s_big" big "$run/big") in
    400 | 404) ;;
    *) fail "the big file downloads: $(head -c 300 "$run/big")" ;;
  esac
  [ ! -e "$run/artifacts/$s_big/big" ] || fail "the big file is in the artifact store"
  used=$(du -sb "$run/artifacts/$s_big" "$run/work" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
  [ "$used" -le $((script_max_output_bytes + (8 << 20))) ] || fail "$used bytes left on disk"
}

run_case gateway-input case_gateway_input
run_case shared-pool-agent case_shared_pool_agent
run_case login-throttle case_login_throttle
run_case jwt-kid-flood case_jwt_kid_flood
run_case cross-tenant case_cross_tenant
run_case queued-metrics case_queued_metrics
run_case signed-url case_signed_url
run_case artifact-sha256 case_artifact_sha256
run_case inward-dataset case_inward_dataset
run_case script-symlink-output case_script_link
run_case script-environ case_script_environ
run_case script-connect case_script_connect
run_case script-fifo case_script_fifo
run_case script-big-output case_script_big_output
run_case script-other-job case_script_other_job
run_case script-fork-bomb case_script_fork_bomb
run_case script-setsid-cancel case_script_setsid

mesh_healthy
"$root/tools/down" >"$run/down.out" 2>&1
no_sanitizer_findings
if [ ${#failed[@]} -gt 0 ]; then
  echo "security: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "security: all cases passed"
