// The gRPC server bootstrap every service uses: listening address from flags,
// health checking (grpc.health.v1), server reflection, message size limits and
// a graceful drain on SIGTERM/SIGINT: health turns NOT_SERVING, streams are
// asked to end, in-flight RPCs get `drain_timeout` to finish, then the rest are
// cancelled. Every RPC is counted and timed (server_metrics.h); with
// --metrics_listen the process's Prometheus metrics are served over HTTP at
// /metrics on that address.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "libs/server/stream_guard.h"
#include "libs/telemetry/metrics.h"

namespace trainmesh::httpd {
class HttpServer;
}  // namespace trainmesh::httpd

namespace trainmesh::server {

struct ServerOptions {
  // host:port; port 0 picks a free one (tests).
  std::string address = "0.0.0.0:0";
  int max_message_bytes = 16 << 20;
  absl::Duration drain_timeout = absl::Seconds(20);
  // host:port of the HTTP /metrics endpoint; empty: none.
  std::string metrics_address;
  // Where RPC metrics go and what /metrics shows.
  telemetry::Registry* registry = &telemetry::Registry::Default();
  // Count and time every RPC (server_metrics.h).
  bool rpc_metrics = true;
};

class GrpcServer {
 public:
  explicit GrpcServer(ServerOptions options);
  ~GrpcServer();

  // Registers a (callback) service; call before Start(). `name` is its full
  // proto name, reported SERVING by health checks once started.
  void AddService(grpc::Service* service, const std::string& name);

  // Runs first during Shutdown(), before gRPC waits for in-flight calls, so
  // long-lived streams can finish with a status telling clients to resume.
  void OnDrain(std::function<void()> hook);

  // Binds and starts. UNAVAILABLE when the address cannot be bound.
  absl::Status Start();
  int port() const { return port_; }
  // The /metrics endpoint's port (0: none); it also serves /healthz (200
  // while serving, 503 once draining) for probes that cannot speak TLS gRPC.
  int metrics_port() const;

  // Health NOT_SERVING, drain hooks, then Shutdown with the drain deadline.
  // Idempotent.
  void Shutdown();

  // Blocks until SIGTERM or SIGINT arrives (see BlockTerminationSignals).
  // Returns the signal number.
  static int WaitForTerminationSignal();

 private:
  ServerOptions options_;
  std::vector<std::pair<grpc::Service*, std::string>> services_;
  std::vector<std::function<void()>> drain_hooks_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<httpd::HttpServer> metrics_http_;
  int port_ = 0;
  bool shut_down_ = false;
  std::atomic<bool> serving_{false};
};

// Blocks SIGTERM and SIGINT in this thread and every thread it starts later;
// call first thing in main() so WaitForTerminationSignal can take them.
void BlockTerminationSignals();

// Logs `what` with `status` as an error and exits 1 (bad configuration, a
// database that never came up).
[[noreturn]] void Fail(const std::string& what, const absl::Status& status);

}  // namespace trainmesh::server
