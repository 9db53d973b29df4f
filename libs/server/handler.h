// The one path every unary RPC of every service takes: authenticate and
// authorise the caller against the method's declared scopes, run the handler
// on the executor, convert its status, and log the call.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/unary.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::server {

// One structured log line per call: method, code, latency, caller.
void LogCall(const google::protobuf::MethodDescriptor& method, const absl::Status& status,
             absl::Duration latency, const std::string& caller);

// `fn(const Principal&)` returns absl::StatusOr<Response>. A report that
// carries its job token in the body (`body_token`, when not empty) is
// authorised by that token rather than the header's credential.
template <typename Response, typename Fn>
grpc::ServerUnaryReactor* HandleUnary(grpc::CallbackServerContext* context, Executor& executor,
                                      const identity::Authenticator& authenticator,
                                      const google::protobuf::MethodDescriptor& method,
                                      Response* response, Fn&& fn, std::string body_token = "") {
  const absl::Time start = absl::Now();
  return RunUnary(
      context, executor,
      [context, &authenticator, &method, response, start, body_token = std::move(body_token),
       fn = std::forward<Fn>(fn)]() mutable -> absl::Status {
        absl::StatusOr<trainmesh::v1::Principal> principal =
            authenticator.AuthorizeWithBodyToken(*context, method, body_token);
        absl::Status status = principal.status();
        if (principal.ok()) {
          absl::StatusOr<Response> result = fn(*principal);
          status = result.status();
          if (result.ok()) *response = *std::move(result);
        }
        LogCall(method, status, absl::Now() - start,
                principal.ok() ? principal->subject() : std::string());
        return status;
      });
}

// How a stream learns its caller: the returned function authenticates and
// authorises like HandleUnary, later, on the executor (a WritePump's
// Authorize); a refusal is logged as a unary call's is. `context` and
// `method` must outlive the stream.
inline std::function<absl::StatusOr<trainmesh::v1::Principal>()> StreamCaller(
    const identity::Authenticator* authenticator, grpc::CallbackServerContext* context,
    const google::protobuf::MethodDescriptor& method) {
  return [authenticator, context, &method]() {
    absl::StatusOr<trainmesh::v1::Principal> caller = authenticator->Authorize(*context, method);
    if (!caller.ok()) LogCall(method, caller.status(), absl::ZeroDuration(), "");
    return caller;
  };
}

}  // namespace trainmesh::server

// What a server class (derived from its generated adapter, libs/server/adapter.h)
// declares for the RPCs it writes itself:
//
//   TM_UNARY_HANDLER(Login, LoginRequest, LoginResponse);
//   TM_STREAM_HANDLER(WatchFoo, WatchFooRequest, FooEvent);
#define TM_UNARY_HANDLER(Method, Request, Response)                       \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context,  \
                                   const trainmesh::v1::Request* request, \
                                   trainmesh::v1::Response* response) override

#define TM_STREAM_HANDLER(Method, Request, Message)         \
  grpc::ServerWriteReactor<trainmesh::v1::Message>* Method( \
      grpc::CallbackServerContext* context, const trainmesh::v1::Request* request) override
