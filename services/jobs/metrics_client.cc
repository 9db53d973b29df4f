#include "services/jobs/metrics_client.h"

#include <memory>

#include "libs/rpc/call.h"
#include "trainmesh/v1/metrics.grpc.pb.h"
#include "libs/tls/tls.h"

namespace trainmesh::jobs {

std::function<absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse>(const std::string&)>
RecentMetricsFrom(const std::string& endpoint, const std::string& credential) {
  std::shared_ptr<trainmesh::v1::MetricsService::Stub> stub = trainmesh::v1::MetricsService::NewStub(
      tls::Channel(endpoint));
  return [stub, credential](const std::string& job_id) {
    trainmesh::v1::GetRecentMetricsRequest request;
    request.set_job_id(job_id);
    // A job page must not hang on telemetry.
    return rpc::Call("metrics service", *stub, &trainmesh::v1::MetricsService::Stub::GetRecentMetrics,
                     request, credential, absl::Milliseconds(500));
  };
}

}  // namespace trainmesh::jobs
