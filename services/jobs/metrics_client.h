// The jobs service's view of the metrics service: a job's latest points and
// cost for GetJob, fetched with this service's own credential.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::jobs {

std::function<absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse>(const std::string&)>
RecentMetricsFrom(const std::string& endpoint, const std::string& credential);

}  // namespace trainmesh::jobs
