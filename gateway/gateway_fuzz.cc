// libFuzzer target for the whole edge: raw bytes are parsed as an HTTP request
// exactly as a session parses them (libs/http, same limits), handed to the
// real gateway with every route, and every backend call it makes really starts
// on an in-process gRPC server, so what the gateway puts into metadata goes
// through gRPC core's checks (which abort the process on a value they cannot
// carry). Any input: an HTTP answer with a valid status, never a crash or hang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/gateway.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "libs/http/http_server.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"
#include "protos/registry.h"

namespace {

using trainmesh::httpd::HttpRequest;
using trainmesh::httpd::HttpResponse;
using trainmesh::httpd::StreamPart;

// Answers every method NOT_FOUND at once (after gRPC accepted the call).
class Backend final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "fuzz backend")); }
      void OnDone() override { delete this; }
    };
    return new Reactor;
  }
};

struct Edge {
  Edge() {
    grpc::ServerBuilder builder;
    builder.RegisterCallbackGenericService(&backend);
    server = builder.BuildAndStart();
    trainmesh::gateway::GatewayOptions options;
    for (const auto* service : trainmesh::proto::Services()) options.backends[service->full_name()] = "inproc";
    options.cors_origins = {"https://app.example"};
    options.channel_factory = [this](const std::string&) {
      return server->InProcessChannel(grpc::ChannelArguments());
    };
    auto created = trainmesh::gateway::Gateway::Create(options);
    if (!created.ok()) std::abort();
    gateway = *std::move(created);
  }
  Backend backend;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<trainmesh::gateway::Gateway> gateway;
};

Edge& TheEdge() {
  static Edge* edge = [] {
    trainmesh::log::SetSinkForTesting([](absl::string_view) {});  // quiet: 5xx answers are logged
    return new Edge;
  }();
  return *edge;
}

bool ValidStatus(int status) { return status >= 100 && status <= 599; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Edge& edge = TheEdge();
  auto request = trainmesh::httpd::ParseRequest(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!request.ok()) return 0;
  std::promise<HttpResponse> answered;
  edge.gateway->Handle(*request, [&answered](HttpResponse response) { answered.set_value(std::move(response)); });
  HttpResponse response = answered.get_future().get();
  if (!ValidStatus(response.status)) std::abort();
  // Error bodies quote what was sent; they must stay UTF-8 (JSON).
  if (response.status >= 400 && !trainmesh::status::IsValidUtf8(response.body)) std::abort();
  if (response.stream != nullptr) {
    // Pulled as a session pulls it: to its last part (the backend ends it at
    // once), a bounded number of parts.
    for (int i = 0; i < 8; ++i) {
      std::promise<StreamPart> next;
      response.stream->Next([&next](StreamPart part) { next.set_value(std::move(part)); });
      StreamPart part = next.get_future().get();
      if (part.error != nullptr && !ValidStatus(part.error->status)) std::abort();
      if (part.last) break;
    }
    response.stream->Cancel();
  }
  return 0;
}
