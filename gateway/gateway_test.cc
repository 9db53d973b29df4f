// The gateway in front of the real auth, jobs and metrics services (real
// Postgres, real gRPC servers on port 0), driven over real HTTP connections:
// REST routes from the proto annotations, proto3 JSON both ways, errors as
// google.rpc.Status bodies with Envoy's status table, limits, keep-alive.
#include "gateway/gateway.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/socket.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/http/http_server.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "tests/harness/mesh.h"
#include "trainmesh/v1/auth.pb.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using httpd::HttpServer;
using ::testing::HasSubstr;

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;
};

// One keep-alive HTTP/1.1 connection.
class Client {
 public:
  explicit Client(int port) : socket_(ioc_) {
    socket_.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    // An answer that never comes fails the test instead of hanging it.
    timeval timeout{30, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  Reply Send(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& credential = "", const std::string& origin = "") {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, "localhost");
    if (!credential.empty()) req.set(http::field::authorization, "Bearer " + credential);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    if (!origin.empty()) req.set(http::field::origin, origin);
    req.body() = body;
    req.prepare_payload();
    http::write(socket_, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket_, buffer, res);
    Reply reply{static_cast<int>(res.result_int()), res.body(), std::string(res[http::field::content_type]), {}};
    for (const auto& field : res) reply.headers[std::string(field.name_string())] = std::string(field.value());
    return reply;
  }

 private:
  net::io_context ioc_;
  net::ip::tcp::socket socket_;
};

// A streamed answer read as it comes: the head, then the de-chunked body.
class StreamClient {
 public:
  StreamClient(int port, const std::string& target, const std::string& credential, const std::string& accept,
               const std::string& last_event_id = "")
      : socket_(ioc_) {
    socket_.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    // A stream that never says what the test waits for fails the test
    // instead of hanging it.
    timeval timeout{20, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n";
    if (!credential.empty()) request += "Authorization: Bearer " + credential + "\r\n";
    if (!accept.empty()) request += "Accept: " + accept + "\r\n";
    if (!last_event_id.empty()) request += "Last-Event-ID: " + last_event_id + "\r\n";
    request += "\r\n";
    net::write(socket_, net::buffer(request));
  }

  // Reads until the de-chunked body contains `needle` (true) or the stream
  // ends or stalls (false).
  bool ReadUntil(const std::string& needle) {
    while (body_.find(needle) == std::string::npos) {
      if (ended_ || !ReadMore()) return false;
    }
    return true;
  }
  // Reads until the head has arrived (false when the connection ended first).
  bool ReadHead() {
    while (head_.empty()) {
      if (!ReadMore()) return false;
    }
    return true;
  }
  // Reads to the end of the stream: true when it ended with the final chunk.
  bool ReadToEnd() {
    while (!ended_) {
      if (!ReadMore()) return false;
    }
    return true;
  }
  const std::string& head() const { return head_; }
  const std::string& body() const { return body_; }
  void Close() { socket_.close(); }

 private:
  bool ReadMore() {
    char chunk[4096];
    beast::error_code ec;
    const size_t n = socket_.read_some(net::buffer(chunk), ec);
    if (ec || n == 0) return false;
    raw_.append(chunk, n);
    Decode();
    return true;
  }
  void Decode() {
    if (head_.empty()) {
      const size_t end = raw_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      head_ = raw_.substr(0, end + 2);
      raw_.erase(0, end + 4);
      chunked_ = head_.find("Transfer-Encoding: chunked") != std::string::npos;
    }
    if (!chunked_) {
      body_ += raw_;
      raw_.clear();
      return;
    }
    while (true) {
      const size_t line = raw_.find("\r\n");
      if (line == std::string::npos) return;
      const size_t size = std::stoul(raw_.substr(0, line), nullptr, 16);
      if (raw_.size() < line + 2 + size + 2) return;
      if (size == 0) {
        ended_ = true;
        return;
      }
      body_ += raw_.substr(line + 2, size);
      raw_.erase(0, line + 2 + size + 2);
    }
  }

  net::io_context ioc_;
  net::ip::tcp::socket socket_;
  std::string raw_, head_, body_;
  bool chunked_ = false, ended_ = false;
};

google::rpc::Status StatusOf(const Reply& r) {
  google::rpc::Status s;
  auto parsed = google::protobuf::util::JsonStringToMessage(r.body, &s);
  EXPECT_TRUE(parsed.ok()) << parsed.message() << " in " << r.body;
  return s;
}

std::vector<std::string> ViolatedFields(const google::rpc::Status& s) {
  std::vector<std::string> out;
  for (const auto& any : s.details()) {
    google::rpc::BadRequest bad;
    if (any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) out.push_back(v.field());
    }
  }
  return out;
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GatewayOptions options;
    options.backends = {{"trainmesh.v1.JobService", mesh_.jobs_endpoint()},
                        {"trainmesh.v1.AuthService", mesh_.auth_endpoint()},
                        {"trainmesh.v1.MetricsService", mesh_.metrics_endpoint()}};
    options.cors_origins = {"https://app.example"};
    options.heartbeat = absl::Milliseconds(50);
    auto gw = Gateway::Create(options);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = *std::move(gw);
    HttpServer::Options http;
    http.body_limit = 64 << 10;
    server_ = std::make_unique<HttpServer>(http, [this](const HttpRequest& r, std::function<void(HttpResponse)> done) {
      gateway_->Handle(r, std::move(done));
    });
    ASSERT_TRUE(server_->Start().ok());
    ada_ = mesh_.AddUser("ada");
  }
  void TearDown() override { server_.reset(); }

  testing::TestMesh mesh_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<HttpServer> server_;
  testing::TestMesh::User ada_;
};

TEST_F(GatewayTest, CreateGetAndListJobsOverRestOnOneConnection) {
  Client client(server_->port());
  const Reply created = client.Send(
      "POST", "/v1/jobs",
      R"({"model": "mlp-policy", "datasetUrl": "synthetic://reach", "hyperparameters": {"steps": 50},
          "labels": {"team": "robots"}})",
      ada_.token);
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(created.content_type, "application/json");
  v1::Job job;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(created.body, &job).ok()) << created.body;
  EXPECT_EQ(job.model(), "mlp-policy");
  EXPECT_EQ(job.owner(), ada_.user.id());
  EXPECT_THAT(created.body, HasSubstr(R"("datasetUrl":"synthetic://reach")"));
  EXPECT_THAT(created.body, HasSubstr(R"("state":")"));

  const Reply got = client.Send("GET", "/v1/jobs/" + job.id(), "", ada_.token);
  ASSERT_EQ(got.status, 200) << got.body;
  v1::Job again;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(got.body, &again).ok());
  EXPECT_EQ(again.id(), job.id());
  EXPECT_EQ(again.labels().at("team"), "robots");

  const Reply listed = client.Send("GET", "/v1/jobs?pageSize=10&labels=team%3Drobots", "", ada_.token);
  ASSERT_EQ(listed.status, 200) << listed.body;
  v1::ListJobsResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(listed.body, &list).ok());
  ASSERT_EQ(list.jobs_size(), 1);
  EXPECT_EQ(list.jobs(0).id(), job.id());

  const Reply cancelled = client.Send("POST", "/v1/jobs/" + job.id() + ":cancel", R"({"reason": "enough"})", ada_.token);
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_THAT(cancelled.body, HasSubstr("CANCELLED"));
  EXPECT_EQ(client.Send("GET", "/healthz").status, 200);
}

TEST_F(GatewayTest, ErrorsAreGoogleRpcStatusBodiesWithEnvoysHttpCodes) {
  Client client(server_->port());
  const Reply anonymous = client.Send("GET", "/v1/jobs");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(StatusOf(anonymous).code(), 16);

  // The service's own validation, field violations carried through.
  const Reply invalid = client.Send("POST", "/v1/jobs",
                                    R"({"model": "mlp-policy", "datasetUrl": "ftp://x", "hyperparameters": {"steps": 0}})",
                                    ada_.token);
  ASSERT_EQ(invalid.status, 400) << invalid.body;
  const google::rpc::Status status = StatusOf(invalid);
  EXPECT_EQ(status.code(), 3);
  EXPECT_THAT(ViolatedFields(status), ::testing::IsSupersetOf({"job.dataset_url", "job.hyperparameters.steps"}));

  // The gateway's own checks: unknown fields, malformed JSON, bad query values.
  const Reply unknown = client.Send("POST", "/v1/jobs", R"({"model": "mlp-policy", "colour": "red"})", ada_.token);
  EXPECT_EQ(unknown.status, 400);
  EXPECT_THAT(ViolatedFields(StatusOf(unknown)), ::testing::ElementsAre("job"));
  EXPECT_EQ(client.Send("POST", "/v1/jobs", "{nope", ada_.token).status, 400);
  const Reply query = client.Send("GET", "/v1/jobs?pageSize=lots", "", ada_.token);
  EXPECT_EQ(query.status, 400);
  EXPECT_THAT(ViolatedFields(StatusOf(query)), ::testing::ElementsAre("pageSize"));

  EXPECT_EQ(client.Send("GET", "/v1/jobs/00000000-0000-4000-8000-000000000000", "", ada_.token).status, 404);
  EXPECT_EQ(client.Send("DELETE", "/v1/jobs/x", "", ada_.token).status, 405);
  EXPECT_EQ(client.Send("GET", "/v1/nothing/here", "", ada_.token).status, 404);

  // The connection survived every error above.
  EXPECT_EQ(client.Send("GET", "/v1/recipes", "", ada_.token).status, 200);

  // A body over the limit: 413, and the connection closes.
  Client big(server_->port());
  const Reply too_big = big.Send("POST", "/v1/jobs", std::string(100 << 10, ' '), ada_.token);
  EXPECT_EQ(too_big.status, 413);
}

// One request written as raw bytes (headers a well-behaved client library
// would refuse to send), its answer read back.
Reply SendRaw(int port, const std::string& raw) {
  net::io_context ioc;
  net::ip::tcp::socket socket(ioc);
  socket.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  timeval timeout{30, 0};
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  net::write(socket, net::buffer(raw));
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  beast::error_code ec;
  http::read(socket, buffer, res, ec);
  if (ec) return Reply{0, ec.message(), "", {}};
  return Reply{static_cast<int>(res.result_int()), res.body(), std::string(res[http::field::content_type]), {}};
}

TEST_F(GatewayTest, ValuesGrpcCannotCarryAreRefusedBeforeAnyBackendCall) {
  // Each of these aborted the process (gRPC's invalid-metadata assertion)
  // when copied into a backend call's metadata unchecked.
  struct Case {
    std::string raw;
    std::string field;
  };
  const std::string get = "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n";
  const std::vector<Case> cases = {
      {"GET /v1/jobs:watch?access_token=%0A HTTP/1.1\r\nHost: x\r\n\r\n", "access_token"},
      {"GET /v1/jobs:watch?access_token=a%00b HTTP/1.1\r\nHost: x\r\n\r\n", "access_token"},
      {get + "X-Request-Id: a\tb\r\nAuthorization: Bearer " + ada_.token + "\r\n\r\n", "X-Request-Id"},
      {get + "Authorization: Bearer \x80\xff\r\n\r\n", "Authorization"},
      {get + "Authorization: Bearer a\tb\r\n\r\n", "Authorization"},
      {get + "X-Request-Id: " + std::string(200, 'r') + "\r\n\r\n", "X-Request-Id"},
      {"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-Request-Id: r\xe9\r\n\r\n{}", "X-Request-Id"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.raw);
    const Reply reply = SendRaw(server_->port(), c.raw);
    ASSERT_EQ(reply.status, 400) << reply.body;
    const google::rpc::Status status = StatusOf(reply);
    EXPECT_EQ(status.code(), 3);
    EXPECT_THAT(ViolatedFields(status), ::testing::ElementsAre(c.field));
  }
  // The process is up and a well-formed request with a request id works.
  const Reply fine = SendRaw(server_->port(), get + "X-Request-Id: trace-1 (ok)\r\nAuthorization: Bearer " +
                                                  ada_.token + "\r\n\r\n");
  EXPECT_EQ(fine.status, 200) << fine.body;
}

TEST_F(GatewayTest, AnotherUsersJobIsNotFoundOnEveryMetricsRouteBeforeItReports) {
  Client client(server_->port());
  const Reply created = client.Send(
      "POST", "/v1/jobs", R"({"model": "mlp-policy", "datasetUrl": "synthetic://reach"})", ada_.token);
  ASSERT_EQ(created.status, 200) << created.body;
  v1::Job job;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(created.body, &job).ok());
  const testing::TestMesh::User bob = mesh_.AddUser("bob");
  const std::string nobody = "00000000-0000-4000-8000-000000000000";
  for (const std::string route : {"/metrics", "/metricNames", "/logs", "/cost", "/metrics:recent"}) {
    SCOPED_TRACE(route);
    // The owner reads an empty answer; anyone else, and any made-up id, 404.
    EXPECT_EQ(client.Send("GET", "/v1/jobs/" + job.id() + route, "", ada_.token).status, 200);
    const Reply theirs = client.Send("GET", "/v1/jobs/" + job.id() + route, "", bob.token);
    EXPECT_EQ(theirs.status, 404) << theirs.body;
    EXPECT_THAT(theirs.body, ::testing::Not(HasSubstr(ada_.user.id())));
    EXPECT_EQ(client.Send("GET", "/v1/jobs/" + nobody + route, "", ada_.token).status, 404);
  }
  // Streams too: refused before the first byte.
  for (const std::string route : {"/metrics:stream", "/logs:stream"}) {
    SCOPED_TRACE(route);
    StreamClient stream(server_->port(), "/v1/jobs/" + job.id() + route, bob.token, "application/x-ndjson");
    ASSERT_TRUE(stream.ReadHead());
    EXPECT_THAT(stream.head(), HasSubstr(" 404 "));
  }
}

TEST(ParseRequestTest, ParsesAsASessionDoesWithItsLimits) {
  auto request = httpd::ParseRequest(
      "POST /v1/jobs?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\nX-Request-Id: r\r\n"
      "Accept: text/event-stream\r\nLast-Event-ID: 7\r\nOrigin: https://o\r\nContent-Length: 2\r\n\r\n{}");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->target, "/v1/jobs?x=1");
  EXPECT_EQ(request->body, "{}");
  EXPECT_EQ(request->authorization, "Bearer k");
  EXPECT_EQ(request->request_id, "r");
  EXPECT_EQ(request->accept, "text/event-stream");
  EXPECT_EQ(request->last_event_id, "7");
  EXPECT_EQ(request->origin, "https://o");
  EXPECT_EQ(httpd::ParseRequest("GET / HTTP/1.1\r\nHost: h\r\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(httpd::ParseRequest("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 4).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(httpd::ParseRequest("GET / HTTP/1.1\r\nX: " + std::string(100, 'x') + "\r\n\r\n", 4, 32)
                .status()
                .code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(GatewayTest, CorsForConfiguredOriginsOnlyAndJwksAtTheWellKnownPath) {
  Client client(server_->port());
  Reply preflight = client.Send("OPTIONS", "/v1/jobs", "", "", "https://app.example");
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.headers["Access-Control-Allow-Origin"], "https://app.example");
  EXPECT_THAT(preflight.headers["Access-Control-Allow-Headers"], HasSubstr("Authorization"));
  EXPECT_THAT(preflight.headers["Access-Control-Allow-Methods"], HasSubstr("POST"));

  Reply allowed = client.Send("GET", "/v1/jobs", "", ada_.token, "https://app.example");
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(allowed.headers["Access-Control-Allow-Origin"], "https://app.example");
  Reply stranger = client.Send("GET", "/v1/jobs", "", ada_.token, "https://evil.example");
  EXPECT_EQ(stranger.status, 200);
  EXPECT_EQ(stranger.headers.count("Access-Control-Allow-Origin"), 0u);
  EXPECT_NE(client.Send("OPTIONS", "/v1/jobs", "", "", "https://evil.example").status, 204);

  const Reply jwks = client.Send("GET", "/.well-known/jwks.json");
  ASSERT_EQ(jwks.status, 200) << jwks.body;
  EXPECT_THAT(jwks.body, HasSubstr(R"("keys":[)"));
  EXPECT_THAT(jwks.body, HasSubstr(R"("kid")"));
}

TEST_F(GatewayTest, PrometheusMetricsCountRequestsByRouteAndCode) {
  Client client(server_->port());
  ASSERT_EQ(client.Send("GET", "/v1/recipes", "", ada_.token).status, 200);
  ASSERT_EQ(client.Send("GET", "/v1/recipes", "", ada_.token).status, 200);
  ASSERT_EQ(client.Send("GET", "/v1/jobs/00000000-0000-4000-8000-000000000000", "", ada_.token).status, 404);
  ASSERT_EQ(client.Send("GET", "/v1/nothing").status, 404);
  const Reply metrics = client.Send("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.content_type, HasSubstr("text/plain"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(trainmesh_gateway_requests_total{route="GET /v1/recipes",code="200"} 2)"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(trainmesh_gateway_requests_total{route="GET /v1/jobs/{id}",code="404"} 1)"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(trainmesh_gateway_requests_total{route="unmatched",code="404"} 1)"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(trainmesh_gateway_request_seconds_count{route="GET /v1/recipes",code="200"} 2)"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(le="+Inf"} 2)"));
}

TEST_F(GatewayTest, ReadyOnlyWhenEveryBackendServes) {
  Client client(server_->port());
  const Reply ready = client.Send("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_THAT(ready.body, HasSubstr(R"("status":"READY")"));
  EXPECT_THAT(ready.body, HasSubstr(mesh_.jobs_endpoint()));

  // A backend nobody listens on: not ready, and the answer names it.
  GatewayOptions options;
  options.backends = {{"trainmesh.v1.JobService", mesh_.jobs_endpoint()}, {"trainmesh.v1.SchedulerService", "127.0.0.1:1"}};
  auto lonely = Gateway::Create(options);
  ASSERT_TRUE(lonely.ok());
  std::promise<HttpResponse> answer;
  (*lonely)->Handle(HttpRequest{"GET", "/readyz", "", "", "", ""}, [&](HttpResponse r) { answer.set_value(std::move(r)); });
  const HttpResponse r = answer.get_future().get();
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr(R"("127.0.0.1:1":"unreachable)"));
  EXPECT_THAT(r.body, HasSubstr(R"("status":"NOT_READY")"));
}

HttpResponse HandleNow(Gateway& gateway, const std::string& method, const std::string& target) {
  std::promise<HttpResponse> answer;
  HttpRequest request;
  request.method = method;
  request.target = target;
  gateway.Handle(request, [&](HttpResponse r) { answer.set_value(std::move(r)); });
  return answer.get_future().get();
}

TEST_F(GatewayTest, ServesItsOpenApiDocumentWithEveryRoute) {
  Client client(server_->port());
  const Reply doc = client.Send("GET", "/openapi.json");
  ASSERT_EQ(doc.status, 200);
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(doc.body, &parsed).ok());
  const auto& paths = parsed.fields().at("paths").struct_value().fields();
  EXPECT_EQ(paths.count("/v1/jobs/{id}:watch"), 1u);
  EXPECT_EQ(paths.count("/v1/auth:login"), 1u);
  size_t operations = 0;
  for (const auto& [path, item] : paths) operations += item.struct_value().fields_size();
  EXPECT_EQ(operations, gateway_->router().routes().size());
}

TEST(GatewayStaticTest, ServesTheDashboardWithSinglePageAppFallbackAndNothingOutsideItsRoot) {
  const std::string root = ::testing::TempDir() + "/web-" + std::to_string(getpid());
  std::filesystem::create_directories(root + "/assets");
  std::ofstream(root + "/index.html") << "<!doctype html><title>trainmesh</title>";
  std::ofstream(root + "/assets/app-1234.js") << "console.log(1)";
  std::ofstream(root + "/.env") << "SECRET=1";
  std::ofstream(::testing::TempDir() + "/outside.txt") << "private";
  GatewayOptions options;
  options.web_root = root;
  auto gateway = Gateway::Create(options);
  ASSERT_TRUE(gateway.ok());

  HttpResponse index = HandleNow(**gateway, "GET", "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(index.content_type, HasSubstr("text/html"));
  EXPECT_THAT(index.body, HasSubstr("<title>trainmesh</title>"));
  HttpResponse asset = HandleNow(**gateway, "GET", "/assets/app-1234.js");
  EXPECT_EQ(asset.status, 200);
  EXPECT_THAT(asset.content_type, HasSubstr("text/javascript"));
  EXPECT_THAT(asset.headers, ::testing::Contains(::testing::Pair("Cache-Control", HasSubstr("immutable"))));
  // App routes get the app; missing files with an extension are 404.
  EXPECT_THAT(HandleNow(**gateway, "GET", "/jobs/42?tab=logs").body, HasSubstr("<title>trainmesh</title>"));
  EXPECT_EQ(HandleNow(**gateway, "GET", "/assets/missing.js").status, 404);
  // Nothing outside the root or hidden.
  EXPECT_EQ(HandleNow(**gateway, "GET", "/../outside.txt").status, 404);
  EXPECT_EQ(HandleNow(**gateway, "GET", "/%2e%2e/outside.txt").status, 404);
  EXPECT_EQ(HandleNow(**gateway, "GET", "/.env").status, 404);
  // The API keeps its own answers.
  EXPECT_EQ(HandleNow(**gateway, "GET", "/v1/nothing").status, 404);
  EXPECT_THAT(HandleNow(**gateway, "GET", "/v1/nothing").content_type, HasSubstr("json"));
  std::filesystem::remove_all(root);
}

// Creates a job over REST and returns its id.
// A signed URL for `path` (POST /v1/auth:signUrl through the gateway).
std::string SignUrl(Client& client, const std::string& token, const std::string& path) {
  const Reply signed_url = client.Send("POST", "/v1/auth:signUrl", R"({"path": ")" + path + R"("})", token);
  EXPECT_EQ(signed_url.status, 200) << signed_url.body;
  v1::SignedUrl out;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(signed_url.body, &out).ok()) << signed_url.body;
  return out.url();
}

std::string CreateJob(Client& client, const std::string& token) {
  const Reply created = client.Send(
      "POST", "/v1/jobs", R"({"model": "mlp-policy", "datasetUrl": "synthetic://reach", "hyperparameters": {"steps": 50}})",
      token);
  EXPECT_EQ(created.status, 200) << created.body;
  v1::Job job;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(created.body, &job).ok()) << created.body;
  return job.id();
}

TEST_F(GatewayTest, WatchAsServerSentEventsResumesWithLastEventId) {
  Client client(server_->port());
  const std::string id = CreateJob(client, ada_.token);
  StreamClient watch(server_->port(), "/v1/jobs/" + id + ":watch", ada_.token, "text/event-stream");
  ASSERT_TRUE(watch.ReadUntil("\n\n")) << watch.head() << watch.body();
  EXPECT_THAT(watch.head(), HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(watch.head(), HasSubstr("Content-Type: text/event-stream"));
  EXPECT_THAT(watch.body(), ::testing::StartsWith("id: 1\ndata: {"));
  EXPECT_THAT(watch.body(), HasSubstr(R"("type":"CREATED")"));

  // A live event, then the end marker after the terminal one.
  ASSERT_EQ(client.Send("POST", "/v1/jobs/" + id + ":cancel", "{}", ada_.token).status, 200);
  ASSERT_TRUE(watch.ReadToEnd()) << watch.body();
  EXPECT_THAT(watch.body(), HasSubstr("id: 2\ndata: {"));
  EXPECT_THAT(watch.body(), HasSubstr(R"("state":"CANCELLED")"));
  EXPECT_THAT(watch.body(), ::testing::EndsWith("event: end\ndata: {}\n\n"));

  // Resuming after event 1 sends event 2 only.
  StreamClient resumed(server_->port(), "/v1/jobs/" + id + ":watch", ada_.token, "text/event-stream", "1");
  ASSERT_TRUE(resumed.ReadToEnd()) << resumed.body();
  EXPECT_THAT(resumed.body(), ::testing::StartsWith("id: 2\ndata: {"));
  EXPECT_THAT(resumed.body(), ::testing::Not(HasSubstr("id: 1\n")));

  // A Last-Event-ID that is no sequence number: 400 before any stream.
  StreamClient bad(server_->port(), "/v1/jobs/" + id + ":watch", ada_.token, "text/event-stream", "yesterday");
  ASSERT_TRUE(bad.ReadUntil("}")) << bad.head() << bad.body();
  EXPECT_THAT(bad.head(), HasSubstr("HTTP/1.1 400"));
  EXPECT_THAT(bad.body(), HasSubstr("Last-Event-ID"));
}

TEST_F(GatewayTest, NdjsonStreamsAndErrorsBeforeTheFirstByteAreOrdinaryAnswers) {
  Client client(server_->port());
  const std::string id = CreateJob(client, ada_.token);
  ASSERT_EQ(client.Send("POST", "/v1/jobs/" + id + ":cancel", "{}", ada_.token).status, 200);
  StreamClient lines(server_->port(), "/v1/jobs/" + id + ":watch", ada_.token, "application/x-ndjson");
  ASSERT_TRUE(lines.ReadToEnd()) << lines.body();
  EXPECT_THAT(lines.head(), HasSubstr("Content-Type: application/x-ndjson"));
  const std::vector<std::string> rows = absl::StrSplit(lines.body(), '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 2u) << lines.body();
  for (const std::string& row : rows) {
    EXPECT_THAT(row, ::testing::StartsWith(R"({"result":{"jobId":")"));
    EXPECT_THAT(row, ::testing::EndsWith("}}"));
  }

  // Not found and not yours: the status code, not a 200 stream.
  StreamClient missing(server_->port(), "/v1/jobs/00000000-0000-4000-8000-000000000000:watch", ada_.token,
                       "text/event-stream");
  ASSERT_TRUE(missing.ReadUntil("}")) << missing.head();
  EXPECT_THAT(missing.head(), HasSubstr("HTTP/1.1 404"));
  EXPECT_THAT(missing.body(), HasSubstr(R"("code":5)"));
  const testing::TestMesh::User eve = mesh_.AddUser("eve");
  StreamClient stranger(server_->port(), "/v1/jobs/" + id + ":watch", eve.token, "text/event-stream");
  ASSERT_TRUE(stranger.ReadUntil("}")) << stranger.head();
  EXPECT_THAT(stranger.head(), ::testing::AnyOf(HasSubstr("HTTP/1.1 404"), HasSubstr("HTTP/1.1 403")));

  // Client-streaming methods cannot be carried; the answer says what can.
  const Reply report = client.Send("POST", "/v1/jobs/" + id + "/metrics:report", "{}", ada_.token);
  EXPECT_EQ(report.status, 501);
  EXPECT_THAT(report.body, HasSubstr("batchReport"));
}

// ?access_token= takes only a signed URL's token, for the path it was signed
// for; the token opens nothing else, and no other credential rides in a URL.
TEST_F(GatewayTest, SignedUrlsOpenTheirOwnPathOnly) {
  Client client(server_->port());
  const std::string id = CreateJob(client, ada_.token);
  const std::string events = "/v1/jobs/" + id + ":watch";
  const std::string url = SignUrl(client, ada_.token, events);
  ASSERT_TRUE(absl::StartsWith(url, events + "?access_token=")) << url;
  const std::string token = url.substr(url.find('=') + 1);
  {
    StreamClient opened(server_->port(), url, "", "text/event-stream");
    ASSERT_TRUE(opened.ReadUntil("\"CREATED\"")) << opened.head() << opened.body();
    EXPECT_THAT(opened.head(), HasSubstr("HTTP/1.1 200"));
  }
  auto refused = [&](const std::string& target, const std::string& header) {
    StreamClient s(server_->port(), target, header, "text/event-stream");
    EXPECT_TRUE(s.ReadUntil("}")) << target << ": " << s.head();
    EXPECT_THAT(s.head() + s.body(), ::testing::AnyOf(HasSubstr("HTTP/1.1 401"), HasSubstr(R"("code":16)")))
        << target << ": " << s.body();
    return s.body();
  };
  // A login token in the URL.
  EXPECT_THAT(refused(events + "?access_token=" + ada_.token, ""), HasSubstr("signed URL"));
  // The signed token on another path of the same job, or on a query of its own.
  refused("/v1/jobs/" + id + "/logs:stream?access_token=" + token, "");
  refused("/v1/jobs:watch?access_token=" + token, "");
  // The same path with a query it was not signed with.
  refused(events + "?afterSeq=1&access_token=" + token, "");
  // The signed token as a bearer credential, streams and unary calls alike.
  refused(events, token);
  const Reply get = client.Send("GET", "/v1/jobs/" + id, "", token);
  EXPECT_EQ(get.status, 401) << get.body;
  // Only streams and downloads can be signed, never for a job token or URL.
  const Reply list = client.Send("POST", "/v1/auth:signUrl", R"({"path": "/v1/jobs"})", ada_.token);
  EXPECT_EQ(list.status, 400) << list.body;
  EXPECT_THAT(list.body, HasSubstr(R"("field":"path")"));
  const Reply again = client.Send("POST", "/v1/auth:signUrl", R"({"path": ")" + events + R"("})", token);
  EXPECT_EQ(again.status, 401) << again.body;
  // Another user's job: the signature is fine, the job is not theirs.
  const testing::TestMesh::User eve = mesh_.AddUser("eve");
  StreamClient stranger(server_->port(), SignUrl(client, eve.token, events), "", "text/event-stream");
  ASSERT_TRUE(stranger.ReadUntil("}")) << stranger.head();
  EXPECT_THAT(stranger.head() + stranger.body(), ::testing::AnyOf(HasSubstr("HTTP/1.1 404"), HasSubstr(R"("code":5)")));
}

TEST_F(GatewayTest, IdleStreamsGetHeartbeatsAndEndWhenTheClientLeaves) {
  Client client(server_->port());
  const std::string id = CreateJob(client, ada_.token);
  {
    // EventSource cannot send headers: a signed URL carries its own token.
    StreamClient metrics(server_->port(), SignUrl(client, ada_.token, "/v1/jobs/" + id + "/metrics:stream"), "",
                         "text/event-stream");
    ASSERT_TRUE(metrics.ReadUntil(": heartbeat\n\n")) << metrics.head() << metrics.body();
    EXPECT_THAT(metrics.head(), HasSubstr("HTTP/1.1 200"));
    EXPECT_EQ(gateway_->open_streams(), 1);
    metrics.Close();
  }
  // The backend call ends once the gateway sees the client gone.
  for (int i = 0; i < 2000 && gateway_->open_streams() != 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(gateway_->open_streams(), 0);
  const Reply metrics = client.Send("GET", "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("trainmesh_gateway_open_streams 0"));
}

TEST_F(GatewayTest, AQuietStreamIsSeenOpenWithoutWaitingForAHeartbeat) {
  GatewayOptions options;
  options.backends = {{"trainmesh.v1.JobService", mesh_.jobs_endpoint()}};
  options.heartbeat = absl::Hours(1);
  auto gateway = Gateway::Create(options);
  ASSERT_TRUE(gateway.ok());
  HttpServer server(HttpServer::Options{}, [&](const HttpRequest& r, std::function<void(HttpResponse)> done) {
    (*gateway)->Handle(r, std::move(done));
  });
  ASSERT_TRUE(server.Start().ok());
  // The caller's jobs feed says nothing until a job changes; its head comes
  // anyway (the read times out after 20 s, long before the heartbeat).
  StreamClient feed(server.port(), "/v1/jobs:watch", ada_.token, "text/event-stream");
  ASSERT_TRUE(feed.ReadHead());
  EXPECT_THAT(feed.head(), HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(feed.head(), HasSubstr("Content-Type: text/event-stream"));
  // And a job that changes comes through it.
  Client client(server.port());
  const std::string id = CreateJob(client, ada_.token);
  ASSERT_EQ(client.Send("POST", "/v1/jobs/" + id + ":cancel", "{}", ada_.token).status, 200);
  ASSERT_TRUE(feed.ReadUntil(R"("state":"CANCELLED")")) << feed.body();
  EXPECT_THAT(feed.body(), HasSubstr(id));
}

TEST_F(GatewayTest, DrainEndsStreamsFinishesRequestsAndRefusesNewConnections) {
  Client client(server_->port());
  const std::string id = CreateJob(client, ada_.token);
  StreamClient watch(server_->port(), "/v1/jobs/" + id + ":watch", ada_.token, "text/event-stream");
  ASSERT_TRUE(watch.ReadUntil("id: 1\n"));
  Client idle(server_->port());
  ASSERT_EQ(idle.Send("GET", "/healthz").status, 200);

  EXPECT_TRUE(server_->Drain(absl::Seconds(10)));
  EXPECT_EQ(server_->open_connections(), 0u);
  // The stream got its final chunk (a clean end: the client resumes elsewhere).
  EXPECT_TRUE(watch.ReadToEnd());
  EXPECT_THAT(watch.body(), ::testing::Not(HasSubstr("event: error")));
  // Nobody listens any more.
  net::io_context ioc;
  net::ip::tcp::socket late(ioc);
  beast::error_code ec;
  late.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server_->port())),
               ec);
  EXPECT_TRUE(ec) << "connected after the drain";
}

}  // namespace
}  // namespace trainmesh::gateway
