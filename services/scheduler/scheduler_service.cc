#include "services/scheduler/scheduler_service.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/pg/ids.h"
#include "libs/artifacts/artifact_store.h"
#include "libs/identity/authenticator.h"
#include "libs/log/log.h"
#include "libs/status/field_violations.h"
#include "libs/status/status_macros.h"

namespace trainmesh::scheduler {
namespace {

using google::protobuf::util::TimeUtil;
using status::FieldViolations;
using trainmesh::v1::Job;

absl::Status CheckId(const std::string& id, const char* field) {
  if (pg::IsUuid(id)) return absl::OkStatus();
  return status::InvalidField(field, "must be an id (a UUID)");
}

bool HasScope(const trainmesh::v1::Principal& p, absl::string_view s) {
  return std::find(p.scopes().begin(), p.scopes().end(), s) != p.scopes().end();
}

google::protobuf::Timestamp Proto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

// The attempt a job-token caller reports for; fenced again in the store.
absl::StatusOr<int> ReportingAttempt(const trainmesh::v1::Principal& caller, const std::string& job_id) {
  TM_RETURN_IF_ERROR(CheckId(job_id, "job_id"));
  TM_RETURN_IF_ERROR(identity::CheckJobToken(caller, job_id, caller.attempt()));
  return caller.attempt();
}

// A checkpoint or model a trainer reports must be a file of the job it runs:
// another job's would hand its owner someone else's weights (download, resume).
absl::Status CheckOwnArtifact(const std::string& job_id, const trainmesh::v1::Artifact* artifact,
                              const char* field) {
  if (artifact == nullptr || artifact->uri().empty()) return absl::OkStatus();
  if (artifacts::ArtifactStore::IsJobUri(artifact->uri(), job_id)) return absl::OkStatus();
  return status::InvalidField(absl::StrCat(field, ".uri"), "must name a file of the job being reported");
}

}  // namespace

absl::StatusOr<trainmesh::v1::EnqueueResponse> SchedulerService::Enqueue(
    const Principal&, const trainmesh::v1::EnqueueRequest& request) {
  TM_RETURN_IF_ERROR(CheckId(request.job_id(), "job_id"));
  if (request.job().id() != request.job_id() || request.job().owner().empty() ||
      request.job().model().empty()) {
    return status::InvalidField("job", "must be the job with this id, its owner and recipe");
  }
  RefreshOwnerLimit(request.job().owner());
  TM_ASSIGN_OR_RETURN(bool fresh, store_->Enqueue(request.job(), request.job().resume_from_checkpoint()));
  trainmesh::v1::EnqueueResponse response;
  response.set_newly_queued(fresh);
  return response;
}

void SchedulerService::RefreshOwnerLimit(const std::string& owner) {
  if (!options_.user_limit) return;
  const absl::Time now = absl::Now();
  std::optional<int> known;
  {
    absl::MutexLock lock(&limits_mu_);
    auto it = limits_.find(owner);
    if (it != limits_.end()) {
      if (now - it->second.learnt < options_.user_limit_ttl) return;
      known = it->second.limit;
    }
  }
  absl::StatusOr<int> limit = options_.user_limit(owner);
  if (limit.status().code() == absl::StatusCode::kNotFound) limit = 0;  // the mesh default
  if (!limit.ok()) {
    TM_LOG(Warning, "cannot learn a user's concurrency limit").With("owner", owner).With("error", limit.status());
    return;
  }
  if (known != *limit) {
    if (absl::Status s = store_->SetOwnerLimit(owner, *limit); !s.ok()) {
      TM_LOG(Warning, "cannot store a user's concurrency limit").With("owner", owner).With("error", s);
      return;
    }
  }
  absl::MutexLock lock(&limits_mu_);
  if (limits_.size() >= 100000) limits_.clear();
  limits_[owner] = KnownLimit{*limit, now};
}

absl::StatusOr<trainmesh::v1::CancelAssignmentResponse> SchedulerService::CancelAssignment(
    const Principal&, const trainmesh::v1::CancelAssignmentRequest& request) {
  TM_RETURN_IF_ERROR(CheckId(request.job_id(), "job_id"));
  TM_ASSIGN_OR_RETURN(bool running, store_->Cancel(request.job_id()));
  trainmesh::v1::CancelAssignmentResponse response;
  response.set_running(running);
  return response;
}

absl::StatusOr<trainmesh::v1::Agent> SchedulerService::RegisterAgent(
    const Principal& caller, const trainmesh::v1::RegisterAgentRequest& request) {
  FieldViolations v;
  const trainmesh::v1::Agent& agent = request.agent();
  if (agent.name().empty() || agent.name().size() > 200) v.Add("agent.name", "must be 1-200 bytes");
  if (agent.max_concurrent_jobs() < 0 || agent.max_concurrent_jobs() > 64) {
    v.Add("agent.max_concurrent_jobs", "must be between 0 and 64");
  }
  if (!request.agent_id().empty() && !pg::IsUuid(request.agent_id())) v.Add("agent_id", "must be a UUID");
  TM_RETURN_IF_ERROR(v.ToStatus("invalid agent"));
  // The shared pool receives other users' jobs, their dataset URLs and job
  // tokens: only an admin puts an agent there, or a key an admin granted the
  // pool to (scope pool:shared, e.g. a trainer operator's agent key).
  if (agent.shared_pool() && !HasScope(caller, "admin") && !HasScope(caller, "pool:shared")) {
    return absl::PermissionDeniedError(
        "only an admin, or a key an admin granted scope pool:shared, may put an agent in the "
        "shared pool (shared_pool)");
  }
  if (agent.allow_shared_scripts() && !HasScope(caller, "admin")) {
    return absl::PermissionDeniedError(
        "only an admin may let an agent run other users' scripts (allow_shared_scripts)");
  }
  TM_ASSIGN_OR_RETURN(trainmesh::v1::Agent stored,
                      store_->RegisterAgent(caller.subject(), request.agent_id(), agent));
  TM_LOG(Info, "agent registered")
      .With("agent_id", stored.id())
      .With("owner", caller.subject())
      .With("device", stored.capabilities().device_type());
  return stored;
}

absl::StatusOr<trainmesh::v1::ListAgentsResponse> SchedulerService::ListAgents(
    const Principal& caller, const trainmesh::v1::ListAgentsRequest& request) {
  TM_ASSIGN_OR_RETURN(auto agents, store_->Agents(caller.subject(), options_.online_within,
                                                  request.include_offline()));
  trainmesh::v1::ListAgentsResponse response;
  for (auto& a : agents) {
    if (a.state() != trainmesh::v1::Agent::OFFLINE) response.set_online_count(response.online_count() + 1);
    *response.add_agents() = std::move(a);
  }
  return response;
}

absl::StatusOr<trainmesh::v1::Agent> SchedulerService::GetAgent(
    const Principal& caller, const trainmesh::v1::GetAgentRequest& request) {
  TM_RETURN_IF_ERROR(CheckId(request.id(), "id"));
  return store_->Agent(request.id(), caller.subject(), options_.online_within);
}

absl::Duration SchedulerService::Wait(const trainmesh::v1::AcquireJobRequest& request) const {
  const absl::Duration wait = absl::Seconds(request.wait().seconds()) + absl::Nanoseconds(request.wait().nanos());
  return std::clamp(wait, absl::ZeroDuration(), options_.max_wait);
}

absl::StatusOr<trainmesh::v1::Agent> SchedulerService::CheckAcquire(
    const Principal& caller, const trainmesh::v1::AcquireJobRequest& request) {
  TM_RETURN_IF_ERROR(CheckId(request.agent_id(), "agent_id"));
  if (request.wait().seconds() < 0) return status::InvalidField("wait", "must be >= 0");
  TM_ASSIGN_OR_RETURN(trainmesh::v1::Agent agent,
                      store_->Agent(request.agent_id(), caller.subject(), options_.online_within));
  if (agent.state() == trainmesh::v1::Agent::DRAINING) {
    return absl::FailedPreconditionError("the agent is draining; register again to take work");
  }
  return agent;
}

absl::StatusOr<std::optional<trainmesh::v1::Assignment>> SchedulerService::TryAcquire(
    const trainmesh::v1::Agent& agent) {
  (void)store_->TouchAgent(agent.id());
  Taker taker;
  taker.agent_id = agent.id();
  taker.owner = agent.owner();
  taker.shared_pool = agent.shared_pool();
  taker.recipes.assign(agent.capabilities().recipes().begin(), agent.capabilities().recipes().end());
  taker.allow_scripts = agent.allow_scripts();
  taker.allow_shared_scripts = agent.allow_shared_scripts();
  std::string token;
  absl::Time token_expiry;
  auto mint = [&](const Job& job, int attempt) -> absl::StatusOr<std::string> {
    if (!options_.mint) return absl::FailedPreconditionError("no job token minter");
    TM_ASSIGN_OR_RETURN(trainmesh::v1::JobToken t, options_.mint(job, attempt, agent.id()));
    token_expiry = absl::FromUnixSeconds(t.expire_time().seconds());
    return t.token();
  };
  TM_ASSIGN_OR_RETURN(auto claimed,
                      store_->Claim(taker, options_.max_running_per_user, options_.lease, mint));
  if (!claimed.has_value()) return std::optional<trainmesh::v1::Assignment>();
  auto& [c, job_token] = *claimed;
  trainmesh::v1::Assignment assignment;
  *assignment.mutable_job() = c.job;
  assignment.set_attempt(c.attempt);
  assignment.set_job_token(job_token);
  *assignment.mutable_lease_expire_time() = Proto(c.lease_expires);
  assignment.mutable_heartbeat_interval()->set_seconds(absl::ToInt64Seconds(options_.heartbeat_interval));
  assignment.mutable_heartbeat_interval()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(options_.heartbeat_interval) % 1000000000));
  if (c.resume_from.has_value()) *assignment.mutable_resume_from() = *c.resume_from;
  TM_LOG(Info, "job claimed")
      .With("job_id", c.job.id())
      .With("attempt", c.attempt)
      .With("agent_id", agent.id());
  return std::optional<trainmesh::v1::Assignment>(std::move(assignment));
}

void SchedulerService::Unclaim(const trainmesh::v1::Assignment& assignment) {
  absl::Status s = store_->Release(assignment.job().id(), assignment.attempt(), nullptr,
                                   "the agent left before receiving it");
  TM_LOG(Info, "claim given back").With("job_id", assignment.job().id()).With("status", s);
}

absl::StatusOr<trainmesh::v1::HeartbeatResponse> SchedulerService::Heartbeat(
    const Principal& caller, const trainmesh::v1::HeartbeatRequest& request) {
  TM_ASSIGN_OR_RETURN(int attempt, ReportingAttempt(caller, request.job_id()));
  if (request.state() != Job::STATE_UNSPECIFIED && request.state() != Job::INITIALIZING &&
      request.state() != Job::RUNNING) {
    return status::InvalidField("state", "must be INITIALIZING or RUNNING");
  }
  TM_RETURN_IF_ERROR(CheckOwnArtifact(request.job_id(), request.has_checkpoint() ? &request.checkpoint() : nullptr,
                                      "checkpoint"));
  TM_ASSIGN_OR_RETURN(
      HeartbeatResult beat,
      store_->Heartbeat(request.job_id(), attempt, request.has_progress() ? &request.progress() : nullptr,
                        request.state(), request.has_checkpoint() ? &request.checkpoint() : nullptr,
                        options_.lease, options_.progress_report_interval));
  if (!caller.agent_id().empty()) (void)store_->TouchAgent(caller.agent_id());
  trainmesh::v1::HeartbeatResponse response;
  response.set_cancel_requested(beat.cancel_requested);
  *response.mutable_lease_expire_time() = Proto(beat.lease_expires);
  // Renew the job token well before it runs out.
  if (options_.renew && caller.expire_time().seconds() - absl::ToUnixSeconds(absl::Now()) < 300) {
    absl::StatusOr<trainmesh::v1::JobToken> renewed = options_.renew(request.job_token());
    if (renewed.ok()) {
      response.set_job_token(renewed->token());
    } else {
      TM_LOG(Warning, "cannot renew a job token").With("job_id", request.job_id()).With("error", renewed.status());
    }
  }
  return response;
}

absl::StatusOr<trainmesh::v1::CompleteJobResponse> SchedulerService::CompleteJob(
    const Principal& caller, const trainmesh::v1::CompleteJobRequest& request) {
  TM_ASSIGN_OR_RETURN(int attempt, ReportingAttempt(caller, request.job_id()));
  TM_RETURN_IF_ERROR(CheckOwnArtifact(request.job_id(), request.has_artifact() ? &request.artifact() : nullptr,
                                      "artifact"));
  TM_RETURN_IF_ERROR(store_->Complete(request.job_id(), attempt, request.artifact(),
                                      request.has_progress() ? &request.progress() : nullptr));
  TM_LOG(Info, "job completed").With("job_id", request.job_id()).With("attempt", attempt);
  return trainmesh::v1::CompleteJobResponse();
}

absl::StatusOr<trainmesh::v1::FailJobResponse> SchedulerService::FailJob(
    const Principal& caller, const trainmesh::v1::FailJobRequest& request) {
  TM_ASSIGN_OR_RETURN(int attempt, ReportingAttempt(caller, request.job_id()));
  if (request.kind() == trainmesh::v1::ERROR_KIND_UNSPECIFIED) {
    return status::InvalidField("kind", "must say whether the failure is the user's or the infrastructure's");
  }
  TM_RETURN_IF_ERROR(CheckOwnArtifact(request.job_id(), request.has_checkpoint() ? &request.checkpoint() : nullptr,
                                      "checkpoint"));
  TM_ASSIGN_OR_RETURN(bool requeued,
                      store_->Fail(request.job_id(), attempt, request.error().substr(0, 64 << 10),
                                   request.kind(), request.has_checkpoint() ? &request.checkpoint() : nullptr));
  TM_LOG(Info, "job failed")
      .With("job_id", request.job_id())
      .With("attempt", attempt)
      .With("kind", trainmesh::v1::ErrorKind_Name(request.kind()))
      .With("requeued", requeued);
  trainmesh::v1::FailJobResponse response;
  response.set_requeued(requeued);
  return response;
}

absl::StatusOr<trainmesh::v1::ReleaseJobResponse> SchedulerService::ReleaseJob(
    const Principal& caller, const trainmesh::v1::ReleaseJobRequest& request) {
  TM_ASSIGN_OR_RETURN(int attempt, ReportingAttempt(caller, request.job_id()));
  TM_RETURN_IF_ERROR(CheckOwnArtifact(request.job_id(), request.has_checkpoint() ? &request.checkpoint() : nullptr,
                                      "checkpoint"));
  TM_RETURN_IF_ERROR(store_->Release(request.job_id(), attempt,
                                     request.has_checkpoint() ? &request.checkpoint() : nullptr,
                                     request.reason().empty() ? "released" : request.reason()));
  return trainmesh::v1::ReleaseJobResponse();
}

absl::StatusOr<trainmesh::v1::QueuePosition> SchedulerService::GetQueuePosition(
    const Principal& caller, const trainmesh::v1::GetQueuePositionRequest& request) {
  TM_RETURN_IF_ERROR(CheckId(request.job_id(), "job_id"));
  return store_->QueuePosition(request.job_id(), caller.subject(), options_.max_running_per_user,
                               options_.online_within);
}

}  // namespace trainmesh::scheduler
