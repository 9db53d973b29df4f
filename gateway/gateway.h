// The REST edge: HTTP/JSON requests transcoded to gRPC calls on the backends
// through a generic stub (no code per method; routes come from the
// google.api.http options, libs/transcoding), responses and errors back as
// proto3 JSON. Errors follow Envoy's gRPC → HTTP table with a
// google.rpc.Status body (details included: field violations, retry info).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "libs/http/http_server.h"
#include "libs/telemetry/metrics.h"
#include "libs/transcoding/transcoding.h"

namespace trainmesh::gateway {

using httpd::BodyStream;
using httpd::HttpRequest;
using httpd::HttpResponse;
using httpd::StreamPart;

struct GatewayOptions {
  // Service full name (trainmesh.v1.JobService) → host:port.
  std::map<std::string, std::string> backends;
  // Deadline of a backend call.
  absl::Duration deadline = absl::Seconds(30);
  // Browser origins allowed to call (CORS); "*" allows any.
  std::vector<std::string> cors_origins;
  // Directory of the dashboard's built files, served for GETs outside the
  // API (index.html for unknown paths: the single-page app routes them).
  // Empty: none.
  std::string web_root;
  // Interval of the SSE heartbeat comments on an idle stream.
  absl::Duration heartbeat = absl::Seconds(15);
  // Opens the channel to a backend endpoint (tests and the fuzz target hand
  // in in-process channels). Unset: an insecure channel to host:port.
  std::function<std::shared_ptr<grpc::Channel>(const std::string& endpoint)> channel_factory;
};

// Backend calls still running. Their completions use the gateway (its routes,
// its metrics), so the gateway is not destroyed before the last one ends.
struct InFlightCalls {
  absl::Mutex mu;
  int64_t count ABSL_GUARDED_BY(mu) = 0;
};

// Counts one backend call for as long as it lives; held as the first member of
// what a call owns, so it is released after everything else of the call.
class InFlightCall {
 public:
  explicit InFlightCall(std::shared_ptr<InFlightCalls> calls);
  ~InFlightCall();
  InFlightCall(const InFlightCall&) = delete;
  InFlightCall& operator=(const InFlightCall&) = delete;

 private:
  std::shared_ptr<InFlightCalls> calls_;
};

class Gateway {
 public:
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options);
  // Waits for the backend calls still running (an HTTP server's shutdown
  // cancels those of its streams; unary calls end by their deadline).
  ~Gateway();

  // Answers `request` through `done`, on this thread or a gRPC one. A
  // streamed answer (HttpResponse::stream) runs until it ends or its reader
  // calls Cancel(); a reader that drops it must cancel it, or the gateway's
  // destructor waits for it.
  void Handle(const HttpRequest& request, std::function<void(HttpResponse)> done);

  const transcoding::Router& router() const { return router_; }
  // Server-streaming calls open now.
  int64_t open_streams() const { return static_cast<int64_t>(open_streams_->value()); }

 private:
  Gateway(GatewayOptions options, transcoding::Router router);
  bool OriginAllowed(const std::string& origin) const;
  // /readyz: every backend answers its gRPC health check as SERVING.
  void Ready(std::function<void(HttpResponse)> done);
  // Counts a finished request under `route` (its method and template).
  void Record(const std::string& route, int status, absl::Duration took);
  // /metrics: Prometheus text.
  std::string MetricsText() const;

  std::shared_ptr<InFlightCalls> in_flight_ = std::make_shared<InFlightCalls>();
  telemetry::Registry registry_;
  telemetry::Family<telemetry::Counter>* requests_ = &registry_.AddCounter(
      "trainmesh_gateway_requests_total", "HTTP requests by route and status code.", {"route", "code"});
  telemetry::Family<telemetry::Histogram>* request_seconds_ =
      &registry_.AddHistogram("trainmesh_gateway_request_seconds", "Time to answer, by route and status code.",
                              {"route", "code"});
  telemetry::Gauge* open_streams_ = &registry_
                                         .AddGauge("trainmesh_gateway_open_streams",
                                                   "Server-streaming calls open now (SSE, NDJSON, downloads).", {})
                                         .With({});
  void Route(const HttpRequest& request, std::function<void(HttpResponse)> done);
  // A server-streaming route: SSE, NDJSON or raw bytes, by the Accept header.
  void Stream(const HttpRequest& request, const transcoding::Route& route,
              std::unique_ptr<google::protobuf::Message> message, std::function<void(HttpResponse)> done);
  // A file under the web root (or index.html), or 404.
  HttpResponse Static(const std::string& path) const;
  std::string openapi_;

  GatewayOptions options_;
  transcoding::Router router_;
  std::map<std::string, std::unique_ptr<grpc::GenericStub>> stubs_;  // by service
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;    // by endpoint
};

// A google.rpc.Status JSON body for `status` (with its details).
HttpResponse ErrorResponse(const grpc::Status& status);

}  // namespace trainmesh::gateway
