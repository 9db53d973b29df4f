// The REST edge: HTTP/JSON requests transcoded to gRPC calls on the backends
// through a generic stub (no code per method; routes come from the
// google.api.http options, libs/transcoding), responses and errors back as
// proto3 JSON. Errors follow Envoy's gRPC → HTTP table with a
// google.rpc.Status body (details included: field violations, retry info).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "libs/transcoding/transcoding.h"

namespace trainmesh::gateway {

struct HttpRequest {
  std::string method;  // GET, POST, ...
  std::string target;  // path?query
  std::string body;
  std::string authorization;
  std::string request_id;
  std::string origin;  // the Origin header (CORS)
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
};

struct GatewayOptions {
  // Service full name (trainmesh.v1.JobService) → host:port.
  std::map<std::string, std::string> backends;
  // Deadline of a backend call.
  absl::Duration deadline = absl::Seconds(30);
  // Browser origins allowed to call (CORS); "*" allows any.
  std::vector<std::string> cors_origins;
};

class Gateway {
 public:
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options);

  // Answers `request` through `done`, on this thread or a gRPC one.
  void Handle(const HttpRequest& request, std::function<void(HttpResponse)> done);

  const transcoding::Router& router() const { return router_; }

 private:
  Gateway(GatewayOptions options, transcoding::Router router);
  bool OriginAllowed(const std::string& origin) const;
  // /readyz: every backend answers its gRPC health check as SERVING.
  void Ready(std::function<void(HttpResponse)> done);
  // Counts a finished request under `route` (its method and template).
  void Record(const std::string& route, int status, absl::Duration took);
  // /metrics: Prometheus text.
  std::string MetricsText() const;

  struct Series {
    int64_t count = 0;
    double seconds = 0;
    std::vector<int64_t> buckets;  // cumulative counts per kBuckets bound
  };
  mutable std::mutex metrics_mu_;
  std::map<std::pair<std::string, int>, Series> metrics_;  // (route, status)
  void Route(const HttpRequest& request, std::function<void(HttpResponse)> done);

  GatewayOptions options_;
  transcoding::Router router_;
  std::map<std::string, std::unique_ptr<grpc::GenericStub>> stubs_;  // by service
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;    // by endpoint
};

// A google.rpc.Status JSON body for `status` (with its details).
HttpResponse ErrorResponse(const grpc::Status& status);

}  // namespace trainmesh::gateway
