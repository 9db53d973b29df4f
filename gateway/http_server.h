// An HTTP/1.1 server on Boost.Beast: keep-alive, a read timeout for slow
// clients, header and body limits (431, 413), a fixed pool of threads
// running asynchronous sessions (no thread per connection). Streamed bodies
// (HttpResponse::stream) go out in chunks, pulled one part at a time, with
// heartbeats while idle.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"

namespace trainmesh::gateway {

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

}  // namespace trainmesh::gateway
