# What the shell tools and the end-to-end tests share; source it:
#   . "$root/tools/lib.sh"
#   free_port [PREFERRED]   PREFERRED when it is free now, else any free port
#   until_ok SECONDS CMD... polls CMD every 0.1 s until it succeeds; 1 on deadline
#   await_healthy TRAINCTL ENDPOINT PID [TRAINCTL-ARG...]
#                           until the gRPC service at ENDPOINT reports SERVING
#                           (60 s at most); 1 when process PID exits first or
#                           the time is up
#   start_service NAME LOG PORT CMD [ARG...]
#                           how tools/up and tools/bench start a service: runs
#                           CMD ARG... --listen=127.0.0.1:PORT in the background
#                           (output appended to LOG), sets service_pid, waits
#                           until it is healthy (with $trainctl, and
#                           --tls-ca $health_ca when that is set); when it is
#                           not, stops it, prints LOG's tail and returns 1

free_port() {
  python3 - "${1:-0}" <<'PY'
import socket, sys
want = int(sys.argv[1])
for port in dict.fromkeys((want, 0)):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(s.getsockname()[1])
        break
    except OSError:
        continue
    finally:
        s.close()
PY
}

until_ok() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

await_healthy() {
  local trainctl=$1 endpoint=$2 pid=$3 deadline=$((SECONDS + 60))
  shift 3
  until "$trainctl" health --endpoint "$endpoint" --timeout 2s "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.1
  done
}

start_service() {
  local name=$1 log=$2 port=$3
  shift 3
  "$@" --listen="127.0.0.1:$port" >>"$log" 2>&1 &
  service_pid=$!
  if await_healthy "$trainctl" "127.0.0.1:$port" "$service_pid" ${health_ca:+--tls-ca "$health_ca"}; then
    return 0
  fi
  kill "$service_pid" 2>/dev/null || true
  echo "the $name service did not become healthy; its log:" >&2
  tail -n 20 "$log" >&2
  return 1
}
