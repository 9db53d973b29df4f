// The one converter between absl::Status (what our code returns) and
// grpc::Status (what goes on the wire). Payloads of the form
// "type.googleapis.com/<message>" travel as google.rpc.Status details, so
// field violations and retry hints reach every client.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace trainmesh::status {

// Same code and message; payloads become google.rpc.Status details in the
// `grpc-status-details-bin` trailer.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse, for clients: details come back as payloads.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Error texts quote what a client sent (a path, a field name, a value), and
// proto3 strings and JSON must be UTF-8: every byte that is not part of a
// well-formed sequence becomes U+FFFD. ToGrpcStatus and FieldViolations apply
// it to everything they carry.
bool IsValidUtf8(absl::string_view text);
std::string ValidUtf8(absl::string_view text);

}  // namespace trainmesh::status
