// trainmesh gateway: REST (+ JSON) for every annotated RPC of the mesh.
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"
#include "libs/http/http_server.h"
#include "libs/log/log.h"
#include "libs/server/grpc_server.h"
#include "services/common/service_main.h"

ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080", "host:port the HTTP server listens on.");
ABSL_FLAG(std::string, jobs_endpoint, "127.0.0.1:7001", "gRPC address of the jobs service.");
ABSL_FLAG(std::string, auth_endpoint, "127.0.0.1:7002", "gRPC address of the auth service.");
ABSL_FLAG(std::string, scheduler_endpoint, "127.0.0.1:7003", "gRPC address of the scheduler.");
ABSL_FLAG(std::string, metrics_endpoint, "127.0.0.1:7004", "gRPC address of the metrics service.");
ABSL_FLAG(int, http_threads, 2, "Threads running HTTP sessions (asynchronous; not one per connection).");
ABSL_FLAG(int64_t, max_body_bytes, 1 << 20, "Largest request body (larger: 413).");
ABSL_FLAG(absl::Duration, read_timeout, absl::Seconds(30), "A client slower than this to send a request is dropped.");
ABSL_FLAG(std::vector<std::string>, cors_origins, {},
          "Browser origins allowed to call the API (comma-separated; * for any).");
ABSL_FLAG(absl::Duration, backend_deadline, absl::Seconds(30), "Deadline of each backend call.");
ABSL_FLAG(std::string, web_root, "",
          "Directory of the dashboard's built files (index.html for app paths); empty: no static files.");
ABSL_FLAG(absl::Duration, sse_heartbeat, absl::Seconds(15),
          "An idle event stream gets a heartbeat comment this often (keeps proxies from closing it).");

int main(int argc, char** argv) {
  using namespace trainmesh;
  service::StartProcess(argc, argv, "gateway",
                       "trainmesh gateway: REST/JSON for the mesh's gRPC services.");
  gateway::GatewayOptions options;
  options.backends = {{"trainmesh.v1.JobService", absl::GetFlag(FLAGS_jobs_endpoint)},
                      {"trainmesh.v1.AuthService", absl::GetFlag(FLAGS_auth_endpoint)},
                      {"trainmesh.v1.SchedulerService", absl::GetFlag(FLAGS_scheduler_endpoint)},
                      {"trainmesh.v1.MetricsService", absl::GetFlag(FLAGS_metrics_endpoint)}};
  options.deadline = absl::GetFlag(FLAGS_backend_deadline);
  options.cors_origins = absl::GetFlag(FLAGS_cors_origins);
  options.heartbeat = absl::GetFlag(FLAGS_sse_heartbeat);
  options.web_root = absl::GetFlag(FLAGS_web_root);
  auto gw = gateway::Gateway::Create(options);
  if (!gw.ok()) {
    TM_LOG(Error, "cannot build routes").With("error", gw.status());
    return 1;
  }
  httpd::HttpServer::Options http;
  http.address = absl::GetFlag(FLAGS_http_listen);
  http.threads = absl::GetFlag(FLAGS_http_threads);
  http.body_limit = static_cast<size_t>(absl::GetFlag(FLAGS_max_body_bytes));
  http.read_timeout = absl::GetFlag(FLAGS_read_timeout);
  gateway::Gateway* g = gw->get();
  httpd::HttpServer server(http, [g](const httpd::HttpRequest& r, std::function<void(httpd::HttpResponse)> done) {
    g->Handle(r, std::move(done));
  });
  if (absl::Status s = server.Start(); !s.ok()) {
    TM_LOG(Error, "cannot start").With("error", s);
    return 1;
  }
  TM_LOG(Info, "serving").With("address", http.address).With("port", server.port())
      .With("routes", static_cast<int64_t>(g->router().routes().size()));
  server::GrpcServer::WaitForTerminationSignal();
  TM_LOG(Info, "draining").With("connections", static_cast<int64_t>(server.open_connections()));
  if (!server.Drain(service::ServerOptionsFromFlags().drain_timeout)) {
    TM_LOG(Warning, "drain timed out; closing what is left")
        .With("connections", static_cast<int64_t>(server.open_connections()));
  }
  server.Shutdown();
  TM_LOG(Info, "bye");
  return 0;
}
