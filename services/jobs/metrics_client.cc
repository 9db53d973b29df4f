#include "services/jobs/metrics_client.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "trainmesh/v1/metrics.grpc.pb.h"
#include "libs/tls/tls.h"

namespace trainmesh::jobs {

std::function<absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse>(const std::string&)>
RecentMetricsFrom(const std::string& endpoint, const std::string& credential) {
  std::shared_ptr<trainmesh::v1::MetricsService::Stub> stub = trainmesh::v1::MetricsService::NewStub(
      tls::Channel(endpoint));
  return [stub, credential](const std::string& job_id)
             -> absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse> {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + credential);
    // A job page must not hang on telemetry.
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
    trainmesh::v1::GetRecentMetricsRequest request;
    request.set_job_id(job_id);
    trainmesh::v1::GetRecentMetricsResponse response;
    grpc::Status s = stub->GetRecentMetrics(&ctx, request, &response);
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("metrics service: ", s.error_message()));
    return response;
  };
}

}  // namespace trainmesh::jobs
