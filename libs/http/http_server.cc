#include "libs/http/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"

namespace trainmesh::httpd {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class Session;

// What the handler sees of a parsed request: the one conversion, shared by
// the sessions and ParseRequest.
HttpRequest ToRequest(const http::request<http::string_body>& req) {
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  request.body = req.body();
  request.authorization = std::string(req[http::field::authorization]);
  request.request_id = std::string(req["x-request-id"]);
  request.origin = std::string(req[http::field::origin]);
  request.accept = std::string(req[http::field::accept]);
  request.last_event_id = std::string(req["last-event-id"]);
  return request;
}

// What every session shares: options, the handler, and the registry that
// lets a drain reach every open connection.
struct ServerState {
  HttpServer::Options options;
  HttpServer::Handler handler;
  absl::Mutex mu;
  std::map<Session*, std::weak_ptr<Session>> sessions ABSL_GUARDED_BY(mu);
  bool draining ABSL_GUARDED_BY(mu) = false;
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return sessions.empty(); }
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ServerState& state)
      : registration_{state, this}, stream_(std::move(socket)), state_(state) {}

  // False when the server is draining (the connection is dropped).
  bool Register() {
    absl::MutexLock lock(&state_.mu);
    if (state_.draining) return false;
    state_.sessions[this] = weak_from_this();
    return true;
  }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  // Finishes what is in flight and closes: an idle connection at once, a
  // request after its answer, a stream after its final chunk. `hard`: the
  // connection closes now whatever it is doing.
  void Drain(bool hard) {
    net::post(stream_.get_executor(), [self = shared_from_this(), hard] {
      self->draining_ = true;
      if (self->body_stream_ != nullptr) self->body_stream_->Cancel();
      if (self->reading_ || hard) self->Close(/*now=*/true);
    });
  }

 private:
  void Read() {
    if (draining_) return Close(true);
    parser_.emplace();
    parser_->body_limit(state_.options.body_limit);
    parser_->header_limit(static_cast<std::uint32_t>(state_.options.header_limit));
    stream_.expires_after(absl::ToChronoNanoseconds(state_.options.read_timeout));
    reading_ = true;
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    reading_ = false;
    if (ec == http::error::body_limit) return Reply(413, "request body too large");
    if (ec == http::error::header_limit) return Reply(431, "request headers too large");
    if (ec) return Close(true);  // end of stream, timeout, reset, malformed
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    HttpRequest request = ToRequest(req);
    beast::error_code peer_error;
    const tcp::endpoint peer = stream_.socket().remote_endpoint(peer_error);
    if (!peer_error) request.client_address = peer.address().to_string();
    stream_.expires_never();
    state_.handler(request, [self = shared_from_this()](HttpResponse response) {
      net::post(self->stream_.get_executor(),
                [self, response = std::move(response)]() mutable { self->Write(std::move(response)); });
    });
  }

  void Reply(int status, const std::string& message) {
    keep_alive_ = false;
    HttpResponse r;
    r.status = status;
    r.body = absl::StrCat("{\"code\":3,\"message\":\"", message, "\"}");
    Write(std::move(r));
  }

  void Write(HttpResponse response) {
    if (response.stream != nullptr) return StartStream(std::move(response));
    if (draining_) keep_alive_ = false;
    response_.emplace();
    response_->result(static_cast<unsigned>(response.status));
    response_->version(11);
    response_->set(http::field::server, "trainmesh");
    response_->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) response_->insert(name, value);
    response_->keep_alive(keep_alive_);
    response_->body() = std::move(response.body);
    response_->prepare_payload();
    stream_.expires_after(absl::ToChronoNanoseconds(state_.options.read_timeout));
    http::async_write(stream_, *response_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec || !self->keep_alive_) return self->Close(false);
      self->Read();
    });
  }

  // --- Streamed bodies (chunked transfer encoding; the connection closes
  // after the final chunk).

  void StartStream(HttpResponse response) {
    body_stream_ = std::move(response.stream);
    head_ = std::move(response);
    head_.stream = nullptr;
    heartbeat_.emplace(stream_.get_executor());
    // The head goes out with the first part, or after a short wait: an error
    // that comes at once is still an ordinary answer with its status code,
    // and a quiet stream is seen to be open.
    ArmHeartbeat(std::min(body_stream_->HeartbeatInterval(), absl::Milliseconds(500)));
    RequestPart();
    if (draining_) body_stream_->Cancel();
  }

  void RequestPart() {
    body_stream_->Next([self = shared_from_this()](StreamPart part) {
      net::post(self->stream_.get_executor(),
                [self, part = std::move(part)]() mutable { self->OnPart(std::move(part)); });
    });
  }

  void OnPart(StreamPart part) {
    if (aborted_) return;
    if (!header_sent_ && part.error != nullptr) {
      // Failed before anything was sent: an ordinary error answer.
      heartbeat_->cancel();
      body_stream_ = nullptr;
      return Write(std::move(*part.error));
    }
    SendHeader();
    if (!part.data.empty()) Enqueue(Chunk(part.data));
    data_since_tick_ = true;
    if (part.abort) {
      abort_after_write_ = true;
      stream_over_ = true;
      if (!writing_) Abort();
      return;
    }
    if (part.last) {
      Enqueue("0\r\n\r\n");
      stream_over_ = true;
    } else {
      want_next_ = true;
      if (!writing_) Pump();
    }
  }

  static std::string Chunk(const std::string& data) {
    return absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n");
  }

  void SendHeader() {
    if (header_sent_) return;
    header_sent_ = true;
    std::string head = absl::StrCat("HTTP/1.1 ", head_.status, " ",
                                    std::string(http::obsolete_reason(static_cast<http::status>(head_.status))),
                                    "\r\nServer: trainmesh\r\nContent-Type: ", head_.content_type,
                                    "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n");
    for (const auto& [name, value] : head_.headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
    head += "\r\n";
    Enqueue(std::move(head));
    Watch();
  }

  // A read while the stream runs: the client closing its side ends the
  // backend stream at once instead of at the next write.
  void Watch() {
    stream_.socket().async_read_some(net::buffer(watch_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Abort();
      self->Watch();  // pipelined bytes are dropped: the connection closes after the stream
    });
  }

  void ArmHeartbeat(absl::Duration after) {
    heartbeat_->expires_after(absl::ToChronoNanoseconds(after));
    heartbeat_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->aborted_ || self->stream_over_ || self->body_stream_ == nullptr) return;
      if (!self->header_sent_) {
        self->SendHeader();
      } else if (!self->data_since_tick_) {
        const std::string beat = self->body_stream_->Heartbeat();
        if (!beat.empty()) self->Enqueue(Chunk(beat));
      }
      self->data_since_tick_ = false;
      self->ArmHeartbeat(self->body_stream_->HeartbeatInterval());
    });
  }

  void Enqueue(std::string bytes) {
    outbox_.push_back(std::move(bytes));
    if (!writing_) Pump();
  }

  void Pump() {
    if (aborted_) return;
    if (outbox_.empty()) {
      if (abort_after_write_) return Abort();
      if (stream_over_) return Finish();
      if (want_next_) {
        want_next_ = false;
        RequestPart();
      }
      return;
    }
    writing_ = true;
    // A reader that takes no bytes for the read timeout is dropped.
    stream_.expires_after(absl::ToChronoNanoseconds(state_.options.read_timeout));
    net::async_write(stream_, net::buffer(outbox_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      self->stream_.expires_never();
      if (ec) return self->Abort();
      self->outbox_.pop_front();
      self->Pump();
    });
  }

  void Finish() {
    if (heartbeat_) heartbeat_->cancel();
    body_stream_ = nullptr;
    Close(true);
  }

  void Abort() {
    if (aborted_) return;
    aborted_ = true;
    if (heartbeat_) heartbeat_->cancel();
    if (body_stream_ != nullptr) body_stream_->Cancel();
    Close(true);
  }

  void Close(bool now) {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (now) stream_.socket().close(ec);
  }

  // Takes the session off the server's list when it is destroyed: after every
  // other member, because it is declared first. Shutdown waits for the list to
  // empty before it stops the io_context, and the last reference may be
  // dropped on another thread (a gRPC callback) while the stream's timer is
  // still being destroyed.
  struct Registration {
    ServerState& state;
    Session* session;
    ~Registration() {
      absl::MutexLock lock(&state.mu);
      state.sessions.erase(session);  // a waiting Drain sees it when the lock is released
    }
  } registration_;
  beast::tcp_stream stream_;
  ServerState& state_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  bool keep_alive_ = false;
  bool reading_ = false;
  bool draining_ = false;

  std::shared_ptr<BodyStream> body_stream_;
  HttpResponse head_;
  std::optional<net::steady_timer> heartbeat_;
  std::deque<std::string> outbox_;
  std::array<char, 512> watch_{};
  bool header_sent_ = false, writing_ = false, want_next_ = false, stream_over_ = false;
  bool abort_after_write_ = false, aborted_ = false, data_since_tick_ = false;
};

}  // namespace

struct HttpServer::Impl {
  // The acceptor works on a strand: its accept handler and the close at
  // shutdown never run at once.
  Impl(Options o, Handler h) : ioc(o.threads), acceptor(net::make_strand(ioc)) {
    state.options = std::move(o);
    state.handler = std::move(h);
  }

  void Accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (!acceptor.is_open()) return;  // shutting down
      } else {
        auto session = std::make_shared<Session>(std::move(socket), state);
        if (session->Register()) session->Start();
      }
      Accept();
    });
  }

  ServerState state;
  net::io_context ioc;
  // Keeps the threads running while nothing is pending: a backend answer
  // (a stream's last part) may still be posted after every socket closed.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<int> port{0};
};

HttpServer::HttpServer(Options options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { Shutdown(); }

absl::Status HttpServer::Start() {
  const std::string& address = impl_->state.options.address;
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address));
  }
  beast::error_code ec;
  const auto ip = net::ip::make_address(address.substr(0, colon), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address, ": ", ec.message()));
  const tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", ec.message()));
  impl_->port = acceptor.local_endpoint().port();
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->Accept();
  for (int i = 0; i < std::max(1, impl_->state.options.threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
  return absl::OkStatus();
}

int HttpServer::port() const { return impl_->port; }

namespace {

// Stops accepting and asks every open session to drain. The listener is
// closed on an I/O thread (the acceptor is not thread-safe) and waited for:
// once this returns, a new connection is refused, not left in the backlog.
void StopSessions(tcp::acceptor& acceptor, ServerState& state, bool hard) {
  auto closed = std::make_shared<std::promise<void>>();
  std::future<void> done = closed->get_future();
  net::post(acceptor.get_executor(), [&acceptor, closed] {
    beast::error_code ec;
    acceptor.close(ec);
    closed->set_value();
  });
  // The I/O threads run until Shutdown stops them, so this is quick.
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    TM_LOG(Warning, "the HTTP listener did not close within 5 s");
  }
  std::vector<std::shared_ptr<Session>> open;
  {
    absl::MutexLock lock(&state.mu);
    state.draining = true;
    for (const auto& [raw, weak] : state.sessions) {
      if (auto session = weak.lock()) open.push_back(std::move(session));
    }
  }
  for (const auto& session : open) session->Drain(hard);
}

}  // namespace

bool HttpServer::Drain(absl::Duration grace) {
  if (impl_ == nullptr || impl_->threads.empty()) return true;
  StopSessions(impl_->acceptor, impl_->state, /*hard=*/false);
  ServerState& state = impl_->state;
  absl::MutexLock lock(&state.mu);
  return state.mu.AwaitWithTimeout(absl::Condition(&state, &ServerState::Idle), grace);
}

size_t HttpServer::open_connections() const {
  absl::MutexLock lock(&impl_->state.mu);
  return impl_->state.sessions.size();
}

void HttpServer::Shutdown() {
  if (impl_ == nullptr || impl_->threads.empty()) return;
  // Every connection is closed, and the threads run until each session is
  // gone: a backend answer still on its way (bounded by the call deadline)
  // must find its session's executor alive.
  StopSessions(impl_->acceptor, impl_->state, /*hard=*/true);
  {
    ServerState& state = impl_->state;
    absl::MutexLock lock(&state.mu);
    state.mu.Await(absl::Condition(&state, &ServerState::Idle));
  }
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // The posted close may not have run before the stop: no thread runs now.
  beast::error_code ec;
  impl_->acceptor.close(ec);
}

}  // namespace trainmesh::httpd

namespace trainmesh::httpd {

absl::StatusOr<HttpRequest> ParseRequest(absl::string_view bytes, size_t body_limit, size_t header_limit) {
  http::request_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(body_limit);
  parser.header_limit(static_cast<std::uint32_t>(header_limit));
  beast::error_code ec;
  size_t used = 0;
  // Fed as a session's buffer would fill: the parser may take part of it.
  while (used < bytes.size() && !parser.is_done()) {
    const size_t n = parser.put(net::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (ec == http::error::need_more) {
      ec = {};
      if (n == 0) break;
    } else if (ec) {
      break;
    }
    used += n;
  }
  // put_eof is only for a message that has begun (Beast asserts it).
  if (!ec && !parser.is_done() && parser.got_some()) {
    parser.put_eof(ec);
  }
  if (ec == http::error::body_limit) return absl::OutOfRangeError("request body too large");
  if (ec == http::error::header_limit) return absl::OutOfRangeError("request headers too large");
  if (ec || !parser.is_done()) return absl::InvalidArgumentError(absl::StrCat("malformed request: ", ec.message()));
  return ToRequest(parser.get());
}

}  // namespace trainmesh::httpd
