// An HTTP/1.1 server on Boost.Beast: keep-alive, a read timeout for slow
// clients, header and body limits (431, 413), a fixed pool of threads
// running asynchronous sessions (no thread per connection). Streamed bodies
// (HttpResponse::stream) go out in chunks, pulled one part at a time, with
// heartbeats while idle.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace trainmesh::httpd {

struct HttpRequest {
  std::string method;  // GET, POST, ...
  std::string target;  // path?query
  std::string body;
  std::string authorization;
  std::string request_id;
  std::string origin;         // the Origin header (CORS)
  std::string accept;         // the Accept header (stream formats)
  std::string last_event_id;  // the Last-Event-ID header (SSE resume)
  std::string client_address;  // the TCP peer's IP address ("" when unknown)
  // Not parsed: the gateway sets it to the path an ?access_token= came with.
  std::string signed_url;
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


class HttpServer {
 public:
  struct Options {
    std::string address = "127.0.0.1:0";  // host:port; port 0 picks a free one
    int threads = 2;
    size_t body_limit = 1 << 20;
    size_t header_limit = 16 << 10;
    absl::Duration read_timeout = absl::Seconds(30);
  };
  using Handler = std::function<void(const HttpRequest&, std::function<void(HttpResponse)>)>;

  HttpServer(Options options, Handler handler);
  ~HttpServer();  // Shutdown()

  absl::Status Start();
  int port() const;
  // Graceful drain: stops accepting, closes idle connections, lets requests
  // in flight finish (answered with Connection: close) and ends streams
  // (their final chunk; clients resume elsewhere with Last-Event-ID). True
  // when every connection closed within `grace`.
  bool Drain(absl::Duration grace);
  // Connections open now.
  size_t open_connections() const;
  // Stops at once: every connection is dropped.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One whole request from raw bytes, parsed and converted exactly as a
// session does with the same limits (for fuzzing and tests of the edge).
// OUT_OF_RANGE past a limit, INVALID_ARGUMENT when malformed or incomplete.
absl::StatusOr<HttpRequest> ParseRequest(absl::string_view bytes, size_t body_limit = 1 << 20,
                                         size_t header_limit = 16 << 10);

}  // namespace trainmesh::httpd
