#include "gateway/gateway.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/json/json.h"
#include "libs/log/log.h"
#include "libs/status/field_violations.h"
#include "libs/status/grpc_status.h"
#include "libs/transcoding/openapi.h"
#include "protos/registry.h"
#include "libs/tls/tls.h"

namespace trainmesh::gateway {
namespace {

using google::protobuf::Message;

std::unique_ptr<Message> New(const google::protobuf::Descriptor* type) {
  return std::unique_ptr<Message>(google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
}

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (buffer.Dump(&slices).ok()) {
    for (const auto& part : slices) bytes.append(reinterpret_cast<const char*>(part.begin()), part.size());
  }
  return bytes;
}

grpc::ByteBuffer Buffer(const Message& message) {
  std::string bytes;
  message.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// The bytes field `data` of a chunk message (ArtifactChunk), served raw.
const google::protobuf::FieldDescriptor* DataField(const google::protobuf::Descriptor* type) {
  const auto* field = type->FindFieldByName("data");
  return field != nullptr && field->type() == google::protobuf::FieldDescriptor::TYPE_BYTES && !field->is_repeated()
             ? field
             : nullptr;
}

// An int64 field by name (seq, after_seq), or null.
const google::protobuf::FieldDescriptor* Int64Field(const google::protobuf::Descriptor* type, const char* name) {
  const auto* field = type->FindFieldByName(name);
  return field != nullptr && field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_INT64 &&
                 !field->is_repeated()
             ? field
             : nullptr;
}

// What the gateway copies into a backend call's metadata, checked against what
// gRPC accepts in an ASCII header value (bytes 0x20-0x7E; it aborts the
// process on anything else) and against sane lengths. OK or INVALID_ARGUMENT
// naming the HTTP header or query parameter.
absl::Status CheckForwarded(const HttpRequest& request, absl::string_view authorization_source) {
  constexpr size_t kMaxAuthorization = 8 << 10;
  constexpr size_t kMaxRequestId = 128;
  auto printable = [](absl::string_view value) {
    for (const char c : value) {
      if (c < 0x20 || c > 0x7e) return false;
    }
    return true;
  };
  status::FieldViolations violations;
  if (!printable(request.authorization)) {
    violations.Add(std::string(authorization_source), "may hold only printable ASCII characters");
  } else if (request.authorization.size() > kMaxAuthorization) {
    violations.Add(std::string(authorization_source), absl::StrCat("must be at most ", kMaxAuthorization, " bytes"));
  }
  if (!printable(request.request_id)) {
    violations.Add("X-Request-Id", "may hold only printable ASCII characters");
  } else if (request.request_id.size() > kMaxRequestId) {
    violations.Add("X-Request-Id", absl::StrCat("must be at most ", kMaxRequestId, " bytes"));
  }
  if (!printable(request.signed_url) || request.signed_url.size() > kMaxAuthorization) {
    violations.Add("path", "of a signed URL must be printable ASCII, at most 8 KiB");
  }
  return violations.ToStatus("request headers cannot be forwarded");
}

// The metadata of every backend call made for `request` (after CheckForwarded).
void AddMetadata(const HttpRequest& request, grpc::ClientContext* context) {
  if (!request.authorization.empty()) context->AddMetadata("authorization", request.authorization);
  if (!request.request_id.empty()) context->AddMetadata("x-request-id", request.request_id);
  // Who is calling, for the services' per-client limits (login throttling);
  // they believe it only from the gateway's own address.
  if (!request.client_address.empty()) context->AddMetadata("x-forwarded-for", request.client_address);
  // The credential came from the URL: the services accept only a signed
  // URL's token for this very path (identity::kSignedUrlMetadata).
  if (!request.signed_url.empty()) context->AddMetadata("x-trainmesh-url", request.signed_url);
}

enum class Format { kSse, kNdjson, kRaw };

// A server-streaming call to a backend, pulled by the HTTP session: one
// message is read ahead at most, the next read starts when the session has
// written the previous one (flow control end to end).
class StreamCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>, public BodyStream {
 public:
  StreamCall(const transcoding::Route& route, Format format, absl::Duration heartbeat,
             telemetry::Gauge* open, std::shared_ptr<InFlightCalls> in_flight)
      : in_flight_(std::move(in_flight)),
        route_(route),
        format_(format),
        heartbeat_(heartbeat),
        open_(open) {
    open_->Add(1);
  }
  ~StreamCall() override { open_->Add(-1); }

  // gRPC may run a reaction inline inside a Start* call, so no Start* is
  // made while mu_ is held; a hold keeps OnDone away while reads may still
  // be started.
  void Start(grpc::GenericStub* stub, const HttpRequest& http, const Message& request,
             std::shared_ptr<StreamCall> self) {
    self_ = std::move(self);  // until OnDone
    AddMetadata(http, &context_);
    request_ = Buffer(request);
    stub->PrepareBidiStreamingCall(&context_, route_.grpc_path, grpc::StubOptions(), this);
    AddHold();
    {
      absl::MutexLock lock(&mu_);  // nothing else runs yet; the analysis wants it
      reading_ = true;
    }
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&read_);
    StartCall();
  }

  void Next(std::function<void(StreamPart)> ready) override {
    absl::ReleasableMutexLock lock(&mu_);
    if (ready_.has_value()) {
      StreamPart part = std::move(*ready_);
      ready_.reset();
      const bool read = !cancelled_ && hold_ && !reading_;
      reading_ = reading_ || read;
      lock.Release();
      if (read) StartRead(&read_);
      ready(std::move(part));
      return;
    }
    if (done_) {
      StreamPart part = FinalPart();
      lock.Release();
      ready(std::move(part));
      return;
    }
    waiting_ = std::move(ready);  // a read is outstanding, or OnDone will answer
  }

  void Cancel() override {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      release = hold_ && !reading_;  // an outstanding read releases it when it fails
      if (release) hold_ = false;
    }
    context_.TryCancel();
    if (release) RemoveHold();
  }

  std::string Heartbeat() const override { return format_ == Format::kSse ? ": heartbeat\n\n" : ""; }
  absl::Duration HeartbeatInterval() const override { return heartbeat_; }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the stream ended: no more reads, OnDone follows
      bool release = false;
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        release = hold_;
        hold_ = false;
      }
      if (release) RemoveHold();
      return;
    }
    StreamPart part = Encode(Bytes(read_));
    std::function<void(StreamPart)> deliver;
    bool read = false, release = false;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      sent_any_ = true;
      if (waiting_) {
        deliver = std::move(waiting_);
        waiting_ = nullptr;
      } else {
        ready_ = std::move(part);
      }
      if (!cancelled_ && deliver) {
        read = true;  // the next message, read ahead while this one is written
        reading_ = true;
      } else if (cancelled_ && hold_) {
        release = true;  // no read follows a cancel
        hold_ = false;
      }
    }
    if (read) StartRead(&read_);
    if (release) RemoveHold();
    if (deliver) deliver(std::move(part));
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<StreamCall> keep = std::move(self_);
    std::function<void(StreamPart)> deliver;
    StreamPart part;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      status_ = status;
      if (waiting_) {  // whoever waits gets what is left, else the end
        deliver = std::move(waiting_);
        waiting_ = nullptr;
        if (ready_.has_value()) {
          part = std::move(*ready_);
          ready_.reset();
        } else {
          part = FinalPart();
        }
      }
    }
    if (deliver) deliver(std::move(part));
  }

 private:
  // One message in the chosen format.
  StreamPart Encode(const std::string& bytes) {
    std::unique_ptr<Message> message = New(route_.method->output_type());
    if (!message->ParseFromString(bytes)) {
      return StreamPart{"", true, true, nullptr};
    }
    const auto* reflection = message->GetReflection();
    if (format_ == Format::kRaw) {
      return StreamPart{reflection->GetString(*message, DataField(message->GetDescriptor())), false, false, nullptr};
    }
    absl::StatusOr<std::string> json = transcoding::ResponseJson(route_, *message);
    if (!json.ok()) return StreamPart{"", true, true, nullptr};
    if (format_ == Format::kNdjson) return StreamPart{absl::StrCat("{\"result\":", *json, "}\n"), false, false, nullptr};
    std::string event;
    if (const auto* seq = Int64Field(message->GetDescriptor(), "seq"); seq != nullptr) {
      absl::StrAppend(&event, "id: ", reflection->GetInt64(*message, seq), "\n");
    }
    absl::StrAppend(&event, "data: ", *json, "\n\n");
    return StreamPart{std::move(event), false, false, nullptr};
  }

  // After the last message: an end marker, or the error (as an answer of its
  // own while nothing was sent, else as a final event).
  StreamPart FinalPart() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StreamPart part;
    part.last = true;
    if (cancelled_) return part;
    if (status_.ok()) {
      if (format_ == Format::kSse) part.data = "event: end\ndata: {}\n\n";
      return part;
    }
    auto error = std::make_shared<HttpResponse>(ErrorResponse(status_));
    if (format_ == Format::kSse) part.data = absl::StrCat("event: error\ndata: ", error->body, "\n\n");
    if (format_ == Format::kNdjson) part.data = absl::StrCat("{\"error\":", error->body, "}\n");
    if (format_ == Format::kRaw) part.abort = true;
    if (!sent_any_) part.error = std::move(error);
    return part;
  }

  InFlightCall in_flight_;  // first: released last
  const transcoding::Route& route_;
  const Format format_;
  const absl::Duration heartbeat_;
  telemetry::Gauge* const open_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_, read_;
  std::shared_ptr<StreamCall> self_;

  absl::Mutex mu_;
  std::function<void(StreamPart)> waiting_ ABSL_GUARDED_BY(mu_);
  std::optional<StreamPart> ready_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;  // a StartRead is outstanding
  bool hold_ ABSL_GUARDED_BY(mu_) = true;      // the hold taken in Start is still held
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

HttpResponse ErrorResponse(const grpc::Status& status) {
  google::rpc::Status body;
  // The details the service sent (field violations, retry info), when any.
  if (!status.error_details().empty()) body.ParseFromString(status.error_details());
  body.set_code(status.error_code());
  body.set_message(status::ValidUtf8(status.error_message()));
  HttpResponse out;
  out.status = transcoding::HttpStatus(status.error_code());
  if (!google::protobuf::util::MessageToJsonString(body, &out.body).ok()) {
    body.clear_details();
    (void)google::protobuf::util::MessageToJsonString(body, &out.body);
  }
  return out;
}

InFlightCall::InFlightCall(std::shared_ptr<InFlightCalls> calls) : calls_(std::move(calls)) {
  absl::MutexLock lock(&calls_->mu);
  ++calls_->count;
}

InFlightCall::~InFlightCall() {
  absl::MutexLock lock(&calls_->mu);
  --calls_->count;  // the destructor's Await sees it when the lock is released
}

Gateway::~Gateway() {
  InFlightCalls& calls = *in_flight_;
  absl::MutexLock lock(&calls.mu);
  auto none = [&calls]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(calls.mu) { return calls.count == 0; };
  while (!calls.mu.AwaitWithTimeout(absl::Condition(&none), absl::Seconds(10))) {
    TM_LOG(Warning, "waiting for backend calls to end").With("calls", calls.count);
  }
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
  openapi_ = transcoding::OpenApi(
      router_, {"trainmesh", "v1",
                "Submit, watch, cancel and retry training jobs; stream their progress, metrics and logs; download "
                "their models. Every route is the REST form of a gRPC method (google.api.http)."});
  for (const auto& [name, endpoint] : options_.backends) {
    auto& channel = channels_[endpoint];
    if (channel == nullptr) {
      channel = options_.channel_factory ? options_.channel_factory(endpoint)
                                         : tls::Channel(endpoint);
    }
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

void Gateway::Record(const std::string& route, int status, absl::Duration took) {
  const telemetry::LabelValues labels = {route, absl::StrCat(status)};
  requests_->With(labels).Add();
  request_seconds_->With(labels).Observe(absl::ToDoubleSeconds(took));
}

std::string Gateway::MetricsText() const {
  // The gateway's own series, then the process's (CPU, memory, files).
  return absl::StrCat(registry_.Render(), telemetry::Registry::Default().Render());
}

void Gateway::Ready(std::function<void(HttpResponse)> done) {
  struct Probe {
    explicit Probe(std::shared_ptr<InFlightCalls> calls) : in_flight(std::move(calls)) {}
    InFlightCall in_flight;  // first: released last
    absl::Mutex mu;
    size_t pending ABSL_GUARDED_BY(mu) = 0;
    std::map<std::string, std::string> states ABSL_GUARDED_BY(mu);  // endpoint -> SERVING or why not
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
  auto probe = std::make_shared<Probe>(in_flight_);
  probe->done = std::move(done);
  {
    absl::MutexLock lock(&probe->mu);
    probe->pending = channels_.size();
  }
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
          absl::MutexLock lock(&probe->mu);
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
  if (path == "/openapi.json" && request.method == "GET") {
    done(HttpResponse{200, "application/json", openapi_});
    return;
  }
  if (path == "/healthz") {
    done(HttpResponse{200, "application/json", "{\"status\":\"SERVING\"}"});
    return;
  }
  absl::StatusOr<transcoding::Router::Match> match = router_.Find(request.method, path);
  // Every API answer is counted under its route (unknown paths together).
  const std::string label =
      match.ok() ? absl::StrCat(match->route->http_method, " ", match->route->path.text()) : "unmatched";
  done = [this, label, start = absl::Now(), request_id = request.request_id,
          done = std::move(done)](HttpResponse response) {
    Record(label, response.status, absl::Now() - start);
    if (response.status >= 500) {
      TM_LOG(Warning, "request failed")
          .With("route", label)
          .With("status", static_cast<int64_t>(response.status))
          .With("request_id", request_id)
          .With("body", response.body.substr(0, 300));
    }
    done(std::move(response));
  };
  if (!match.ok() && match.status().code() == absl::StatusCode::kNotFound && !options_.web_root.empty() &&
      request.method == "GET" && !absl::StartsWith(path, "/v1/")) {
    done(Static(path));
    return;
  }
  if (!match.ok()) {
    HttpResponse error = ErrorResponse(status::ToGrpcStatus(match.status()));
    if (match.status().code() == absl::StatusCode::kUnimplemented) error.status = 405;
    done(std::move(error));
    return;
  }
  const transcoding::Route* route = match->route;
  if (route->method->client_streaming()) {
    done(ErrorResponse(grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        absl::StrCat(route->method->full_name(), " streams requests, which HTTP/1.1 JSON cannot carry; use gRPC",
                     route->method->name() == "ReportMetrics" ? " or the :batchReport route" : ""))));
    return;
  }
  HttpRequest effective = request;
  std::string effective_query = query;
  absl::string_view authorization_source = "Authorization";
  if (route->method->server_streaming()) {
    // A browser's EventSource or download link cannot set headers: a
    // streaming GET may carry a signed URL's token (POST /v1/auth:signUrl) as
    // ?access_token=; the services check it was signed for this path.
    std::string kept;
    for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      if (absl::StartsWith(pair, "access_token=")) {
        std::string token;
        if (effective.authorization.empty() &&
            transcoding::PercentDecode(pair.substr(std::strlen("access_token=")), true, &token)) {
          effective.authorization = absl::StrCat("Bearer ", token);
          authorization_source = "access_token";
        }
        continue;
      }
      absl::StrAppend(&kept, kept.empty() ? "" : "&", pair);
    }
    // What the URL was signed for: its path and query, less the token.
    if (authorization_source == "access_token") {
      effective.signed_url = kept.empty() ? std::string(path) : absl::StrCat(path, "?", kept);
    }
    effective_query = std::move(kept);
  }
  // Before any backend call: a value gRPC cannot carry is the client's error.
  if (absl::Status s = CheckForwarded(effective, authorization_source); !s.ok()) {
    done(ErrorResponse(status::ToGrpcStatus(s)));
    return;
  }
  std::unique_ptr<Message> message = New(route->method->input_type());
  if (absl::Status s = transcoding::BuildRequest(*match, effective_query, request.body, message.get()); !s.ok()) {
    done(ErrorResponse(status::ToGrpcStatus(s)));
    return;
  }
  if (route->method->server_streaming()) return Stream(effective, *route, std::move(message), std::move(done));
  auto stub = stubs_.find(route->method->service()->full_name());
  if (stub == stubs_.end()) {
    done(ErrorResponse(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no backend for this service")));
    return;
  }

  struct Call {
    explicit Call(std::shared_ptr<InFlightCalls> calls) : in_flight(std::move(calls)) {}
    InFlightCall in_flight;  // first: released last
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
    std::function<void(HttpResponse)> done;
  };
  auto call = std::make_shared<Call>(in_flight_);
  call->done = std::move(done);
  AddMetadata(effective, &call->context);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  call->request = Buffer(*message);
  stub->second->UnaryCall(&call->context, route->grpc_path, grpc::StubOptions(), &call->request, &call->response,
                          [call, route](grpc::Status s) {
                            if (!s.ok()) {
                              call->done(ErrorResponse(s));
                              return;
                            }
                            std::unique_ptr<Message> reply = New(route->method->output_type());
                            if (!reply->ParseFromString(Bytes(call->response))) {
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

namespace {

std::string ContentType(absl::string_view path) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
      {".ico", "image/x-icon"}, {".woff2", "font/woff2"}, {".txt", "text/plain; charset=utf-8"},
      {".map", "application/json"}, {".webmanifest", "application/manifest+json"}};
  for (const auto& [suffix, type] : kTypes) {
    if (absl::EndsWith(path, suffix)) return type;
  }
  return "application/octet-stream";
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  *out = bytes.str();
  return true;
}

}  // namespace

HttpResponse Gateway::Static(const std::string& path) const {
  HttpResponse response;
  response.headers = {{"X-Content-Type-Options", "nosniff"}};
  std::string decoded;
  // Only plain relative names under the root: no "..", no hidden files.
  bool safe = transcoding::PercentDecode(path, false, &decoded) && decoded.find('\0') == std::string::npos;
  for (absl::string_view part : absl::StrSplit(decoded, '/', absl::SkipEmpty())) {
    safe = safe && !absl::StartsWith(part, ".");
  }
  std::string file = options_.web_root + (decoded.empty() || decoded == "/" ? "/index.html" : decoded);
  std::error_code ec;
  if (safe && std::filesystem::is_regular_file(file, ec) && ReadFile(file, &response.body)) {
    response.content_type = ContentType(file);
    // Hashed build assets never change; everything else is revalidated.
    response.headers.emplace_back("Cache-Control", absl::StartsWith(decoded, "/assets/")
                                                       ? "public, max-age=31536000, immutable"
                                                       : "no-cache");
    return response;
  }
  // A path of the single-page app (no file extension): the app itself.
  const std::string last = decoded.substr(decoded.rfind('/') + 1);
  if (safe && last.find('.') == std::string::npos && ReadFile(options_.web_root + "/index.html", &response.body)) {
    response.content_type = "text/html; charset=utf-8";
    response.headers.emplace_back("Cache-Control", "no-cache");
    return response;
  }
  return ErrorResponse(grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no file ", path)));
}

void Gateway::Stream(const HttpRequest& request, const transcoding::Route& route, std::unique_ptr<Message> message,
                     std::function<void(HttpResponse)> done) {
  // SSE resume: the browser sends the id of the last event it saw.
  if (!request.last_event_id.empty()) {
    const auto* after = Int64Field(route.method->input_type(), "after_seq");
    int64_t seq = 0;
    if (after != nullptr) {
      if (!absl::SimpleAtoi(request.last_event_id, &seq) || seq < 0) {
        done(ErrorResponse(status::ToGrpcStatus(status::InvalidField(
            "Last-Event-ID", "must be the id of an event this stream sent (a sequence number)"))));
        return;
      }
      message->GetReflection()->SetInt64(message.get(), after, seq);
    }
  }
  auto stub = stubs_.find(route.method->service()->full_name());
  if (stub == stubs_.end()) {
    done(ErrorResponse(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no backend for this service")));
    return;
  }
  Format format = Format::kNdjson;
  HttpResponse response;
  if (absl::StrContains(request.accept, "text/event-stream")) {
    format = Format::kSse;
    response.content_type = "text/event-stream";
  } else if (absl::StrContains(request.accept, "application/x-ndjson")) {
    response.content_type = "application/x-ndjson";
  } else if (DataField(route.method->output_type()) != nullptr) {
    format = Format::kRaw;  // a download: the bytes themselves
    response.content_type = "application/octet-stream";
  } else {
    response.content_type = "application/x-ndjson";
  }
  response.headers = {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}};
  auto call =
      std::make_shared<StreamCall>(route, format, options_.heartbeat, open_streams_, in_flight_);
  call->Start(stub->second.get(), request, *message, call);
  response.stream = std::move(call);
  done(std::move(response));
}

}  // namespace trainmesh::gateway
