#include "libs/server/server_metrics.h"

#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace trainmesh::server {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

struct Families {
  explicit Families(telemetry::Registry* r)
      : started(r->AddCounter("grpc_server_started_total", "RPCs started on the server.",
                              {"grpc_type", "grpc_service", "grpc_method"})),
        handled(r->AddCounter("grpc_server_handled_total", "RPCs completed on the server, by status code.",
                              {"grpc_type", "grpc_service", "grpc_method", "grpc_code"})),
        seconds(r->AddHistogram("grpc_server_handling_seconds",
                                "Time from an RPC's start to its status (a stream's whole life).",
                                {"grpc_type", "grpc_service", "grpc_method"})),
        received(r->AddCounter("grpc_server_msg_received_total", "Messages received by the server.",
                               {"grpc_type", "grpc_service", "grpc_method"})),
        sent(r->AddCounter("grpc_server_msg_sent_total", "Messages sent by the server.",
                           {"grpc_type", "grpc_service", "grpc_method"})),
        open_streams(r->AddGauge("trainmesh_grpc_server_open_streams",
                                 "Streaming RPCs open now (subscribers of watches and live streams).",
                                 {"grpc_type", "grpc_service", "grpc_method"})) {}
  telemetry::Family<telemetry::Counter>& started;
  telemetry::Family<telemetry::Counter>& handled;
  telemetry::Family<telemetry::Histogram>& seconds;
  telemetry::Family<telemetry::Counter>& received;
  telemetry::Family<telemetry::Counter>& sent;
  telemetry::Family<telemetry::Gauge>& open_streams;
};

const char* TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY: return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING: return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING: return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unknown";
}

// One per call: created when it starts, destroyed when it is done.
class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(Families* families, ServerRpcInfo* info) : families_(families) {
    // "/trainmesh.v1.JobService/GetJob" → service, method.
    const absl::string_view full = info->method() != nullptr ? info->method() : "/unknown/unknown";
    const size_t slash = full.rfind('/');
    std::string service(slash != absl::string_view::npos && slash > 0 ? full.substr(1, slash - 1) : "unknown");
    std::string method(slash != absl::string_view::npos ? full.substr(slash + 1) : full);
    labels_ = {TypeName(info->type()), std::move(service), std::move(method)};
    streaming_ = info->type() != ServerRpcInfo::Type::UNARY;
    families_->started.With(labels_).Add();
    received_ = &families_->received.With(labels_);
    sent_ = &families_->sent.With(labels_);
    if (streaming_) {
      open_ = &families_->open_streams.With(labels_);
      open_->Add(1);
    }
  }

  ~MetricsInterceptor() override {
    // A call that ends without a status of ours was cancelled by its client
    // (or the deadline).
    if (!finished_) Finish(grpc::StatusCode::CANCELLED);
    if (open_ != nullptr) open_->Add(-1);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // A read that found the end of the stream arrives with no message.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      received_->Add();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) sent_->Add();
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) && !finished_) {
      Finish(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Finish(grpc::StatusCode code) {
    finished_ = true;
    families_->seconds.With(labels_).Observe(absl::ToDoubleSeconds(absl::Now() - start_));
    std::vector<std::string> with_code = labels_;
    with_code.emplace_back(CodeName(code));
    families_->handled.With(with_code).Add();
  }

  Families* families_;
  telemetry::LabelValues labels_;
  bool streaming_ = false;
  bool finished_ = false;
  const absl::Time start_ = absl::Now();
  telemetry::Counter* received_ = nullptr;
  telemetry::Counter* sent_ = nullptr;
  telemetry::Gauge* open_ = nullptr;
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(telemetry::Registry* registry) : families_(registry) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new MetricsInterceptor(&families_, info);
  }

 private:
  Families families_;
};

}  // namespace

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "Canceled";
    case grpc::StatusCode::UNKNOWN: return "Unknown";
    case grpc::StatusCode::INVALID_ARGUMENT: return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND: return "NotFound";
    case grpc::StatusCode::ALREADY_EXISTS: return "AlreadyExists";
    case grpc::StatusCode::PERMISSION_DENIED: return "PermissionDenied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "ResourceExhausted";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FailedPrecondition";
    case grpc::StatusCode::ABORTED: return "Aborted";
    case grpc::StatusCode::OUT_OF_RANGE: return "OutOfRange";
    case grpc::StatusCode::UNIMPLEMENTED: return "Unimplemented";
    case grpc::StatusCode::INTERNAL: return "Internal";
    case grpc::StatusCode::UNAVAILABLE: return "Unavailable";
    case grpc::StatusCode::DATA_LOSS: return "DataLoss";
    case grpc::StatusCode::UNAUTHENTICATED: return "Unauthenticated";
    default: return "Unknown";
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MetricsInterceptorFactory(
    telemetry::Registry* registry) {
  return std::make_unique<Factory>(registry);
}

}  // namespace trainmesh::server
