#include "services/scheduler/background.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "libs/rpc/call.h"
#include "libs/log/log.h"
#include "services/scheduler/scheduler_metrics.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "libs/tls/tls.h"

namespace trainmesh::scheduler {

Reaper::Reaper(SchedulerStore* store, absl::Duration period, absl::Duration lease,
               absl::Duration grace)
    : store_(store), period_(period), lease_(lease), grace_(grace) {}

Reaper::~Reaper() { Stop(); }

void Reaper::Start() { thread_ = std::thread([this] { Run(); }); }

void Reaper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Reaper::Run() {
  const absl::Time started = absl::Now();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), period_)) return;
    }
    // Right after a start, leases may look expired only because this
    // scheduler was down: give their agents one lease to check in.
    const absl::Duration grace = absl::Now() - started < lease_ ? absl::Hours(24 * 365) : grace_;
    absl::StatusOr<ReapResult> reaped = store_->Reap(grace);
    if (!reaped.ok()) {
      TM_LOG(Warning, "reaper failed").With("error", reaped.status());
    } else if (reaped->requeued + reaped->failed + reaped->timed_out > 0) {
      ReapedCounter("requeued").Add(reaped->requeued);
      ReapedCounter("failed").Add(reaped->failed);
      ReapedCounter("timed_out").Add(reaped->timed_out);
      TM_LOG(Info, "reaped")
          .With("requeued", reaped->requeued)
          .With("failed", reaped->failed)
          .With("timed_out", reaped->timed_out);
    }
  }
}

pg::OutboxRelay::Deliver DeliverToJobs(const std::string& jobs_endpoint,
                                       const std::string& credential) {
  std::shared_ptr<trainmesh::v1::JobControlService::Stub> stub =
      trainmesh::v1::JobControlService::NewStub(
          tls::Channel(jobs_endpoint));
  return [stub, credential](int64_t id, const std::string& kind,
                            const std::string& payload) -> pg::OutboxRelay::Delivery {
    trainmesh::v1::ReportJobStatusRequest report;
    if (kind != "report" || !report.ParseFromString(payload)) {
      TM_LOG(Error, "dropping an unreadable outbox row").With("id", id).With("kind", kind);
      return pg::OutboxRelay::Delivery::kDone;
    }
    report.set_report_seq(id);  // monotonic: the jobs service drops replays
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, credential, absl::Seconds(10));
    trainmesh::v1::Job job;
    grpc::Status s = stub->ReportJobStatus(&ctx, report, &job);
    switch (s.error_code()) {
      case grpc::StatusCode::OK:
        return pg::OutboxRelay::Delivery::kDone;
      case grpc::StatusCode::INVALID_ARGUMENT:
      case grpc::StatusCode::FAILED_PRECONDITION:
      case grpc::StatusCode::NOT_FOUND:
        // Refused for good (e.g. the job was cancelled meanwhile): nothing to retry.
        TM_LOG(Info, "status report refused")
            .With("job_id", report.id())
            .With("state", trainmesh::v1::Job::State_Name(report.state()))
            .With("error", s.error_message());
        return pg::OutboxRelay::Delivery::kDone;
      default:
        TM_LOG(Warning, "jobs service unavailable for a status report; retrying")
            .With("error", s.error_message());
        return pg::OutboxRelay::Delivery::kRetryLater;
    }
  };
}

}  // namespace trainmesh::scheduler
