// The one converter between absl::Status (what our code returns) and
// grpc::Status (what goes on the wire). Payloads of the form
// "type.googleapis.com/<message>" travel as google.rpc.Status details, so
// field violations and retry hints reach every client.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace trainmesh::status {

// Same code and message; payloads become google.rpc.Status details in the
// `grpc-status-details-bin` trailer.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse, for clients: details come back as payloads.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace trainmesh::status
