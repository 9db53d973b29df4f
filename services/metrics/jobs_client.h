// The metrics service's view of the jobs service: whose job an id is, asked
// with this service's own credential (GetJobOwner needs scope "internal").
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace trainmesh::metrics {

// NOT_FOUND when the jobs service has no such job; UNAVAILABLE when it
// cannot be asked now.
std::function<absl::StatusOr<std::string>(const std::string& job_id)> JobOwnerFrom(const std::string& endpoint,
                                                                                   const std::string& credential);

}  // namespace trainmesh::metrics
