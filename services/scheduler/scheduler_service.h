// The scheduler's logic, free of gRPC: who may enqueue, register, claim and
// report; the claim itself and every fenced report go through SchedulerStore.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/scheduler/scheduler_store.h"
#include "trainmesh/v1/auth.pb.h"
#include "trainmesh/v1/scheduler.pb.h"

namespace trainmesh::scheduler {

struct SchedulerOptions {
  int max_running_per_user = 8;
  absl::Duration lease = absl::Seconds(30);
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // An agent not heard from for this long is offline.
  absl::Duration online_within = absl::Seconds(30);
  // Progress goes to the jobs service at most this often per job.
  absl::Duration progress_report_interval = absl::Seconds(5);
  absl::Duration max_wait = absl::Seconds(60);
  // A job token for (job, attempt, agent), from the auth service.
  std::function<absl::StatusOr<trainmesh::v1::JobToken>(const trainmesh::v1::Job& job, int attempt,
                                                        const std::string& agent_id)>
      mint;
  // A fresh token with the same binding.
  std::function<absl::StatusOr<trainmesh::v1::JobToken>(const std::string& token)> renew;
  // The user's own limit on jobs running at once (User.max_running_jobs, 0:
  // the mesh default), from the auth service; NOT_FOUND for owners it does
  // not know (users of external identity providers). Asked at enqueue, at
  // most once per `user_limit_ttl` per owner.
  std::function<absl::StatusOr<int>(const std::string& owner)> user_limit;
  absl::Duration user_limit_ttl = absl::Minutes(1);
};

class SchedulerService {
 public:
  using Principal = trainmesh::v1::Principal;

  SchedulerService(SchedulerStore* store, SchedulerOptions options)
      : store_(store), options_(std::move(options)) {}

  absl::StatusOr<trainmesh::v1::EnqueueResponse> Enqueue(const Principal& caller,
                                                         const trainmesh::v1::EnqueueRequest& request);
  absl::StatusOr<trainmesh::v1::CancelAssignmentResponse> CancelAssignment(
      const Principal& caller, const trainmesh::v1::CancelAssignmentRequest& request);
  absl::StatusOr<trainmesh::v1::Agent> RegisterAgent(const Principal& caller,
                                                     const trainmesh::v1::RegisterAgentRequest& request);
  absl::StatusOr<trainmesh::v1::ListAgentsResponse> ListAgents(
      const Principal& caller, const trainmesh::v1::ListAgentsRequest& request);
  absl::StatusOr<trainmesh::v1::Agent> GetAgent(const Principal& caller,
                                                const trainmesh::v1::GetAgentRequest& request);

  // Checks the request and the agent (the caller's own, not draining).
  absl::StatusOr<trainmesh::v1::Agent> CheckAcquire(const Principal& caller,
                                                    const trainmesh::v1::AcquireJobRequest& request);
  // One claim attempt for `agent`; nullopt when nothing is claimable now.
  absl::StatusOr<std::optional<trainmesh::v1::Assignment>> TryAcquire(const trainmesh::v1::Agent& agent);
  absl::Duration Wait(const trainmesh::v1::AcquireJobRequest& request) const;
  // Gives back a job claimed for an agent that left before receiving it.
  void Unclaim(const trainmesh::v1::Assignment& assignment);

  // Reports about a running job: the caller is its job token, of the
  // current attempt (a stale one is FAILED_PRECONDITION: stop).
  absl::StatusOr<trainmesh::v1::HeartbeatResponse> Heartbeat(
      const Principal& caller, const trainmesh::v1::HeartbeatRequest& request);
  absl::StatusOr<trainmesh::v1::CompleteJobResponse> CompleteJob(
      const Principal& caller, const trainmesh::v1::CompleteJobRequest& request);
  absl::StatusOr<trainmesh::v1::FailJobResponse> FailJob(const Principal& caller,
                                                         const trainmesh::v1::FailJobRequest& request);
  absl::StatusOr<trainmesh::v1::ReleaseJobResponse> ReleaseJob(
      const Principal& caller, const trainmesh::v1::ReleaseJobRequest& request);
  absl::StatusOr<trainmesh::v1::QueuePosition> GetQueuePosition(
      const Principal& caller, const trainmesh::v1::GetQueuePositionRequest& request);

  const SchedulerOptions& options() const { return options_; }

 private:
  // Brings the owner's own concurrency limit into the store when it is not
  // known or was learnt too long ago; an auth outage leaves the last one.
  void RefreshOwnerLimit(const std::string& owner);

  SchedulerStore* store_;
  SchedulerOptions options_;
  absl::Mutex limits_mu_;
  struct KnownLimit {
    int limit;
    absl::Time learnt;
  };
  absl::flat_hash_map<std::string, KnownLimit> limits_ ABSL_GUARDED_BY(limits_mu_);
};

}  // namespace trainmesh::scheduler
