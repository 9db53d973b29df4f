#include "services/jobs/dispatch.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "libs/rpc/call.h"
#include "libs/log/log.h"
#include "services/jobs/state_machine.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"
#include "libs/tls/tls.h"

namespace trainmesh::jobs {
namespace {

using Delivery = pg::OutboxRelay::Delivery;

Delivery Outcome(const grpc::Status& s, const std::string& what, const std::string& job_id) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return Delivery::kDone;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
      TM_LOG(Error, "the scheduler refused a request for good")
          .With("request", what)
          .With("job_id", job_id)
          .With("error", s.error_message());
      return Delivery::kDone;
    default:
      TM_LOG(Warning, "scheduler unavailable; retrying")
          .With("request", what)
          .With("error", s.error_message());
      return Delivery::kRetryLater;
  }
}

}  // namespace

pg::OutboxRelay::Deliver DeliverToScheduler(JobStore* store, const std::string& scheduler_endpoint,
                                            const std::string& credential) {
  std::shared_ptr<trainmesh::v1::SchedulerService::Stub> stub =
      trainmesh::v1::SchedulerService::NewStub(
          tls::Channel(scheduler_endpoint));
  return [store, stub, credential](int64_t, const std::string& kind,
                                   const std::string& payload) -> Delivery {
    const std::string& job_id = payload;
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, credential, absl::Seconds(10));
    if (kind == "enqueue") {
      absl::StatusOr<StoredJob> job = store->Get(std::nullopt, job_id);
      if (!job.ok()) {
        if (job.status().code() == absl::StatusCode::kNotFound) return Delivery::kDone;
        return Delivery::kRetryLater;
      }
      if (IsTerminal(job->job.state())) return Delivery::kDone;  // cancelled before dispatch
      trainmesh::v1::EnqueueRequest request;
      request.set_job_id(job_id);
      *request.mutable_job() = job->job;
      trainmesh::v1::EnqueueResponse response;
      return Outcome(stub->Enqueue(&ctx, request, &response), kind, job_id);
    }
    if (kind == "cancel") {
      trainmesh::v1::CancelAssignmentRequest request;
      request.set_job_id(job_id);
      trainmesh::v1::CancelAssignmentResponse response;
      return Outcome(stub->CancelAssignment(&ctx, request, &response), kind, job_id);
    }
    TM_LOG(Error, "dropping an outbox row of unknown kind").With("kind", kind);
    return Delivery::kDone;
  };
}

}  // namespace trainmesh::jobs
