#include "gateway/gateway.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/json/json.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/status.pb.h"
#include "libs/status/grpc_status.h"
#include "protos/registry.h"

namespace trainmesh::gateway {
namespace {

using google::protobuf::Message;

std::unique_ptr<Message> New(const google::protobuf::Descriptor* type) {
  return std::unique_ptr<Message>(google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
}

}  // namespace

HttpResponse ErrorResponse(const grpc::Status& status) {
  google::rpc::Status body;
  // The details the service sent (field violations, retry info), when any.
  if (!status.error_details().empty()) body.ParseFromString(status.error_details());
  body.set_code(status.error_code());
  body.set_message(status.error_message());
  HttpResponse out;
  out.status = transcoding::HttpStatus(status.error_code());
  if (!google::protobuf::util::MessageToJsonString(body, &out.body).ok()) {
    body.clear_details();
    (void)google::protobuf::util::MessageToJsonString(body, &out.body);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options) {
  std::vector<const google::protobuf::ServiceDescriptor*> services;
  for (const auto& [name, endpoint] : options.backends) {
    // From the registry, which links every service's descriptors in.
    const google::protobuf::ServiceDescriptor* service = nullptr;
    for (const auto* s : proto::Services()) {
      if (s->full_name() == name) service = s;
    }
    if (service == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown service ", name));
    services.push_back(service);
  }
  auto router = transcoding::Router::FromServices(services);
  if (!router.ok()) return router.status();
  std::unique_ptr<Gateway> gateway(new Gateway(std::move(options), *std::move(router)));
  return gateway;
}

Gateway::Gateway(GatewayOptions options, transcoding::Router router)
    : options_(std::move(options)), router_(std::move(router)) {
  for (const auto& [name, endpoint] : options_.backends) {
    auto& channel = channels_[endpoint];
    if (channel == nullptr) channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
    stubs_[name] = std::make_unique<grpc::GenericStub>(channel);
  }
}

bool Gateway::OriginAllowed(const std::string& origin) const {
  if (origin.empty()) return false;
  for (const std::string& allowed : options_.cors_origins) {
    if (allowed == "*" || allowed == origin) return true;
  }
  return false;
}

namespace {
constexpr double kBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

std::string Label(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

void Gateway::Record(const std::string& route, int status, absl::Duration took) {
  const double seconds = absl::ToDoubleSeconds(took);
  std::lock_guard<std::mutex> lock(metrics_mu_);
  Series& s = metrics_[{route, status}];
  if (s.buckets.empty()) s.buckets.assign(std::size(kBuckets), 0);
  ++s.count;
  s.seconds += seconds;
  for (size_t i = 0; i < std::size(kBuckets); ++i) {
    if (seconds <= kBuckets[i]) ++s.buckets[i];
  }
}

std::string Gateway::MetricsText() const {
  std::string out =
      "# HELP trainmesh_gateway_requests_total HTTP requests by route and status code.\n"
      "# TYPE trainmesh_gateway_requests_total counter\n";
  std::lock_guard<std::mutex> lock(metrics_mu_);
  for (const auto& [key, s] : metrics_) {
    absl::StrAppend(&out, "trainmesh_gateway_requests_total{route=\"", Label(key.first), "\",code=\"", key.second,
                    "\"} ", s.count, "\n");
  }
  out +=
      "# HELP trainmesh_gateway_request_seconds Time to answer, by route and status code.\n"
      "# TYPE trainmesh_gateway_request_seconds histogram\n";
  for (const auto& [key, s] : metrics_) {
    const std::string labels = absl::StrCat("route=\"", Label(key.first), "\",code=\"", key.second, "\"");
    for (size_t i = 0; i < std::size(kBuckets); ++i) {
      absl::StrAppend(&out, "trainmesh_gateway_request_seconds_bucket{", labels, ",le=\"", kBuckets[i], "\"} ",
                      s.buckets[i], "\n");
    }
    absl::StrAppend(&out, "trainmesh_gateway_request_seconds_bucket{", labels, ",le=\"+Inf\"} ", s.count, "\n");
    absl::StrAppend(&out, "trainmesh_gateway_request_seconds_sum{", labels, "} ", s.seconds, "\n");
    absl::StrAppend(&out, "trainmesh_gateway_request_seconds_count{", labels, "} ", s.count, "\n");
  }
  return out;
}

void Gateway::Ready(std::function<void(HttpResponse)> done) {
  struct Probe {
    std::mutex mu;
    size_t pending = 0;
    std::map<std::string, std::string> states;  // endpoint -> SERVING or why not
    std::function<void(HttpResponse)> done;
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::health::v1::HealthCheckResponse>> responses;
    std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> stubs;
    grpc::health::v1::HealthCheckRequest request;
  };
  if (channels_.empty()) {
    done(HttpResponse{200, "application/json", "{\"backends\":{},\"status\":\"READY\"}"});
    return;
  }
  auto probe = std::make_shared<Probe>();
  probe->done = std::move(done);
  probe->pending = channels_.size();
  for (const auto& [endpoint, channel] : channels_) {
    probe->contexts.push_back(std::make_unique<grpc::ClientContext>());
    probe->contexts.back()->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    probe->responses.push_back(std::make_unique<grpc::health::v1::HealthCheckResponse>());
    probe->stubs.push_back(grpc::health::v1::Health::NewStub(channel));
  }
  size_t i = 0;
  for (const auto& [endpoint, channel] : channels_) {
    auto* response = probe->responses[i].get();
    probe->stubs[i]->async()->Check(
        probe->contexts[i].get(), &probe->request, response,
        [probe, endpoint = endpoint, response](grpc::Status s) {
          std::lock_guard<std::mutex> lock(probe->mu);
          probe->states[endpoint] =
              !s.ok() ? absl::StrCat("unreachable: ", s.error_message())
              : response->status() == grpc::health::v1::HealthCheckResponse::SERVING
                  ? "SERVING"
                  : grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response->status());
          if (--probe->pending > 0) return;
          bool ready = true;
          std::string body = "{\"backends\":{";
          for (const auto& [name, state] : probe->states) {
            ready = ready && state == "SERVING";
            if (body.back() != '{') body += ",";
            json::AppendString(&body, name);
            body += ":";
            json::AppendString(&body, state);
          }
          absl::StrAppend(&body, "},\"status\":\"", ready ? "READY" : "NOT_READY", "\"}");
          probe->done(HttpResponse{ready ? 200 : 503, "application/json", std::move(body)});
        });
    ++i;
  }
}

void Gateway::Handle(const HttpRequest& request, std::function<void(HttpResponse)> done) {
  if (!OriginAllowed(request.origin)) return Route(request, std::move(done));
  // CORS: a preflight is answered here; every other answer names the origin.
  if (request.method == "OPTIONS") {
    HttpResponse preflight{204, "text/plain", ""};
    preflight.headers = {{"Access-Control-Allow-Origin", request.origin},
                         {"Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS"},
                         {"Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id, Last-Event-ID"},
                         {"Access-Control-Max-Age", "600"},
                         {"Vary", "Origin"}};
    done(std::move(preflight));
    return;
  }
  Route(request, [origin = request.origin, done = std::move(done)](HttpResponse response) {
    response.headers.emplace_back("Access-Control-Allow-Origin", origin);
    response.headers.emplace_back("Access-Control-Expose-Headers", "X-Request-Id");
    response.headers.emplace_back("Vary", "Origin");
    done(std::move(response));
  });
}

void Gateway::Route(const HttpRequest& request, std::function<void(HttpResponse)> done) {
  const size_t q = request.target.find('?');
  std::string path = request.target.substr(0, q);
  const std::string query = q == std::string::npos ? "" : request.target.substr(q + 1);
  // The auth service's signing keys where OIDC clients look for them.
  if (path == "/.well-known/jwks.json" && request.method == "GET") path = "/v1/auth/jwks";
  if (path == "/metrics" && request.method == "GET") {
    done(HttpResponse{200, "text/plain; version=0.0.4", MetricsText()});
    return;
  }
  if (path == "/readyz") return Ready(std::move(done));
  if (path == "/healthz") {
    done(HttpResponse{200, "application/json", "{\"status\":\"SERVING\"}"});
    return;
  }
  absl::StatusOr<transcoding::Router::Match> match = router_.Find(request.method, path);
  // Every API answer is counted under its route (unknown paths together).
  const std::string label =
      match.ok() ? absl::StrCat(match->route->http_method, " ", match->route->path.text()) : "unmatched";
  done = [this, label, start = absl::Now(), done = std::move(done)](HttpResponse response) {
    Record(label, response.status, absl::Now() - start);
    done(std::move(response));
  };
  if (!match.ok()) {
    HttpResponse error = ErrorResponse(status::ToGrpcStatus(match.status()));
    if (match.status().code() == absl::StatusCode::kUnimplemented) error.status = 405;
    done(std::move(error));
    return;
  }
  const transcoding::Route* route = match->route;
  if (route->method->server_streaming() || route->method->client_streaming()) {
    done(ErrorResponse(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                    absl::StrCat(route->method->full_name(),
                                                 " streams; this gateway serves unary methods only so far"))));
    return;
  }
  std::unique_ptr<Message> message = New(route->method->input_type());
  if (absl::Status s = transcoding::BuildRequest(*match, query, request.body, message.get()); !s.ok()) {
    done(ErrorResponse(status::ToGrpcStatus(s)));
    return;
  }
  auto stub = stubs_.find(route->method->service()->full_name());
  if (stub == stubs_.end()) {
    done(ErrorResponse(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no backend for this service")));
    return;
  }

  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
    std::function<void(HttpResponse)> done;
  };
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  if (!request.authorization.empty()) call->context.AddMetadata("authorization", request.authorization);
  if (!request.request_id.empty()) call->context.AddMetadata("x-request-id", request.request_id);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  std::string bytes;
  message->SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  call->request = grpc::ByteBuffer(&slice, 1);
  stub->second->UnaryCall(&call->context, route->grpc_path, grpc::StubOptions(), &call->request, &call->response,
                          [call, route](grpc::Status s) {
                            if (!s.ok()) {
                              call->done(ErrorResponse(s));
                              return;
                            }
                            std::vector<grpc::Slice> slices;
                            std::string bytes;
                            if (call->response.Dump(&slices).ok()) {
                              for (const auto& part : slices) {
                                bytes.append(reinterpret_cast<const char*>(part.begin()), part.size());
                              }
                            }
                            std::unique_ptr<Message> reply = New(route->method->output_type());
                            if (!reply->ParseFromString(bytes)) {
                              call->done(ErrorResponse(grpc::Status(grpc::StatusCode::INTERNAL,
                                                                    "the backend's reply does not parse")));
                              return;
                            }
                            absl::StatusOr<std::string> json = transcoding::ResponseJson(*route, *reply);
                            if (!json.ok()) {
                              call->done(ErrorResponse(status::ToGrpcStatus(json.status())));
                              return;
                            }
                            call->done(HttpResponse{200, "application/json", *std::move(json)});
                          });
}

}  // namespace trainmesh::gateway
