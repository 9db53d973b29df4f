#include "libs/rpc/call.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace trainmesh::rpc {

void Prepare(grpc::ClientContext* context, absl::string_view credential, absl::Duration timeout) {
  if (!credential.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", credential));
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

absl::Status Failure(absl::string_view service, const grpc::Status& status,
                     std::initializer_list<grpc::StatusCode> keep) {
  for (grpc::StatusCode code : keep) {
    if (status.error_code() == code) {
      return absl::Status(static_cast<absl::StatusCode>(code), status.error_message());
    }
  }
  return absl::UnavailableError(absl::StrCat(service, ": ", status.error_message()));
}

}  // namespace trainmesh::rpc
