#!/usr/bin/env bash
# Jobs that really train, against the whole mesh started by tools/up: every
# recipe to COMPLETED with metrics and a model (loaded from Python as the README
# shows), cancel while running, kill -9 of the trainer (requeued, resumed from a
# checkpoint), a stopped "zombie" trainer whose reports are refused after the
# requeue, a scheduler restart mid-job, SIGTERM of a trainer mid-job (it
# checkpoints and releases; the other agent resumes), two users' agents kept apart, and clear
# errors for a bad dataset and a failing script.
# No pipefail: `cmd | grep -q` may end cmd early with SIGPIPE, which is fine here.
set -eu
. "$(dirname "$0")/lib.sh"
e2e_start train JOBS AUTH METRICS SCHEDULER TRAINER GATEWAY
# Short leases so lost agents are noticed in seconds; frequent heartbeats (a
# cancel arrives with the next one) and progress reports.
export TRAINMESH_LEASE=3s TRAINMESH_LEASE_GRACE=2s TRAINMESH_HEARTBEAT_INTERVAL=500ms
export TRAINMESH_PROGRESS_REPORT_INTERVAL=500ms TRAINMESH_ACQUIRE_WAIT=5s
export TRAINMESH_API_KEY_CACHE_TTL=1s
# One job at a time per agent, on one core: two agents share this machine.
export TRAINMESH_THREADS=1

cleanup() {
  for f in "$run"/pids/*.pid; do [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null || true; done
  "$root/tools/down" >/dev/null 2>&1 || true
  rm -rf "$run"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

fail() {
  echo "FAIL: $*" >&2
  for f in "$run"/logs/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
  exit 1
}
# Here `field` takes an expression over j, the JSON read from stdin.
field() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
job() { tc get "$1" -o json ${2:+--token "$2"}; }
state() { job "$1" "${2:-}" | field "j.get('state', '')"; }

is_state() { [ "$(state "$1" "${3:-}")" = "$2" ]; }
# wait_state ID STATE [TOKEN]: the job reaches STATE (120 s at most).
wait_state() { until_ok 120 is_state "$@" || fail "job $1 is $(state "$1" "${3:-}"), not $2"; }
has_checkpoint() { compgen -G "$run/artifacts/$1/checkpoint-*.pt" >/dev/null; }
in_log() { grep -q -- "$2" "$run/logs/$1.log"; }

# gone PID: the process has exited (a zombie child counts as gone).
gone() { [ ! -e "/proc/$1" ] || grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
# start_trainer NAME KEY: another agent beside the one tools/up started; its
# pid in pids/NAME.pid, so tools/down stops it too.
start_trainer() {
  # The key from the environment, never the command line; the trainer's own
  # TLS certificate, as tools/up gives its trainer.
  TRAINMESH_AGENT_API_KEY="$2" TRAINMESH_TLS_CA="$run/tls/ca.pem" TRAINMESH_TLS_CERT="$run/tls/trainer.pem" \
    TRAINMESH_TLS_KEY="$run/tls/trainer.key" \
  "$TRAINMESH_BUILD_DIR/services/trainer/trainer" --listen="127.0.0.1:$(free_port)" \
    --name="$1" --state_file="$run/$1.agent" \
    --scheduler_endpoint="127.0.0.1:$TRAINMESH_SCHEDULER_PORT" \
    --metrics_endpoint="127.0.0.1:$TRAINMESH_METRICS_PORT" --artifact_root="$run/artifacts" \
    --data_root="$run/data" --work_root="$run/work" >>"$run/logs/$1.log" 2>&1 &
  echo $! >"$run/pids/$1.pid"
}
# restart NAME: stops a service tools/up started (TERM, or KILL as $2) and
# starts it again with the same command line and environment.
restart() {
  local name=$1 signal=${2:-TERM} pid
  pid=$(cat "$run/pids/$name.pid")
  local -a cmd env
  mapfile -d '' cmd <"/proc/$pid/cmdline"
  mapfile -d '' env <"/proc/$pid/environ"
  kill "-$signal" "$pid"
  until_ok 60 gone "$pid" || fail "$name did not stop"
  env -i "${env[@]}" "${cmd[@]}" >>"$run/logs/$name.log" 2>&1 &
  echo $! >"$run/pids/$name.pid"
  local listen
  listen=$(printf '%s\n' "${cmd[@]}" | sed -n 's/^--listen=//p')
  until_ok 60 tc health --endpoint "$listen" --timeout 1s >/dev/null 2>&1 \
    || fail "$name did not come back"
}

"$root/tools/up" --detach >"$run/up.out" || { cat "$run/up.out"; fail "tools/up"; }
grep -q "trainmesh is up" "$run/up.out" || fail "tools/up did not report the mesh up"
set -a; . "$run/keys.env"; set +a
# The trainer says at start-up (not at exit) what it computes on and how fast.
in_log trainer '"msg":"compute".*"matmul_gflops"' || fail "no compute line at start-up"
agent_a=$(cat "$run/trainer.agent")
[[ $agent_a =~ ^[0-9a-f-]{36}$ ]] || fail "no agent id kept in the state file"
until_ok 30 eval "tc agents -o json | grep -q '$agent_a'" || fail "the agent is not listed"
[ "$(tc agents -o json | field "[a['state'] for a in j['agents'] if a['id']=='$agent_a'][0]")" = ONLINE ] \
  || fail "agent not online: $(tc agents -o json)"

# ---- every recipe trains to COMPLETED, with metrics and a model ------------
printf 'the quick brown fox jumps over the lazy dog. %.0s' $(seq 1 400) >"$run/data/fox.txt"
python3 - "$run/data/iris.csv" <<'PY'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write("a,b,c,species\n")
    for i in range(300):
        k = i % 3
        f.write(f"{k + random.gauss(0, .3):.3f},{2 * k + random.gauss(0, .3):.3f},{random.random():.3f},s{k}\n")
PY
policy=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=300 -p hidden_sizes='[64,64]')
tabular=$(tc submit --model tabular --dataset file:///iris.csv -p target_column=species -p steps=200)
lm=$(tc submit --model lora-lm --dataset file:///fox.txt -p steps=60 -p d_model=32 -p n_layers=1 \
       -p n_heads=2 -p context_length=32 -p warmup_steps=5 -p learning_rate=0.003)
script=$(tc submit --model script --dataset synthetic://none -p command=python3 -p args='["-c",
"import json, os\nfor s in range(1, 6): print(json.dumps({\"step\": s, \"metrics\": {\"train_loss\": 1 / s}}))\nprint(\"plain line\")\nopen(os.path.join(os.environ[\"TRAINMESH_OUTPUT_DIR\"], \"weights.txt\"), \"w\").write(\"42\")"]' \
       -p total_steps=5)
for id in "$policy" "$tabular" "$lm" "$script"; do wait_state "$id" COMPLETED; done

points() { tc metrics "$1" --name "$2" -o json | field "sum(len(s.get('points', [])) for s in j.get('series', []))"; }
[ "$(points "$policy" train_loss)" -ge 100 ] || fail "mlp-policy train_loss points: $(points "$policy" train_loss)"
[ "$(points "$policy" val_loss)" -ge 10 ] || fail "mlp-policy val_loss"
[ "$(points "$tabular" val_accuracy)" -ge 1 ] || fail "tabular val_accuracy"
[ "$(points "$lm" val_perplexity)" -ge 1 ] || fail "lora-lm val_perplexity"
[ "$(points "$script" train_loss)" = 5 ] || fail "script train_loss points"
tc logs "$script" | grep -q "plain line" || fail "script stdout not in the log"
tc metrics "$policy" | grep -q train_loss || fail "metrics summary"
acc=$(tc metrics "$tabular" --name test_accuracy -o json | field "j['series'][0]['points'][-1]['value']")
python3 -c "import sys; sys.exit(0 if float('$acc') > 0.8 else 1)" || fail "tabular test accuracy $acc"
[ "$(job "$policy" | field "j['progress']['step']")" = 300 ] || fail "progress step"
# compare: the finished jobs ranked by their best train_loss, with the settings that differ
tc compare "$policy" "$tabular" "$script" --metric train_loss -o json | python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert sorted(r["job"] for r in rows) == sorted(sys.argv[1:]), rows
best = [r["best"] for r in rows]
assert best == sorted(best), best
assert all(r["metric"] == "train_loss" and "model" in r["settings"] for r in rows), rows
' "$policy" "$tabular" "$script" || fail "compare: $(tc compare "$policy" "$tabular" "$script" --metric train_loss)"
# the table: by default ranked by val_loss; the script job has none and comes last
table=$(tc compare "$policy" "$tabular" "$script")
echo "$table" | head -n 1 | grep -q "^#  JOB .* model .* val_loss (min)  LAST$" || fail "compare header: $table"
echo "$table" | tail -n 1 | grep -Eq "^3  ${script:0:8}  COMPLETED .* -  +-$" || fail "compare order: $table"
echo "$table" | grep -q "^[12]  ${policy:0:8}  COMPLETED  relu " || fail "compare settings: $table"
set +e
tc compare -l nothing=here >/dev/null 2>&1; rc=$?
set -e
[ $rc = 1 ] || fail "compare of no jobs exited $rc"
# Prometheus: the trainer counts steps and finished attempts, the metrics
# service what it ingested, the scheduler its claims (tools/up lists them).
sample() {  # sample SERVICE SERIES -> its value (0 when absent)
  local target
  target=$(sed -n "s/^$1 //p" "$run/prometheus-targets")
  curl -sf "http://$target/metrics" | awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'
}
[ "$(sample trainer trainmesh_trainer_steps_total)" -ge 1 ] || fail "trainer steps metric"
[ "$(sample trainer 'trainmesh_trainer_attempts_total{outcome="completed"}')" -ge 1 ] || fail "trainer attempts metric"
[ "$(sample trainer trainmesh_trainer_slots)" = 1 ] || fail "trainer slots metric"
[ "$(sample metrics trainmesh_ingest_points_total)" -ge 300 ] || fail "ingest metric: $(sample metrics trainmesh_ingest_points_total)"
[ "$(sample scheduler trainmesh_scheduler_claims_total)" -ge 4 ] || fail "claims metric"

# LoRA on the base model just trained: only the adapters train
tune=$(tc submit --model lora-lm --dataset file:///fox.txt -p base_job="$lm" -p steps=30 -p lora_rank=4)
wait_state "$tune" COMPLETED
tc logs "$tune" | grep -q "trainable" || fail "no parameter count logged"
total=$(tc logs "$tune" | grep -o "model: [0-9]* parameters, [0-9]* trainable" | head -n 1)
[ -n "$total" ] || fail "parameter line: $(tc logs "$tune" | head -20)"
set -- $total
[ "$4" -lt "$2" ] || fail "LoRA trained every parameter: $total"

# download: the files, checked, and the README's Python snippet loads the model
tc download "$policy" -o "$run/model" >/dev/null || fail "download"
[ -s "$run/model/model.pt" ] && [ -s "$run/model/model.json" ] || fail "downloaded files"
[ "$(field "j['recipe']" <"$run/model/model.json")" = mlp-policy ] || fail "model.json"
tc download "$script" -o "$run/script-out" --name weights.txt >/dev/null || fail "script artifact"
[ "$(cat "$run/script-out/weights.txt")" = 42 ] || fail "script output"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  sed -n '/^### Load a model in Python/,/^### /p' "$root/README.md" \
    | sed -n '/^```python$/,/^```$/p' | sed '1d;$d' >"$run/load.py"
  [ -s "$run/load.py" ] || fail "no Python snippet in the README"
  (cd "$run" && /usr/bin/python3 load.py) >"$run/load.out" 2>&1 || fail "snippet: $(cat "$run/load.out")"
  grep -q "tensor(\[\[" "$run/load.out" || fail "snippet printed $(cat "$run/load.out")"
fi

# ---- clear errors: a bad dataset, a failing script --------------------------
bad=$(tc submit --model mlp-policy --dataset file:///missing.csv)
wait_state "$bad" FAILED
job "$bad" | field "j['errorLog']" | grep -q "does not exist" || fail "bad dataset: $(job "$bad")"
[ "$(job "$bad" | field "j['errorKind']")" = ERROR_KIND_USER ] || fail "bad dataset kind"
broken=$(tc submit --model script --dataset synthetic://none -p command=sh \
           -p args='["-c", "echo loading; echo \"KeyError: learning_rte\" >&2; exit 3"]')
wait_state "$broken" FAILED
err=$(job "$broken" | field "j['errorLog']")
echo "$err" | grep -q "KeyError: learning_rte" || fail "script error log: $err"
echo "$err" | grep -q "exit" || fail "no exit status in: $err"
[ "$(job "$broken" | field "j['errorKind']")" = ERROR_KIND_USER ] || fail "script failure kind"

# The jobs stopped mid-way below run 12000 steps: long enough to still be
# running when the test acts (3000 steps of this model take about 3 s on a
# 2-core VM, less than one progress report and a signal).
# ---- cancel while running: stops at the next heartbeat; then a retry that
# ---- resumes from the cancelled job's checkpoint --------------------------
long=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=12000 -p checkpoint_every=100 \
         -p hidden_sizes='[128,128]' -p batch_size=128)
wait_state "$long" RUNNING
until_ok 60 has_checkpoint "$long" || fail "no checkpoint written"
tc cancel "$long" --reason "enough" >/dev/null
wait_state "$long" CANCELLED
until_ok 30 eval "tc logs $long | grep -q 'cancelled at step'" || fail "the trainer did not stop: $(tc logs "$long")"
step=$(tc logs "$long" | grep -o "cancelled at step [0-9]*" | grep -o "[0-9]*$")
[ "$step" -lt 12000 ] || fail "ran to the end"
again=$(tc retry "$long" --resume)
wait_state "$again" COMPLETED
[ "$(job "$again" | field "j['retryOf']")" = "$long" ] || fail "retry lineage"
from=$(tc logs "$again" | grep -o "resumed from checkpoint at step [0-9]*" | grep -o "[0-9]*$") || true
[ -n "$from" ] && [ "$from" -ge 100 ] || fail "the retry did not resume: $(tc logs "$again" | tail -n 30)"
# the agent is free again: the next job runs
next=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=20)
wait_state "$next" COMPLETED

# ---- kill -9 of the trainer mid-job: requeued, resumed, completed -----------
crash=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=12000 -p checkpoint_every=100 \
          -p hidden_sizes='[128,128]' -p batch_size=128)
wait_state "$crash" RUNNING
until_ok 60 has_checkpoint "$crash" || fail "no checkpoint written"
restart trainer KILL
wait_state "$crash" COMPLETED
[ "$(job "$crash" | field "j['attempt']")" = 2 ] || fail "not a second attempt: $(job "$crash")"
resumed=$(tc logs "$crash" | grep -o "resumed from checkpoint at step [0-9]*" | grep -o "[0-9]*$") || true
[ -n "$resumed" ] && [ "$resumed" -ge 100 ] || fail "attempt 2 did not resume: $(tc logs "$crash")"
tc logs "$crash" | grep -q "stopped renewing its lease on attempt 1" || fail "no requeue reason"
[ "$(field "j['step']" <"$run/artifacts/$crash/model.json")" = 12000 ] || fail "final step"

# ---- scheduler restart mid-job: the job carries on -------------------------
steady=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=2000 -p hidden_sizes='[128,128]' \
           -p batch_size=128)
wait_state "$steady" RUNNING
restart scheduler
wait_state "$steady" COMPLETED
[ "$(job "$steady" | field "j['attempt']")" = 1 ] || fail "the restart cost an attempt: $(job "$steady")"

# ---- a zombie trainer: stopped, its job requeued to another agent, its late
# ---- reports refused -------------------------------------------------------
start_trainer trainer-b "$TRAINMESH_AGENT_API_KEY"
pid_b=$(cat "$run/pids/trainer-b.pid")
until_ok 60 eval "[ -s '$run/trainer-b.agent' ]" || fail "trainer-b did not register"
agent_b=$(cat "$run/trainer-b.agent")
zombie=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=12000 -p checkpoint_every=100 \
           -p hidden_sizes='[128,128]' -p batch_size=128)
wait_state "$zombie" RUNNING
until_ok 60 has_checkpoint "$zombie" || fail "no checkpoint written"
first=$(job "$zombie" | field "j['agentId']")
if [ "$first" = "$agent_a" ]; then frozen=$(cat "$run/pids/trainer.pid"); frozen_log=trainer; other=$agent_b
else frozen=$pid_b; frozen_log=trainer-b; other=$agent_a; fi
kill -STOP "$frozen"
until_ok 60 eval "[ \"\$(job $zombie | field \"j['attempt']\")\" = 2 ]" || fail "not requeued"
wait_state "$zombie" RUNNING
[ "$(job "$zombie" | field "j['agentId']")" = "$other" ] || fail "attempt 2 not on the other agent"
kill -CONT "$frozen"
until_ok 30 in_log "$frozen_log" "no longer lets this attempt run; abandoning it" \
  || fail "the zombie's heartbeat was not refused"
wait_state "$zombie" COMPLETED
[ "$(job "$zombie" | field "j['attempt']")" = 2 ] || fail "zombie attempt won: $(job "$zombie")"
[ "$(field "j['attempt']" <"$run/artifacts/$zombie/model.json")" = 2 ] || fail "the model is the zombie's"

# ---- SIGTERM mid-job (a scale-down or a rollout): the trainer checkpoints,
# ---- releases its job, and the other agent resumes it -----------------------
# No periodic checkpoints: a resume past step 200 comes from the SIGTERM one.
handoff=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=12000 -p checkpoint_every=100000 \
            -p hidden_sizes='[128,128]' -p batch_size=128)
wait_state "$handoff" RUNNING
until_ok 90 eval "[ \"\$(job $handoff | field \"int(j.get('progress', {}).get('step', 0))\")\" -ge 200 ]" \
  || fail "no progress: $(job "$handoff")"
holder=$(job "$handoff" | field "j['agentId']")
if [ "$holder" = "$agent_a" ]; then name=trainer; other=$agent_b; else name=trainer-b; other=$agent_a; fi
pid=$(cat "$run/pids/$name.pid")
mapfile -d '' held_cmd <"/proc/$pid/cmdline"
mapfile -d '' held_env <"/proc/$pid/environ"
kill -TERM "$pid"
until_ok 120 gone "$pid" || fail "$name did not stop on SIGTERM"
in_log "$name" '"msg":"job released"' || fail "$name did not release its job: $(tail -n 5 "$run/logs/$name.log")"
wait_state "$handoff" COMPLETED
[ "$(job "$handoff" | field "j['attempt']")" = 2 ] || fail "not a second attempt: $(job "$handoff")"
[ "$(job "$handoff" | field "j['agentId']")" = "$other" ] || fail "attempt 2 not on the other agent"
resumed=$(tc logs "$handoff" | grep -o "resumed from checkpoint at step [0-9]*" | grep -o "[0-9]*$") || true
[ -n "$resumed" ] && [ "$resumed" -ge 200 ] || fail "attempt 2 did not resume from the SIGTERM checkpoint: $(tc logs "$handoff" | tail -n 20)"
if tc logs "$handoff" | grep -q "stopped renewing its lease"; then fail "the job lost its lease instead of being released"; fi
# The stopped trainer comes back for what follows.
env -i "${held_env[@]}" "${held_cmd[@]}" >>"$run/logs/$name.log" 2>&1 &
echo $! >"$run/pids/$name.pid"
[ "$name" = trainer ] || pid_b=$(cat "$run/pids/trainer-b.pid")

# ---- two users' agents never get each other's jobs -------------------------
tc users create mallory --password mallory-password-1 >/dev/null
mtok=$(tc login mallory --password mallory-password-1 --print-token | tail -n 1)
mkey=$(tc keys create --name m-agent --scope agent --token "$mtok")
pid_a=$(cat "$run/pids/trainer.pid")
kill "$pid_b" "$pid_a"
until_ok 60 gone "$pid_a" && until_ok 60 gone "$pid_b" || fail "dev's agents did not stop"
start_trainer trainer-m "$mkey"
until_ok 60 eval "[ -s '$run/trainer-m.agent' ]" || fail "mallory's agent did not register"
agent_m=$(cat "$run/trainer-m.agent")
mine=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=20)
theirs=$(tc submit --model mlp-policy --dataset synthetic://reach -p steps=20 --token "$mtok")
wait_state "$theirs" COMPLETED "$mtok"
[ "$(job "$theirs" "$mtok" | field "j['agentId']")" = "$agent_m" ] || fail "mallory's job elsewhere"
# dev's job was queued first and mallory's agent asked again since: still queued
[ "$(state "$mine")" = QUEUED ] || fail "dev's job left the queue on mallory's agent: $(job "$mine")"
start_trainer trainer-a "$TRAINMESH_AGENT_API_KEY"
wait_state "$mine" COMPLETED
[ "$(job "$mine" | field "j['agentId']")" != "$agent_m" ] || fail "dev's job ran on mallory's agent"
if tc agents --all -o json | grep -q "$agent_m"; then fail "dev sees mallory's agent"; fi
if tc agents --all -o json --token "$mtok" | grep -q "$agent_a"; then fail "mallory sees dev's agent"; fi
# Everything stops cleanly, and no service reported a sanitizer finding.
"$root/tools/down" >"$run/down.out"
grep -q "stopped trainer-a" "$run/down.out" || fail "trainer did not stop: $(cat "$run/down.out")"
no_sanitizer_findings
echo "e2e train: all checks passed"
