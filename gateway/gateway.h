// The REST edge: HTTP/JSON requests transcoded to gRPC calls on the backends
// through a generic stub (no code per method; routes come from the
// google.api.http options, libs/transcoding), responses and errors back as
// proto3 JSON. Errors follow Envoy's gRPC → HTTP table with a
// google.rpc.Status body (details included: field violations, retry info).
#pragma once

#include <atomic>
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
  std::string origin;         // the Origin header (CORS)
  std::string accept;         // the Accept header (stream formats)
  std::string last_event_id;  // the Last-Event-ID header (SSE resume)
};

class BodyStream;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
  // Set for a server-streaming answer: the body is written in chunks as the
  // stream yields them (and `body` is unused).
  std::shared_ptr<BodyStream> stream;
};

// One part of a streamed body.
struct StreamPart {
  std::string data;
  // Nothing follows. With `abort` the connection is cut without the final
  // chunk, so a client sees the body is incomplete (raw byte downloads).
  bool last = false;
  bool abort = false;
  // Set when the stream failed before it yielded anything: answered instead
  // of the stream while no byte of it has been sent.
  std::shared_ptr<HttpResponse> error;
};

// A body produced piece by piece, pulled by the HTTP session one part at a
// time, so a slow reader slows its backend stream instead of filling memory.
// Thread-safe.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // Calls `ready` once (on any thread) with the next part. The session calls
  // Next again only after the part has been written.
  virtual void Next(std::function<void(StreamPart)> ready) = 0;
  // Stops the stream (the client left, or the server drains); a pending Next
  // is still answered (with `last`). Idempotent.
  virtual void Cancel() = 0;
  // Written when nothing else has been for `heartbeat_interval`, so proxies
  // keep an idle stream open; empty: none.
  virtual std::string Heartbeat() const { return ""; }
  virtual absl::Duration HeartbeatInterval() const { return absl::Seconds(15); }
};

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
};

class Gateway {
 public:
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options);

  // Answers `request` through `done`, on this thread or a gRPC one.
  void Handle(const HttpRequest& request, std::function<void(HttpResponse)> done);

  const transcoding::Router& router() const { return router_; }
  // Server-streaming calls open now.
  int64_t open_streams() const { return open_streams_.load(); }

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
  // A server-streaming route: SSE, NDJSON or raw bytes, by the Accept header.
  void Stream(const HttpRequest& request, const transcoding::Route& route,
              std::unique_ptr<google::protobuf::Message> message, std::function<void(HttpResponse)> done);
  std::atomic<int64_t> open_streams_{0};
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
