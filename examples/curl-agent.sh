#!/bin/sh
# A trainer agent in POSIX sh with nothing but curl and sed: it speaks to the
# mesh over the gateway's REST API only (outbound HTTPS is all it needs, so it
# works from behind NAT). It registers, long-polls for a job, "trains" it (a
# toy loop here: put your own command in train_step), streams metrics and
# heartbeats, honours cancel, and completes the job.
#
#   TRAINMESH_GATEWAY=https://mesh.example TRAINMESH_AGENT_KEY=tm_... examples/curl-agent.sh
#
# Environment:
#   TRAINMESH_GATEWAY    base URL of the gateway
#   TRAINMESH_AGENT_KEY  an API key with scope "agent" (trainctl keys create --scope agent)
#   AGENT_NAME           the agent's name (default: curl-agent-HOSTNAME)
#   AGENT_RECIPES        comma-separated recipes it runs (default: mlp-policy)
#   AGENT_JOBS           jobs to run before exiting (default: 0 = forever)
#   AGENT_STEPS          steps of the toy loop (default: 20)
set -eu

gateway=${TRAINMESH_GATEWAY:?set TRAINMESH_GATEWAY}
key=${TRAINMESH_AGENT_KEY:?set TRAINMESH_AGENT_KEY}
name=${AGENT_NAME:-curl-agent-$(hostname)}
recipes=${AGENT_RECIPES:-mlp-policy}
jobs_left=${AGENT_JOBS:-0}
steps=${AGENT_STEPS:-20}

log() { echo "curl-agent: $*" >&2; }

# call METHOD PATH BODY [BEARER]: prints the response body; fails on HTTP >= 400.
call() {
  curl -sS --fail-with-body -X "$1" "$gateway$2" -H "Authorization: Bearer ${4:-$key}" \
    -H 'Content-Type: application/json' --data "$3"
}

# field NAME JSON: the first string value of "NAME" in compact JSON.
field() { printf '%s' "$2" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }
# number NAME JSON: the first number (or quoted int64) of "NAME".
number() { printf '%s' "$2" | sed -n "s/.*\"$1\":\"\\{0,1\\}\\([0-9.eE+-]*\\).*/\\1/p" | head -n 1; }

quoted=$(printf '%s' "$recipes" | sed 's/[^,][^,]*/"&"/g')
agent=$(call POST /v1/agents "{\"agent\": {\"name\": \"$name\", \"maxConcurrentJobs\": 1,
  \"capabilities\": {\"deviceType\": \"cpu\", \"cpuCores\": 1, \"recipes\": [$quoted]}}}")
agent_id=$(field id "$agent")
[ -n "$agent_id" ] || { log "registration failed: $agent"; exit 1; }
log "registered as $agent_id"

# A step of "training": replace with the real work. Prints the loss.
train_step() { awk -v s="$1" 'BEGIN { printf "%.6f", 2.0 / (1 + s) }'; }

run() {  # run ASSIGNMENT_JSON
  job_id=$(printf '%s' "$1" | sed -n 's/.*"job":{"id":"\([^"]*\)".*/\1/p')
  token=$(field jobToken "$1")
  attempt=$(number attempt "$1")
  log "running job $job_id (attempt $attempt)"
  step=1
  while [ "$step" -le "$steps" ]; do
    loss=$(train_step "$step")
    call POST "/v1/jobs/$job_id/metrics:batchReport" "{\"batches\": [{\"jobId\": \"$job_id\", \"attempt\": $attempt,
      \"batchSeq\": $step, \"points\": [{\"name\": \"train/loss\", \"step\": $step, \"value\": $loss}],
      \"logs\": [{\"text\": \"step $step loss $loss\"}]}]}" "$token" >/dev/null
    beat=$(call POST "/v1/assignments/$job_id:heartbeat" "{\"jobToken\": \"$token\", \"state\": \"RUNNING\",
      \"progress\": {\"step\": $step, \"totalSteps\": $steps, \"trainLoss\": $loss}}" "$token")
    renewed=$(field jobToken "$beat")
    [ -z "$renewed" ] || token=$renewed
    case $beat in
      *'"cancelRequested":true'*)
        log "job $job_id cancelled at step $step"
        call POST "/v1/assignments/$job_id:release" "{\"jobToken\": \"$token\", \"reason\": \"cancelled\"}" \
          "$token" >/dev/null || true
        return 0 ;;
    esac
    step=$((step + 1))
  done
  call POST "/v1/assignments/$job_id:complete" "{\"jobToken\": \"$token\",
    \"progress\": {\"step\": $steps, \"totalSteps\": $steps, \"fraction\": 1, \"trainLoss\": $loss}}" "$token" >/dev/null
  log "job $job_id completed"
}

done_jobs=0
while :; do
  # Long poll: the gateway holds the request until a job comes or 20 s pass.
  if ! reply=$(call POST "/v1/agents/$agent_id:acquire" '{"wait": "20s"}'); then
    log "acquire failed: $reply; retrying"
    sleep 1
    continue
  fi
  case $reply in
    *'"assignment"'*) run "$reply" ;;
    *) continue ;;
  esac
  done_jobs=$((done_jobs + 1))
  [ "$jobs_left" = 0 ] || [ "$done_jobs" -lt "$jobs_left" ] || break
done
