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

// `fn(const Principal&)` returns absl::StatusOr<Response>.
template <typename Response, typename Fn>
grpc::ServerUnaryReactor* HandleUnary(grpc::CallbackServerContext* context, Executor& executor,
                                      const identity::Authenticator& authenticator,
                                      const google::protobuf::MethodDescriptor& method,
                                      Response* response, Fn&& fn) {
  const absl::Time start = absl::Now();
  return RunUnary(context, executor,
                  [context, &authenticator, &method, response, start,
                   fn = std::forward<Fn>(fn)]() mutable -> absl::Status {
                    absl::StatusOr<trainmesh::v1::Principal> principal =
                        authenticator.Authorize(*context, method);
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

// How every service declares and defines its handlers (the one way):
//
//   class FooServer final : public trainmesh::v1::FooService::CallbackService {
//     TM_UNARY_HANDLER(GetFoo, GetFooRequest, Foo);
//     TM_STREAM_HANDLER(WatchFoo, WatchFooRequest, FooEvent);
//     ...  // members executor_ (server::Executor*) and auth_ (const Authenticator*)
//   };
//
//   TM_DEFINE_UNARY_HANDLER(FooServer, "trainmesh.v1.FooService", GetFoo, GetFooRequest, Foo,
//                           service_->GetFoo(caller, *request))
//
// The last argument is the call, an expression of `caller` (the authenticated
// trainmesh.v1.Principal) and `request`; it runs on the executor after
// HandleUnary authenticated and authorised the caller.
#define TM_UNARY_HANDLER(Method, Request, Response)                                   \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* context,              \
                                   const trainmesh::v1::Request* request,            \
                                   trainmesh::v1::Response* response) override

#define TM_STREAM_HANDLER(Method, Request, Message)                                   \
  grpc::ServerWriteReactor<trainmesh::v1::Message>* Method(                           \
      grpc::CallbackServerContext* context, const trainmesh::v1::Request* request) override

#define TM_DEFINE_UNARY_HANDLER(Class, Service, Method, Request, Response, call)      \
  grpc::ServerUnaryReactor* Class::Method(grpc::CallbackServerContext* context,       \
                                          const trainmesh::v1::Request* request,     \
                                          trainmesh::v1::Response* response) {       \
    static const auto& method = identity::MethodOf(Service, #Method);                 \
    return server::HandleUnary(context, *executor_, *auth_, method, response,         \
                               [this, request](const trainmesh::v1::Principal& caller) { \
                                 (void)caller;                                        \
                                 (void)request;                                       \
                                 return call;                                         \
                               });                                                    \
  }
