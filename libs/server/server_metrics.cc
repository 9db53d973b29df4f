#include "libs/server/server_metrics.h"

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

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

// The series of one method, looked up once: a call then updates them with no
// label lookup (the code's counter is looked up at its first use).
struct MethodSeries {
  MethodSeries(Families* families, telemetry::LabelValues labels) : families(families), labels(labels) {
    started = &families->started.With(labels);
    received = &families->received.With(labels);
    sent = &families->sent.With(labels);
    seconds = &families->seconds.With(labels);
    open = &families->open_streams.With(labels);
    for (auto& h : handled) h.store(nullptr);
  }
  telemetry::Counter& Handled(grpc::StatusCode code) {
    const size_t i = static_cast<size_t>(code) < handled.size() ? static_cast<size_t>(code) : 2;  // UNKNOWN
    telemetry::Counter* counter = handled[i].load(std::memory_order_acquire);
    if (counter == nullptr) {
      telemetry::LabelValues with_code = labels;
      with_code.emplace_back(CodeName(static_cast<grpc::StatusCode>(i)));
      counter = &families->handled.With(with_code);  // the same child for every racer
      handled[i].store(counter, std::memory_order_release);
    }
    return *counter;
  }
  Families* families;
  const telemetry::LabelValues labels;
  telemetry::Counter* started;
  telemetry::Counter* received;
  telemetry::Counter* sent;
  telemetry::Histogram* seconds;
  telemetry::Gauge* open;
  std::array<std::atomic<telemetry::Counter*>, 17> handled;  // by grpc::StatusCode
};

// One per call: created when it starts, destroyed when it is done.
class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(MethodSeries* series, bool streaming) : series_(series), streaming_(streaming) {
    series_->started->Add();
    if (streaming_) series_->open->Add(1);
  }

  ~MetricsInterceptor() override {
    // A call that ends without a status of ours was cancelled by its client
    // (or the deadline).
    if (!finished_) Finish(grpc::StatusCode::CANCELLED);
    if (streaming_) series_->open->Add(-1);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // A read that found the end of the stream arrives with no message.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      series_->received->Add();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) series_->sent->Add();
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) && !finished_) {
      Finish(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Finish(grpc::StatusCode code) {
    finished_ = true;
    series_->seconds->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    series_->Handled(code).Add();
  }

  MethodSeries* series_;
  const bool streaming_;
  bool finished_ = false;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  static constexpr size_t kMaxMethods = 512;

  explicit Factory(telemetry::Registry* registry) : families_(registry) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    const char* method = info->method() != nullptr ? info->method() : "/unknown/unknown";
    absl::MutexLock lock(&mu_);
    // Names a client made up (calls to no registered method) must not grow
    // the series without bound.
    if (by_method_.size() >= kMaxMethods && by_method_.count({method, static_cast<int>(info->type())}) == 0) {
      method = "/unknown/unknown";
    }
    std::unique_ptr<MethodSeries>& series = by_method_[{method, static_cast<int>(info->type())}];
    if (series == nullptr) {
      // "/trainmesh.v1.JobService/GetJob" → service, method.
      const absl::string_view full = method;
      const size_t slash = full.rfind('/');
      std::string service(slash != absl::string_view::npos && slash > 0 ? full.substr(1, slash - 1) : "unknown");
      std::string name(slash != absl::string_view::npos ? full.substr(slash + 1) : full);
      series = std::make_unique<MethodSeries>(
          &families_, telemetry::LabelValues{TypeName(info->type()), std::move(service), std::move(name)});
    }
    return new MetricsInterceptor(series.get(), info->type() != ServerRpcInfo::Type::UNARY);
  }

 private:
  Families families_;
  absl::Mutex mu_;
  // By the method's name and type (names of registered methods are few).
  std::map<std::pair<std::string, int>, std::unique_ptr<MethodSeries>> by_method_ ABSL_GUARDED_BY(mu_);
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
