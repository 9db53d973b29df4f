// Calls from one service to another: the caller's credential as a bearer
// token, a deadline, and what a failure means to the caller. Every
// service-to-service call of the mesh goes through here.
#pragma once

#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace trainmesh::rpc {

// Bearer `credential` (none when empty) and a deadline `timeout` from now.
void Prepare(grpc::ClientContext* context, absl::string_view credential, absl::Duration timeout);

// A failed call as the caller reports it: codes in `keep` as they are (the
// peer's answer: NOT_FOUND, say); any other UNAVAILABLE "<service>: <message>"
// (the peer is down, slow or refuses this service's own credential).
absl::Status Failure(absl::string_view service, const grpc::Status& status,
                     std::initializer_list<grpc::StatusCode> keep);

// One unary call: `(stub.*method)(context, request, &response)` prepared as
// above, failures mapped by Failure().
template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> Call(absl::string_view service, Stub& stub,
                              grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                           Response*),
                              const Request& request, absl::string_view credential,
                              absl::Duration timeout,
                              std::initializer_list<grpc::StatusCode> keep = {}) {
  grpc::ClientContext context;
  Prepare(&context, credential, timeout);
  Response response;
  const grpc::Status s = (stub.*method)(&context, request, &response);
  if (!s.ok()) return Failure(service, s, keep);
  return response;
}

}  // namespace trainmesh::rpc
