// Finishing unary callback RPCs off the gRPC threads: the handler returns at
// once and the work (which may block on the database) runs on an Executor.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "absl/time/time.h"
#include "libs/identity/rate_limiter.h"
#include "libs/server/executor.h"
#include "libs/status/grpc_status.h"

namespace trainmesh::server {

// Runs `work()` (returning absl::Status) on `executor` and finishes the call
// with it. UNAVAILABLE at once when the server is draining; RESOURCE_EXHAUSTED
// (with RetryInfo) at once when the executor's queue is full. A call whose
// client left (cancelled, deadline passed) while it waited is not run.
template <typename Work>
grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context, Executor& executor,
                                   Work&& work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const Executor::Admission admitted =
      executor.Offer([context, reactor, work = std::forward<Work>(work)]() mutable {
        if (context->IsCancelled()) {
          reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client left before the call ran"));
          return;
        }
        reactor->Finish(status::ToGrpcStatus(work()));
      });
  if (admitted == Executor::Admission::kStopped) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
  } else if (admitted == Executor::Admission::kFull) {
    reactor->Finish(status::ToGrpcStatus(
        identity::RetryLater("server busy: too many calls are waiting; retry shortly", absl::Seconds(1))));
  }
  return reactor;
}

}  // namespace trainmesh::server
