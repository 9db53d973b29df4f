#include "libs/server/grpc_server.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "libs/http/http_server.h"
#include "libs/log/log.h"
#include "libs/tls/tls.h"
#include "libs/server/server_metrics.h"

namespace trainmesh::server {

GrpcServer::GrpcServer(ServerOptions options) : options_(std::move(options)) {}

GrpcServer::~GrpcServer() { Shutdown(); }

void GrpcServer::AddService(grpc::Service* service, const std::string& name) {
  services_.emplace_back(service, name);
}

void GrpcServer::OnDrain(std::function<void()> hook) { drain_hooks_.push_back(std::move(hook)); }

absl::Status GrpcServer::Start() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.address, tls::ProcessServerCredentials(), &port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // Detect dead clients of long-lived streams.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  for (auto& [service, name] : services_) builder.RegisterService(service);
  if (options_.rpc_metrics) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(MetricsInterceptorFactory(options_.registry));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.address));
  }
  if (!options_.metrics_address.empty()) {
    httpd::HttpServer::Options http;
    http.address = options_.metrics_address;
    http.threads = 1;
    http.body_limit = 4 << 10;
    telemetry::Registry* registry = options_.registry;
    const std::atomic<bool>* serving = &serving_;
    metrics_http_ = std::make_unique<httpd::HttpServer>(
        http, [registry, serving](const httpd::HttpRequest& request, std::function<void(httpd::HttpResponse)> done) {
          const std::string path = request.target.substr(0, request.target.find('?'));
          if (request.method != "GET") {
            done({405, "text/plain", "GET only\n", {{"Allow", "GET"}}, nullptr});
          } else if (path == "/metrics") {
            done({200, "text/plain; version=0.0.4; charset=utf-8", registry->Render(), {}, nullptr});
          } else if (path == "/healthz") {
            // The gRPC health status for probes that cannot speak TLS gRPC
            // (a kubelet's gRPC probe is plaintext only).
            const bool up = serving->load();
            done({up ? 200 : 503, "text/plain", up ? "SERVING\n" : "NOT_SERVING\n", {}, nullptr});
          } else {
            done({404, "text/plain", "not found: /metrics serves the metrics, /healthz the health\n", {}, nullptr});
          }
        });
    if (absl::Status s = metrics_http_->Start(); !s.ok()) {
      metrics_http_.reset();
      server_->Shutdown();
      server_.reset();
      return s;
    }
  }
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (auto& [service, name] : services_) health->SetServingStatus(name, true);
  serving_ = true;
  TM_LOG(Info, "serving").With("address", options_.address).With("port", port_).With("metrics_port", metrics_port());
  return absl::OkStatus();
}

int GrpcServer::metrics_port() const { return metrics_http_ != nullptr ? metrics_http_->port() : 0; }

void GrpcServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  TM_LOG(Info, "draining")
      .With("drain_timeout_ms", absl::ToInt64Milliseconds(options_.drain_timeout));
  serving_ = false;
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);
  for (auto& [service, name] : services_) health->SetServingStatus(name, false);
  for (auto& hook : drain_hooks_) hook();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.drain_timeout));
  server_->Wait();
  if (metrics_http_ != nullptr) metrics_http_->Shutdown();
  TM_LOG(Info, "stopped");
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int GrpcServer::WaitForTerminationSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  TM_LOG(Info, "signal received").With("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  return sig;
}

void Fail(const std::string& what, const absl::Status& status) {
  TM_LOG(Error, what).With("error", status);
  std::exit(1);
}

}  // namespace trainmesh::server
