#!/usr/bin/env bash
# The container images, run the way Kubernetes runs them: each binary from its
# own image (tools/images builds them), as the unprivileged user, services on
# a read-only root filesystem with no capabilities, configured through
# TRAINMESH_* environment variables like the ConfigMap does, one artifact
# volume shared by jobs and the trainer. Against a throwaway PostgreSQL:
#   1. every service image migrates its schema with --migrate_only and exits 0
#      (the trainmesh-migrate Job); auth bootstrap makes the keys;
#   2. auth, metrics, scheduler, jobs, a trainer and the gateway start; the
#      gateway's /readyz sees every backend healthy;
#   3. a job submitted over REST trains on the trainer image to COMPLETED
#      (its SSE watch ends with event: end), its model downloads, its loss
#      curve is queryable, the owner's inbox has its news; the gateway image
#      serves the dashboard;
#   4. every container stops on SIGTERM with exit status 0 (graceful drain).
#
#   tests/images/smoke_test.sh      (after tools/images; same environment:
#                                    TRAINMESH_CONTAINER_ENGINE, _REPOSITORY, _TAG)
# Needs curl and PostgreSQL on this machine, nothing built here.
set -eu
. "$(dirname "$0")/../e2e/lib.sh"

engine=${TRAINMESH_CONTAINER_ENGINE:-$(command -v docker >/dev/null && docker info >/dev/null 2>&1 \
  && echo docker || echo podman)}
repository=${TRAINMESH_IMAGE_REPOSITORY:-ghcr.io/trainmesh}
tag=${TRAINMESH_IMAGE_TAG:-$(sed -n 's/^ *newTag: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' \
  "$root/k8s/base/kustomization.yaml" | head -n 1)}
image() { echo "$repository/$1:$tag"; }
for name in auth jobs scheduler metrics gateway trainer; do
  $engine image inspect "$(image "$name")" >/dev/null 2>&1 || fail "no image $(image "$name"): run tools/images"
done

run=$(mktemp -d "${TMPDIR:-/tmp}/trainmesh-images.XXXXXX")
prefix=tm-smoke-$$
cleanup() {
  $engine ps -aq --filter "name=^$prefix-" | xargs -r $engine rm -f >/dev/null 2>&1 || true
  "$root/tools/pg" stop "$run/pg" --immediate >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$run"
}
trap cleanup EXIT

# The volumes the pods mount, owned by the image's user (uid 10001).
mkdir -p "$run/artifacts" "$run/work" "$run/secrets" "$run/logs"
chown 10001:10001 "$run/artifacts" "$run/work" "$run/secrets" 2>/dev/null || chmod 0777 "$run/artifacts" "$run/work" "$run/secrets"
chmod a+x "$run"

admin_dsn=$("$root/tools/pg" start "$run/pg" --tcp --fast)
port=${admin_dsn##*port=}
psql "$admin_dsn" -qc "CREATE DATABASE trainmesh" >/dev/null
dsn="postgresql://postgres@127.0.0.1:$port/trainmesh"

auth_port=$(free_port); jobs_port=$(free_port); scheduler_port=$(free_port)
metrics_port=$(free_port); trainer_port=$(free_port); gateway_port=$(free_port)
# What the ConfigMap holds, with this machine's addresses (host network).
config=(-e TRAINMESH_LOG_LEVEL=info -e TRAINMESH_DRAIN_TIMEOUT=20s
        -e "TRAINMESH_AUTH_ENDPOINT=127.0.0.1:$auth_port" -e "TRAINMESH_JOBS_ENDPOINT=127.0.0.1:$jobs_port"
        -e "TRAINMESH_SCHEDULER_ENDPOINT=127.0.0.1:$scheduler_port"
        -e "TRAINMESH_METRICS_ENDPOINT=127.0.0.1:$metrics_port"
        -e TRAINMESH_ARTIFACT_ROOT=/var/lib/trainmesh/artifacts)
volumes=(-v "$run/artifacts:/var/lib/trainmesh/artifacts")
# A service pod: unprivileged, no capabilities, nothing writable but its volumes.
locked=(--read-only --read-only-tmpfs=false --cap-drop ALL --security-opt no-new-privileges)
[ "${engine##*/}" = docker ] && locked=(--read-only --cap-drop ALL --security-opt no-new-privileges)

# --- 1. Migrations (the trainmesh-migrate Job), then the keys.
for name in auth jobs scheduler metrics; do
  $engine run --rm --network host "${locked[@]}" -e "TRAINMESH_DATABASE_URL=$dsn" "$(image "$name")" \
    --migrate_only >"$run/logs/migrate-$name.log" 2>&1 || fail "$name --migrate_only: $(tail -5 "$run/logs/migrate-$name.log")"
done
for schema in auth jobs scheduler metrics; do
  [ "$(psql "$dsn" -tAc "SELECT count(*) FROM pg_tables WHERE schemaname = '$schema'")" -gt 0 ] \
    || fail "no tables in schema $schema after the migrations"
done
$engine run --rm --network host "${locked[@]}" -v "$run/secrets:/secrets" -e "TRAINMESH_DATABASE_URL=$dsn" \
  "$(image auth)" bootstrap --admin=dev --password_file=/secrets/dev-password --credentials_out=/secrets/keys.env \
  >"$run/logs/bootstrap.log" 2>&1 || fail "auth bootstrap: $(tail -5 "$run/logs/bootstrap.log")"
key=$(sed -n 's/^TRAINMESH_API_KEY=//p' "$run/secrets/keys.env")
service_key=$(sed -n 's/^TRAINMESH_SERVICE_API_KEY=//p' "$run/secrets/keys.env")
agent_key=$(sed -n 's/^TRAINMESH_AGENT_API_KEY=//p' "$run/secrets/keys.env")
[[ $key == tm_* && $service_key == tm_* && $agent_key == tm_* ]] || fail "keys: $(cat "$run/secrets/keys.env")"

# --- 2. The mesh.
# start NAME PORT [ENGINE OPTIONS...] -- [ARGS...]
start() {
  local name=$1 listen=$2 opts=() args=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  $engine run -d --name "$prefix-$name" --network host "${config[@]}" \
    -e "TRAINMESH_METRICS_LISTEN=127.0.0.1:$(free_port)" -e "TRAINMESH_SERVICE_API_KEY=$service_key" \
    "${opts[@]}" "$(image "$name")" --listen="127.0.0.1:$listen" "${args[@]}" >/dev/null \
    || fail "$name did not start"
}
db=(-e "TRAINMESH_DATABASE_URL=$dsn")
start auth "$auth_port" "${locked[@]}" "${db[@]}"
start metrics "$metrics_port" "${locked[@]}" "${db[@]}"
start scheduler "$scheduler_port" "${locked[@]}" "${db[@]}"
start jobs "$jobs_port" "${locked[@]}" "${db[@]}" "${volumes[@]}"
# The trainer pod: writable root (script jobs), its work volume, the agent key.
start trainer "$trainer_port" --cap-drop ALL --security-opt no-new-privileges "${volumes[@]}" \
  -v "$run/work:/var/lib/trainmesh/work" -e "TRAINMESH_AGENT_API_KEY=$agent_key" -e TRAINMESH_NAME=smoke-trainer \
  -- --device=cpu --slots=1 --work_root=/var/lib/trainmesh/work --allow_scripts=false
$engine run -d --name "$prefix-gateway" --network host "${config[@]}" "${locked[@]}" \
  -e "TRAINMESH_METRICS_LISTEN=127.0.0.1:$(free_port)" "$(image gateway)" \
  --http_listen="127.0.0.1:$gateway_port" --web_root=/usr/share/trainmesh/web >/dev/null || fail "gateway did not start"
gateway=http://127.0.0.1:$gateway_port

logs() {
  local name
  for name in auth metrics scheduler jobs trainer gateway; do
    $engine logs "$prefix-$name" >"$run/logs/$name.log" 2>&1 || true
  done
}
# /readyz answers 200 once every backend's gRPC health check says SERVING.
for _ in $(seq 1 300); do
  curl -sf "$gateway/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "$gateway/readyz" >/dev/null \
  || { logs; fail "gateway not ready: $(curl -s "$gateway/readyz") $(tail -n 3 "$run"/logs/*.log)"; }

auth=(-H "Authorization: Bearer $key")
for _ in $(seq 1 300); do
  curl -s "${auth[@]}" "$gateway/v1/agents" | grep -q '"smoke-trainer"' && break
  sleep 0.2
done
curl -s "${auth[@]}" "$gateway/v1/agents" | grep -q '"smoke-trainer"' || { logs; fail "the trainer never registered: $(tail -5 "$run/logs/trainer.log")"; }

# --- 3. A job, trained in the trainer image.
created=$(curl -sS "${auth[@]}" -H 'Content-Type: application/json' --data \
  '{"model": "mlp-policy", "datasetUrl": "synthetic://reach", "hyperparameters": {"steps": 60}}' "$gateway/v1/jobs")
id=$(echo "$created" | field "['id']") || fail "submit: $created"
curl -sSN --max-time 300 "${auth[@]}" -H 'Accept: text/event-stream' "$gateway/v1/jobs/$id:watch" >"$run/watch.sse" \
  || { logs; fail "watch: curl $?"; }
grep -q '^data: {.*"state":"COMPLETED"' "$run/watch.sse" || { logs; fail "not COMPLETED: $(tail -5 "$run/watch.sse") $(tail -5 "$run/logs/trainer.log")"; }
grep -qx 'event: end' "$run/watch.sse" || fail "the watch did not end cleanly"
series=$(curl -sS "${auth[@]}" "$gateway/v1/jobs/$id/metrics?names=train_loss")
points=$(echo "$series" | field "['series'][0]['totalPoints']") || fail "train_loss: $series"
[ "$points" -ge 10 ] || fail "train_loss has $points points"
curl -sSf "${auth[@]}" -o "$run/model.bin" "$gateway/v1/jobs/$id/artifact" || fail "artifact download"
# The owner's inbox says it started and completed.
inbox=$(curl -sS "${auth[@]}" "$gateway/v1/notifications")
[ "$(echo "$inbox" | python3 -c 'import json,sys; print(" ".join(n["kind"] for n in json.load(sys.stdin)["notifications"]))')" \
  = "COMPLETED STARTED" ] || fail "notifications: $inbox"
[ "$(stat -c %s "$run/model.bin")" -gt 1000 ] || fail "artifact is $(stat -c %s "$run/model.bin") bytes"
ls "$run/artifacts" | grep -q . || fail "nothing in the shared artifact volume"
curl -sSf "$gateway/" | grep -q '<div id="app"\|<script' || fail "the gateway image serves no dashboard"
# Every service's Prometheus endpoint answers inside its image.
curl -sf "$gateway/metrics" | grep -q '^trainmesh_gateway_requests_total' || fail "gateway /metrics"

# The trainer image multiplies on OpenBLAS, not the reference BLAS (~20x
# slower): the library LibTorch loads, not the logged speed (noisy here).
logs
gflops=$(grep -o '"matmul_gflops":[0-9.]*' "$run/logs/trainer.log" | head -n 1 | cut -d: -f2)
[ -n "$gflops" ] || fail "the trainer logged no matmul speed: $(head -5 "$run/logs/trainer.log")"
blas=$($engine run --rm --entrypoint readlink "$(image trainer)" -f /usr/lib/x86_64-linux-gnu/libblas.so.3)
[[ $blas == *openblas* ]] || fail "the trainer image's BLAS is $blas ($gflops GFLOP/s)"

# --- 4. SIGTERM: every container drains and exits 0.
for name in gateway trainer jobs scheduler metrics auth; do
  $engine stop -t 30 "$prefix-$name" >/dev/null
  status=$($engine inspect -f '{{.State.ExitCode}}' "$prefix-$name")
  [ "$status" = 0 ] || { logs; fail "$name exited $status on SIGTERM: $(tail -5 "$run/logs/$name.log")"; }
done
grep -q '"msg":"draining"' "$run/logs/gateway.log" 2>/dev/null || $engine logs "$prefix-gateway" 2>&1 | grep -q draining \
  || fail "the gateway logged no drain"
echo "images smoke test: OK ($(image '*'): job $id COMPLETED, $points loss points, model $(stat -c %s "$run/model.bin") bytes, matmul $gflops GFLOP/s)"
