#include "services/metrics/jobs_client.h"

#include <memory>

#include "libs/rpc/call.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "libs/tls/tls.h"

namespace trainmesh::metrics {

std::function<absl::StatusOr<std::string>(const std::string&)> JobOwnerFrom(const std::string& endpoint,
                                                                            const std::string& credential) {
  std::shared_ptr<trainmesh::v1::JobControlService::Stub> stub = trainmesh::v1::JobControlService::NewStub(
      tls::Channel(endpoint));
  return [stub, credential](const std::string& job_id) -> absl::StatusOr<std::string> {
    trainmesh::v1::GetJobOwnerRequest request;
    request.set_id(job_id);
    auto owner = rpc::Call("jobs service", *stub, &trainmesh::v1::JobControlService::Stub::GetJobOwner,
                           request, credential, absl::Seconds(2), {grpc::StatusCode::NOT_FOUND});
    if (!owner.ok()) return owner.status();
    return owner->owner();
  };
}

}  // namespace trainmesh::metrics
