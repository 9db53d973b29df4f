#!/usr/bin/env bash
# The mesh through clients we did not write, against tools/up: a curl-only
# agent (examples/curl-agent.sh) runs jobs over REST, a Python grpcio client
# (stubs generated from our protos) submits and follows one to COMPLETED,
# curl reads SSE (with Last-Event-ID resume) and NDJSON streams, cancels over
# REST reach the curl agent, error mappings hold, and the gateway's SIGTERM
# drain ends an open stream cleanly.
set -eu
. "$(dirname "$0")/lib.sh"
e2e_start rest JOBS AUTH METRICS SCHEDULER GATEWAY
export TRAINMESH_TRAINER=0  # the curl agent does the work

cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  "$root/tools/down" >/dev/null 2>&1 || true
  rm -rf "$run"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT


"$root/tools/up" --detach >"$run/up.out"
gateway=$(sed -n 's/^TRAINMESH_GATEWAY=//p' "$run/credentials.env")
key=$(sed -n 's/^TRAINMESH_API_KEY=//p' "$run/credentials.env")
[ -n "$gateway" ] && [ -n "$key" ] || fail "no gateway or key in the credentials"
auth=(-H "Authorization: Bearer $key")
# http METHOD PATH [BODY]: prints "STATUS BODY".
http() {
  local out
  out=$(curl -sS -o "$run/body" -w '%{http_code}' -X "$1" "${auth[@]}" -H 'Content-Type: application/json' \
        ${3:+--data "$3"} "$gateway$2")
  echo "$out $(cat "$run/body")"
}

# --- The OpenAPI document lists the routes a client needs.
curl -sSf "$gateway/openapi.json" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
need = ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}:watch", "/v1/agents/{agent_id}:acquire",
        "/v1/assignments/{job_id}:complete", "/v1/jobs/{job_id}/metrics:batchReport"]
missing = [p for p in need if p not in doc["paths"]]
assert doc["openapi"].startswith("3.") and not missing, missing
' || fail "openapi.json"

# --- Every route in the document is served: a GET reaches its backend (a
# placeholder id gets the backend's own answer), a POST with a field no
# message has gets the gateway's field violation (so nothing is changed);
# never "no route", 405 or 501 (but for the one client-streaming method).
python3 - "$gateway" "$key" <<'PY' || fail "routes"
import json, re, sys, urllib.request, urllib.error
base, key = sys.argv[1], sys.argv[2]
doc = json.load(urllib.request.urlopen(base + "/openapi.json"))
bad, count = [], 0
for path, item in doc["paths"].items():
    for method, op in item.items():
        count += 1
        url = base + re.sub(r"\{[^}]+\}", "probe", path)
        body = json.dumps({"noSuchField": 1}).encode() if method in ("post", "put", "patch") else None
        req = urllib.request.Request(url, data=body, method=method.upper(),
                                     headers={"Authorization": "Bearer " + key, "Accept": "application/x-ndjson"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                # A stream that opened stays open: its status is the answer.
                streams = any(p["name"] == "Last-Event-ID" for p in op.get("parameters", []))
                status, text = r.status, "" if streams else r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        streaming_in = "gRPC only" in op.get("description", "")
        if "no route for" in text or status == 405 or (status == 501) != streaming_in:
            bad.append((method, path, status, text[:120]))
        elif body is not None and not (status == 400 and "noSuchField" in text) and not streaming_in:
            bad.append((method, path, status, text[:120]))
        elif status >= 400 and "code" not in json.loads(text):
            bad.append((method, path, status, "not a google.rpc.Status: " + text[:120]))
if bad or count < 40:
    print(count, "routes;", *bad, sep="\n", file=sys.stderr)
    sys.exit(1)
PY

# --- Error mappings, as curl sees them.
[[ $(http POST /v1/jobs '{"model": ') == "400 "*'"code":3'* ]] || fail "malformed JSON: $(http POST /v1/jobs '{"model": ')"
[[ $(http POST /v1/jobs '{"model": "mlp-policy", "colour": 1}') == "400 "*colour* ]] || fail "unknown field"
[[ $(http GET /v1/jobs/00000000-0000-4000-8000-000000000000) == "404 "* ]] || fail "not found"
[[ $(http DELETE /v1/jobs/x) == "405 "* ]] || fail "wrong method"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$gateway/v1/jobs") == 401 ]] || fail "anonymous"
head -c 2000000 /dev/zero | tr '\0' ' ' >"$run/big"
[[ $(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" --data-binary @"$run/big" "$gateway/v1/jobs") == 413 ]] \
  || fail "oversized body"

# --- A curl-only agent with its own key (scope "agent") runs a job that a
# Python grpcio client submits and follows to COMPLETED.
agent_key=$(tc keys create --name curl-agent --scope agent)
[[ $agent_key =~ ^tm_ ]] || fail "agent key: $agent_key"
TRAINMESH_GATEWAY=$gateway TRAINMESH_AGENT_KEY=$agent_key AGENT_NAME=curl-one AGENT_JOBS=1 AGENT_STEPS=20 \
  "$root/examples/curl-agent.sh" 2>"$run/agent1.log" &
agent_pid=$!

stubs=$run/stubs
mkdir -p "$stubs"
protos=$root/protos
(cd "$protos" && protoc -I . --python_out="$stubs" --grpc_python_out="$stubs" \
   --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
   trainmesh/v1/*.proto google/api/*.proto google/rpc/*.proto) || fail "python stubs"
jobs_endpoint=$(sed -n 's/^TRAINMESH_ENDPOINT=//p' "$run/credentials.env")
metrics_endpoint=$(sed -n 's/^TRAINMESH_METRICS_ENDPOINT=//p' "$run/credentials.env")
tls_ca=$(sed -n 's/^TRAINMESH_TLS_CA=//p' "$run/credentials.env")
[ -n "$tls_ca" ] || fail "tools/up ran the mesh without TLS"
summary=$(/usr/bin/python3 "$root/tests/e2e/grpc_client.py" "$stubs" "$jobs_endpoint" "$metrics_endpoint" "$key" 20 "$tls_ca") \
  || fail "grpcio client (agent log: $(tail -5 "$run/agent1.log"))"
id=$(echo "$summary" | field "['job']")
echo "$summary" | grep -q '"RUNNING"' || fail "the watch never saw RUNNING: $summary"
wait "$agent_pid" || fail "curl agent exited $?: $(tail -5 "$run/agent1.log")"
grep -q "job $id completed" "$run/agent1.log" || fail "agent log: $(cat "$run/agent1.log")"

# The same job over REST: metrics, and the agent that ran it.
[[ $(http GET "/v1/jobs/$id/metrics?names=train/loss") == "200 "*'"totalPoints":"20"'* ]] \
  || fail "REST metrics: $(http GET "/v1/jobs/$id/metrics?names=train/loss")"
[[ $(http GET "/v1/jobs/$id") == "200 "*'"state":"COMPLETED"'* ]] || fail "REST get"

# --- Its history as Server-Sent Events, then resumed after event 2.
curl -sSN "${auth[@]}" -H 'Accept: text/event-stream' "$gateway/v1/jobs/$id:watch" >"$run/sse" \
  || fail "SSE curl exited $?"
head -n 1 "$run/sse" | grep -qx "id: 1" || fail "SSE starts: $(head -3 "$run/sse")"
grep -q '^data: {.*"state":"COMPLETED"' "$run/sse" || fail "no COMPLETED event: $(cat "$run/sse")"
[ "$(tail -n 3 "$run/sse" | head -n 2 | tr '\n' '|')" = "event: end|data: {}|" ] || fail "SSE end: $(tail -3 "$run/sse")"
events=$(grep -c '^id: ' "$run/sse")
curl -sSN "${auth[@]}" -H 'Accept: text/event-stream' -H 'Last-Event-ID: 2' "$gateway/v1/jobs/$id:watch" \
  >"$run/sse2"
head -n 1 "$run/sse2" | grep -qx "id: 3" || fail "resume starts: $(head -3 "$run/sse2")"
[ "$(grep -c '^id: ' "$run/sse2")" = $((events - 2)) ] || fail "resume sent $(grep -c '^id: ' "$run/sse2") of $events"
# NDJSON: one {"result": event} per line.
curl -sSN "${auth[@]}" -H 'Accept: application/x-ndjson' "$gateway/v1/jobs/$id:watch" >"$run/ndjson"
[ "$(grep -c '^{"result":{"jobId":"'"$id"'"' "$run/ndjson")" = "$events" ] || fail "NDJSON: $(head -3 "$run/ndjson")"

# --- Cancel over REST reaches the curl agent through its heartbeat.
TRAINMESH_GATEWAY=$gateway TRAINMESH_AGENT_KEY=$agent_key AGENT_NAME=curl-two AGENT_JOBS=1 AGENT_STEPS=100000 \
  "$root/examples/curl-agent.sh" 2>"$run/agent2.log" &
agent_pid=$!
created=$(http POST /v1/jobs '{"model": "mlp-policy", "datasetUrl": "synthetic://reach", "hyperparameters": {"steps": 100}}')
[[ $created == "200 "* ]] || fail "REST submit: $created"
long=$(echo "${created#200 }" | field "['id']")
for _ in $(seq 1 200); do
  [[ $(http GET "/v1/jobs/$long") == *'"state":"RUNNING"'* ]] && break
  sleep 0.1
done
[[ $(http GET "/v1/jobs/$long") == *'"state":"RUNNING"'* ]] || fail "never RUNNING: $(http GET "/v1/jobs/$long")"
# trainctl follows it meanwhile: the training log live (logs -f), and a
# progress bar redrawn in place when watch writes to a terminal.
tc logs "$long" -f >"$run/logs-f" 2>&1 &
logs_pid=$!
script -qec "$root/tools/trainctl watch $long" /dev/null >"$run/watch-tty" 2>&1 &
watch_pid=$!
for _ in $(seq 1 300); do
  grep -q "step 5 loss" "$run/logs-f" && grep -q "RUNNING \[#*-*\] .*step [0-9]*/100000" "$run/watch-tty" && break
  sleep 0.1
done
grep -q "step 5 loss" "$run/logs-f" || fail "logs -f shows no live lines: $(tail -3 "$run/logs-f")"
grep -q "RUNNING \[#*-*\] .*step [0-9]*/100000" "$run/watch-tty" || fail "no progress bar: $(tail -c 300 "$run/watch-tty")"
grep -q $'\r\e\[K' "$run/watch-tty" || fail "the bar is not redrawn in place"
[[ $(http POST "/v1/jobs/$long:cancel" '{"reason": "from curl"}') == "200 "* ]] || fail "REST cancel"
rc=0; wait "$logs_pid" || rc=$?
[ $rc = 3 ] || fail "logs -f exited $rc for a cancelled job: $(tail -3 "$run/logs-f")"
tail -n 1 "$run/logs-f" | grep -q "(job CANCELLED)" || fail "logs -f end: $(tail -3 "$run/logs-f")"
rc=0; wait "$watch_pid" || rc=$?
[ $rc = 3 ] || fail "watch exited $rc for a cancelled job"
wait "$agent_pid" || fail "curl agent exited $?: $(tail -5 "$run/agent2.log")"
grep -q "job $long cancelled at step" "$run/agent2.log" || fail "agent did not see the cancel: $(tail -5 "$run/agent2.log")"
tc watch "$long" >/dev/null 2>&1 || true
[[ $(http GET "/v1/jobs/$long") == *'"state":"CANCELLED"'* ]] || fail "not CANCELLED: $(http GET "/v1/jobs/$long")"

# --- An error after the first byte is the stream's last event: the jobs
# service drains (SIGTERM) under an open watch, which ends UNAVAILABLE.
queued=$(http POST /v1/jobs '{"model": "mlp-policy", "datasetUrl": "synthetic://reach"}')
queued=$(echo "${queued#200 }" | field "['id']")
curl -sSN "${auth[@]}" -H 'Accept: text/event-stream' "$gateway/v1/jobs/$queued:watch" >"$run/cut" 2>&1 &
stream_pid=$!
for _ in $(seq 1 100); do grep -q '^id: 1' "$run/cut" && break; sleep 0.1; done
grep -q '^id: 1' "$run/cut" || fail "stream before the jobs service stops: $(cat "$run/cut")"
kill -TERM "$(cat "$run/pids/jobs.pid")"
wait "$stream_pid" || fail "curl $? on a stream that ended with an error event"
grep -A1 '^event: error' "$run/cut" | grep -q '^data: {"code":14' || fail "no error event: $(tail -3 "$run/cut")"

# --- SIGTERM drain of the gateway: an open stream (metrics of the queued
# job: nothing to say yet) ends with its final chunk, so curl exits 0
# instead of reporting a cut transfer.
curl -sSN "${auth[@]}" -H 'Accept: text/event-stream' "$gateway/v1/jobs/$queued/metrics:stream" \
  >"$run/drained" 2>&1 &
stream_pid=$!
for _ in $(seq 1 100); do
  curl -s "$gateway/metrics" | grep -q '^trainmesh_gateway_open_streams 1$' && break
  sleep 0.1
done
curl -s "$gateway/metrics" | grep -q '^trainmesh_gateway_open_streams 1$' || fail "the stream did not open"
"$root/tools/down" >/dev/null
wait "$stream_pid" || fail "the stream was cut at shutdown (curl $?): $(tail -3 "$run/drained")"
grep -q '"msg":"draining"' "$run/logs/gateway.log" || fail "no drain logged"
no_sanitizer_findings
echo "rest_test: OK"
