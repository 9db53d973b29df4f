// The base of every service's gRPC adapter. The build writes one adapter
// class template per service from the .proto files (protos/adapter_gen.cc:
// trainmesh/v1/<file>.adapter.h, e.g. trainmesh::v1::AuthServiceAdapter<Impl>);
// it binds each unary RPC to the method of `Impl` of the same name, called
// with (caller, request), (request) or () — whichever that method takes —
// through HandleUnary (credential, scopes, rate limit, executor, log). A
// request with a job_token field is authorised by that token when it is set.
//
// A service's server class derives from its adapter and writes only what
// does not fit that shape: streams, and unary RPCs with a reactor or an
// executor of their own (it overrides them). A unary RPC with neither a
// method of that name nor an override answers UNIMPLEMENTED.
//
//   class FooServer final : public trainmesh::v1::FooServiceAdapter<FooService> {
//    public:
//     FooServer(FooService* s, server::Executor* e, const identity::Authenticator* a)
//         : FooServiceAdapter(s, e, a) {}
//     TM_STREAM_HANDLER(WatchFoo, WatchFooRequest, FooEvent);
//   };
#pragma once

#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/handler.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::server {

// Requests with a job_token field (the agents' reports) are authorised by it.
template <typename Request, typename = void>
struct HasJobToken : std::false_type {};
template <typename Request>
struct HasJobToken<Request, std::void_t<decltype(std::declval<const Request&>().job_token())>>
    : std::true_type {};

template <typename Impl>
class Adapter {
 public:
  Adapter(Impl* service, Executor* executor, const identity::Authenticator* authenticator)
      : service_(service), executor_(executor), auth_(authenticator) {}

 protected:
  // `bound(impl, args...)` calls the implementation's method of the RPC's
  // name; it takes part in overload resolution only where that call is valid.
  template <typename Request, typename Response, typename Bound>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context,
                                  const google::protobuf::MethodDescriptor& method,
                                  const Request* request, Response* response, Bound bound) {
    using trainmesh::v1::Principal;
    constexpr bool kWithCaller =
        std::is_invocable_v<Bound, Impl&, const Principal&, const Request&>;
    constexpr bool kWithRequest = std::is_invocable_v<Bound, Impl&, const Request&>;
    constexpr bool kBare = std::is_invocable_v<Bound, Impl&>;
    if constexpr (kWithCaller || kWithRequest || kBare) {
      std::string body_token;
      if constexpr (HasJobToken<Request>::value) body_token = request->job_token();
      return HandleUnary(
          context, *executor_, *auth_, method, response,
          [this, request, bound](const Principal& caller) -> absl::StatusOr<Response> {
            if constexpr (kWithCaller) {
              return bound(*service_, caller, *request);
            } else if constexpr (kWithRequest) {
              (void)caller;
              return bound(*service_, *request);
            } else {
              (void)caller;
              (void)request;
              return bound(*service_);
            }
          },
          std::move(body_token));
    } else {
      (void)request;
      (void)response;
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                   absl::StrCat(method.full_name(), " has no handler")));
      return reactor;
    }
  }

  Impl* service_;
  Executor* executor_;
  const identity::Authenticator* auth_;
};

}  // namespace trainmesh::server
