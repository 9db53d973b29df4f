// The scheduler repository: the `scheduler` schema. Every state change writes
// its report for the jobs service into the outbox in the same transaction.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/scheduler.pb.h"

namespace trainmesh::scheduler {

// NOTIFY channel: a job became claimable (payload: its owner).
inline constexpr char kQueueChannel[] = "trainmesh_queue";

struct AgentRecord {
  trainmesh::v1::Agent agent;
};

// What an agent may take.
struct Taker {
  std::string agent_id;
  std::string owner;
  bool shared_pool = false;
  std::vector<std::string> recipes;  // empty: all
  bool allow_scripts = true;
  bool allow_shared_scripts = false;
};

struct Claimed {
  trainmesh::v1::Job job;
  int attempt = 0;
  std::optional<trainmesh::v1::Artifact> resume_from;
  absl::Time lease_expires;
};

struct HeartbeatResult {
  bool cancel_requested = false;
  absl::Time lease_expires;
};

struct ReapResult {
  int requeued = 0;
  int failed = 0;
  int timed_out = 0;
  int agents_offline = 0;
};

// What the scheduler's gauges show (one query per scrape).
struct QueueStats {
  int64_t queued = 0;
  int64_t running = 0;
  // Of the job waiting longest; 0 when none waits.
  double oldest_wait_seconds = 0;
  int64_t agents_online = 0;
  // Silent agents seen within the last day (scaled-down pods register anew,
  // so older ones would only pile up).
  int64_t agents_offline = 0;
  // Job slots of the online agents that are not draining.
  int64_t slots_online = 0;
  // Status reports not yet delivered to the jobs service.
  int64_t outbox_pending = 0;
};

class SchedulerStore {
 public:
  explicit SchedulerStore(pg::ConnectionPool* pool) : pool_(pool) {}

  // Queues the job unless it was queued before (then false). A retry that
  // resumes starts from its predecessor's latest checkpoint.
  absl::StatusOr<bool> Enqueue(const trainmesh::v1::Job& job, bool resume_from_predecessor);
  // The most of `owner`'s jobs that may run at once; 0: the mesh default.
  absl::Status SetOwnerLimit(const std::string& owner, int max_running);

  // QUEUED: done at once. RUNNING: the agent is told at its next heartbeat.
  // Returns whether an agent runs it. Unknown jobs: nothing to do.
  absl::StatusOr<bool> Cancel(const std::string& job_id);

  absl::StatusOr<trainmesh::v1::Agent> RegisterAgent(const std::string& owner,
                                                     const std::string& agent_id,
                                                     const trainmesh::v1::Agent& agent);
  // NOT_FOUND unless it is `owner`'s agent.
  absl::StatusOr<trainmesh::v1::Agent> Agent(const std::string& agent_id, const std::string& owner,
                                             absl::Duration online_within);
  // The owner's agents and, when `with_shared`, the shared pool's.
  absl::StatusOr<std::vector<trainmesh::v1::Agent>> Agents(const std::string& owner,
                                                           absl::Duration online_within,
                                                           bool include_offline);
  absl::Status TouchAgent(const std::string& agent_id);

  // Claims the best job `taker` may run, leasing it for `lease`. `mint` makes
  // the job token inside the transaction (no token, no claim). nullopt when
  // nothing is claimable. Owners at `max_running` are skipped.
  using Mint = std::function<absl::StatusOr<std::string>(const trainmesh::v1::Job& job, int attempt)>;
  absl::StatusOr<std::optional<std::pair<Claimed, std::string>>> Claim(const Taker& taker,
                                                                       int max_running,
                                                                       absl::Duration lease,
                                                                       const Mint& mint);

  // All fenced by attempt: FAILED_PRECONDITION when the attempt is not the
  // job's current one or the job is not running.
  absl::StatusOr<HeartbeatResult> Heartbeat(const std::string& job_id, int attempt,
                                            const trainmesh::v1::Progress* progress,
                                            trainmesh::v1::Job::State state,
                                            const trainmesh::v1::Artifact* checkpoint,
                                            absl::Duration lease,
                                            absl::Duration progress_report_interval);
  absl::Status Complete(const std::string& job_id, int attempt,
                        const trainmesh::v1::Artifact& artifact,
                        const trainmesh::v1::Progress* progress);
  // Returns whether the job was requeued.
  absl::StatusOr<bool> Fail(const std::string& job_id, int attempt, const std::string& error,
                            trainmesh::v1::ErrorKind kind, const trainmesh::v1::Artifact* checkpoint);
  absl::Status Release(const std::string& job_id, int attempt,
                       const trainmesh::v1::Artifact* checkpoint, const std::string& reason);

  // Expired leases (older than `grace` past expiry) -> requeue or fail;
  // unclaimed past queue_timeout -> fail; silent agents -> offline.
  absl::StatusOr<ReapResult> Reap(absl::Duration grace);

  absl::StatusOr<QueueStats> Stats(absl::Duration online_within);

  absl::StatusOr<trainmesh::v1::QueuePosition> QueuePosition(const std::string& job_id,
                                                             const std::string& owner,
                                                             int max_running,
                                                             absl::Duration online_within);

 private:
  pg::ConnectionPool* pool_;
};

}  // namespace trainmesh::scheduler
