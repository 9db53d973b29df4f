#include "services/metrics/jobs_client.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "libs/tls/tls.h"

namespace trainmesh::metrics {

std::function<absl::StatusOr<std::string>(const std::string&)> JobOwnerFrom(const std::string& endpoint,
                                                                            const std::string& credential) {
  std::shared_ptr<trainmesh::v1::JobControlService::Stub> stub = trainmesh::v1::JobControlService::NewStub(
      tls::Channel(endpoint));
  return [stub, credential](const std::string& job_id) -> absl::StatusOr<std::string> {
    grpc::ClientContext ctx;
    if (!credential.empty()) ctx.AddMetadata("authorization", "Bearer " + credential);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    trainmesh::v1::GetJobOwnerRequest request;
    request.set_id(job_id);
    trainmesh::v1::JobOwner owner;
    grpc::Status s = stub->GetJobOwner(&ctx, request, &owner);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return absl::NotFoundError(s.error_message());
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("jobs service: ", s.error_message()));
    return owner.owner();
  };
}

}  // namespace trainmesh::metrics
