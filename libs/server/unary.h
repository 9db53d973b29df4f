// Finishing unary callback RPCs off the gRPC threads: the handler returns at
// once and the work (which may block on the database) runs on an Executor.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "libs/server/executor.h"
#include "libs/status/grpc_status.h"

namespace trainmesh::server {

// Runs `work()` (returning absl::Status) on `executor` and finishes the call
// with it. UNAVAILABLE at once when the server is draining.
template <typename Work>
grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context, Executor& executor,
                                   Work&& work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool queued = executor.Submit([reactor, work = std::forward<Work>(work)]() mutable {
    reactor->Finish(status::ToGrpcStatus(work()));
  });
  if (!queued) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
  }
  return reactor;
}

}  // namespace trainmesh::server
