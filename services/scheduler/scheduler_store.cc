#include "services/scheduler/scheduler_store.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "libs/status/status_macros.h"
#include "pqxx/pqxx"

namespace trainmesh::scheduler {
namespace {

using google::protobuf::util::TimeUtil;
using trainmesh::v1::Job;

std::string Micros(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::bigint");
}

pqxx::binarystring Bytes(const google::protobuf::Message& m) {
  return pqxx::binarystring(m.SerializeAsString());
}

template <typename M>
std::optional<M> Parse(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  pqxx::binarystring bytes(f);
  M m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  return m;
}

// A status report for the jobs service, delivered by the outbox relay.
struct Report {
  std::string job_id;
  Job::State state = Job::STATE_UNSPECIFIED;
  int attempt = 0;
  std::string agent_id;
  std::string message;
  const trainmesh::v1::Progress* progress = nullptr;
  std::string error_log;
  trainmesh::v1::ErrorKind kind = trainmesh::v1::ERROR_KIND_UNSPECIFIED;
  const trainmesh::v1::Artifact* artifact = nullptr;
};

void Write(pqxx::work& tx, const Report& r) {
  trainmesh::v1::ReportJobStatusRequest req;
  req.set_id(r.job_id);
  req.set_state(r.state);
  req.set_attempt(r.attempt);
  req.set_agent_id(r.agent_id);
  req.set_message(r.message);
  if (r.progress != nullptr) *req.mutable_progress() = *r.progress;
  req.set_error_log(r.error_log);
  req.set_error_kind(r.kind);
  if (r.artifact != nullptr) *req.mutable_artifact() = *r.artifact;
  tx.exec_params("INSERT INTO scheduler.outbox (kind, payload) VALUES ('report', $1)", Bytes(req));
}

void Notify(pqxx::work& tx, const std::string& owner) {
  tx.exec_params("SELECT pg_notify($1, $2)", std::string(kQueueChannel), owner);
}

absl::Status Stale(pqxx::work& tx, const std::string& job_id, int attempt) {
  pqxx::result r = tx.exec_params(
      "SELECT state, attempt FROM scheduler.queue WHERE job_id = $1::uuid", job_id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " is not in the queue"));
  return absl::FailedPreconditionError(absl::StrCat(
      "attempt ", attempt, " of job ", job_id, " is over (the job is ", r[0][0].as<std::string>(),
      ", attempt ", r[0][1].as<int>(), "); stop working on it"));
}

void ReleaseSlot(pqxx::work& tx, const std::string& owner) {
  tx.exec_params("UPDATE scheduler.owners SET running = running - 1 WHERE owner = $1 AND running > 0",
                 owner);
  Notify(tx, owner);  // a waiting job of this owner may now run
}

const std::string& AgentColumns() {
  static const auto* c = new std::string(absl::StrCat(
      "a.id::text, a.name, a.owner, a.capabilities, a.shared_pool, a.max_concurrent_jobs, "
      "a.version, a.draining, ",
      Micros("a.registered_at"), ", ", Micros("a.last_seen_at"),
      ", (a.last_seen_at > clock_timestamp() - $2::bigint * INTERVAL '1 millisecond'), "
      "(SELECT count(*) FROM scheduler.queue q WHERE q.agent_id = a.id AND q.state = 'RUNNING'), "
      "a.allow_scripts, a.allow_shared_scripts"));
  return *c;
}

trainmesh::v1::Agent RowToAgent(const pqxx::row& r) {
  trainmesh::v1::Agent a;
  a.set_id(r[0].as<std::string>());
  a.set_name(r[1].as<std::string>());
  a.set_owner(r[2].as<std::string>());
  if (auto caps = Parse<trainmesh::v1::DeviceCapabilities>(r[3])) *a.mutable_capabilities() = *caps;
  a.set_shared_pool(r[4].as<bool>());
  a.set_max_concurrent_jobs(r[5].as<int>());
  a.set_version(r[6].as<std::string>());
  const bool draining = r[7].as<bool>(), online = r[10].as<bool>();
  a.set_state(!online ? trainmesh::v1::Agent::OFFLINE
                      : draining ? trainmesh::v1::Agent::DRAINING : trainmesh::v1::Agent::ONLINE);
  *a.mutable_register_time() = TimeUtil::MicrosecondsToTimestamp(r[8].as<int64_t>());
  *a.mutable_last_seen_time() = TimeUtil::MicrosecondsToTimestamp(r[9].as<int64_t>());
  a.set_running_jobs(r[11].as<int>());
  a.set_allow_scripts(r[12].as<bool>());
  a.set_allow_shared_scripts(r[13].as<bool>());
  return a;
}

std::string TextArray(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const auto& i : items) {
    std::string q = "\"";
    for (char c : i) {
      if (c == '"' || c == '\\') q.push_back('\\');
      q.push_back(c);
    }
    quoted.push_back(q + "\"");
  }
  return absl::StrCat("{", absl::StrJoin(quoted, ","), "}");
}

}  // namespace

absl::StatusOr<bool> SchedulerStore::Enqueue(const Job& job, bool resume_from_predecessor) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    std::optional<trainmesh::v1::Artifact> checkpoint;
    if (resume_from_predecessor && !job.retry_of().empty()) {
      pqxx::result r = tx.exec_params(
          "SELECT checkpoint FROM scheduler.queue WHERE job_id = $1::uuid", job.retry_of());
      if (!r.empty()) checkpoint = Parse<trainmesh::v1::Artifact>(r[0][0]);
    }
    pqxx::result inserted = tx.exec_params(
        "INSERT INTO scheduler.queue (job_id, owner, model, priority, max_attempts, "
        "allow_shared_pool, queue_timeout_seconds, job, state, checkpoint) "
        "VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, 'QUEUED', NULLIF($9, ''::bytea)) "
        "ON CONFLICT (job_id) DO NOTHING RETURNING 1",
        job.id(), job.owner(), job.model(), job.priority(), std::max(1, job.max_attempts()),
        job.allow_shared_pool(),
        static_cast<int64_t>(job.queue_timeout().seconds() > 0 ? job.queue_timeout().seconds() : 86400),
        Bytes(job),
        checkpoint.has_value() ? Bytes(*checkpoint) : pqxx::binarystring(std::string()));
    if (inserted.empty()) return false;
    Write(tx, {.job_id = job.id(),
               .state = Job::QUEUED,
               .message = checkpoint.has_value()
                              ? absl::StrCat("queued; resumes from ", checkpoint->uri())
                              : "queued"});
    Notify(tx, job.owner());
    return true;
  });
}

absl::Status SchedulerStore::SetOwnerLimit(const std::string& owner, int max_running) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) {
    tx.exec_params(
        "INSERT INTO scheduler.owners AS o (owner, running, max_running) VALUES ($1, 0, NULLIF($2, 0)) "
        "ON CONFLICT (owner) DO UPDATE SET max_running = EXCLUDED.max_running "
        "WHERE o.max_running IS DISTINCT FROM EXCLUDED.max_running",
        owner, std::max(0, max_running));
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> SchedulerStore::Cancel(const std::string& job_id) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    pqxx::result r = tx.exec_params(
        "UPDATE scheduler.queue SET "
        "  cancel_requested = cancel_requested OR state = 'RUNNING',"
        "  outcome = CASE WHEN state = 'QUEUED' THEN 'CANCELLED' ELSE outcome END,"
        "  finished_at = CASE WHEN state = 'QUEUED' THEN clock_timestamp() ELSE finished_at END,"
        "  state = CASE WHEN state = 'QUEUED' THEN 'DONE' ELSE state END "
        "WHERE job_id = $1::uuid AND state <> 'DONE' RETURNING state",
        job_id);
    return !r.empty() && r[0][0].as<std::string>() == "RUNNING";
  });
}

absl::StatusOr<trainmesh::v1::Agent> SchedulerStore::RegisterAgent(const std::string& owner,
                                                                   const std::string& agent_id,
                                                                   const trainmesh::v1::Agent& a) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<trainmesh::v1::Agent> {
    pqxx::result r;
    if (!agent_id.empty()) {
      r = tx.exec_params(
          "UPDATE scheduler.agents SET name = $3, capabilities = $4, shared_pool = $5, "
          "allow_scripts = $6, allow_shared_scripts = $7, max_concurrent_jobs = $8, version = $9, "
          "draining = false, last_seen_at = clock_timestamp() "
          "WHERE id::text = $1 AND owner = $2 RETURNING id::text",
          agent_id, owner, a.name(), Bytes(a.capabilities()), a.shared_pool(), a.allow_scripts(),
          a.allow_shared_scripts(), std::max(1, a.max_concurrent_jobs()), a.version());
    }
    if (r.empty()) {
      r = tx.exec_params(
          "INSERT INTO scheduler.agents (owner, name, capabilities, shared_pool, allow_scripts, "
          "allow_shared_scripts, max_concurrent_jobs, version) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id::text",
          owner, a.name(), Bytes(a.capabilities()), a.shared_pool(), a.allow_scripts(),
          a.allow_shared_scripts(), std::max(1, a.max_concurrent_jobs()), a.version());
    }
    pqxx::result full = tx.exec_params(
        absl::StrCat("SELECT ", AgentColumns(), " FROM scheduler.agents a WHERE a.id::text = $1"),
        r[0][0].as<std::string>(), int64_t{3600000});
    return RowToAgent(full[0]);
  });
}

absl::StatusOr<trainmesh::v1::Agent> SchedulerStore::Agent(const std::string& agent_id,
                                                           const std::string& owner,
                                                           absl::Duration online_within) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<trainmesh::v1::Agent> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("SELECT ", AgentColumns(),
                     " FROM scheduler.agents a WHERE a.id::text = $1 AND a.owner = $3"),
        agent_id, absl::ToInt64Milliseconds(online_within), owner);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
    return RowToAgent(r[0]);
  });
}

absl::StatusOr<std::vector<trainmesh::v1::Agent>> SchedulerStore::Agents(
    const std::string& owner, absl::Duration online_within, bool include_offline) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<trainmesh::v1::Agent>> {
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", AgentColumns(),
                         " FROM scheduler.agents a WHERE (a.owner = $1 OR a.shared_pool) AND "
                         "($3 OR a.last_seen_at > clock_timestamp() - $2::bigint * INTERVAL "
                         "'1 millisecond') ORDER BY a.last_seen_at DESC LIMIT 1000"),
            owner, absl::ToInt64Milliseconds(online_within), include_offline);
        std::vector<trainmesh::v1::Agent> out;
        for (const auto& row : r) {
          trainmesh::v1::Agent a = RowToAgent(row);
          if (a.owner() != owner) a.clear_owner();  // shared-pool agents: not whose
          out.push_back(std::move(a));
        }
        return out;
      });
}

absl::StatusOr<QueueStats> SchedulerStore::Stats(absl::Duration online_within) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<QueueStats> {
    pqxx::row r = tx.exec_params1(
        "SELECT q.queued, q.running, q.oldest, a.online, a.offline, a.slots, o.pending FROM "
        "(SELECT count(*) FILTER (WHERE state = 'QUEUED') AS queued, "
        "        count(*) FILTER (WHERE state = 'RUNNING') AS running, "
        "        COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(queued_at) FILTER (WHERE state = 'QUEUED')), "
        "                 0)::float8 AS oldest "
        "   FROM scheduler.queue WHERE state IN ('QUEUED', 'RUNNING')) q, "
        "(SELECT count(*) FILTER (WHERE online) AS online, count(*) FILTER (WHERE NOT online) AS offline, "
        "        COALESCE(sum(max_concurrent_jobs) FILTER (WHERE online AND NOT draining), 0)::bigint AS slots "
        "   FROM (SELECT last_seen_at > clock_timestamp() - $1::bigint * INTERVAL '1 millisecond' AS online, "
        "                draining, max_concurrent_jobs FROM scheduler.agents "
        "         WHERE last_seen_at > clock_timestamp() - INTERVAL '1 day') x) a, "
        "(SELECT count(*) AS pending FROM scheduler.outbox) o",
        absl::ToInt64Milliseconds(online_within));
    QueueStats stats;
    stats.queued = r[0].as<int64_t>();
    stats.running = r[1].as<int64_t>();
    stats.oldest_wait_seconds = r[2].as<double>();
    stats.agents_online = r[3].as<int64_t>();
    stats.agents_offline = r[4].as<int64_t>();
    stats.slots_online = r[5].as<int64_t>();
    stats.outbox_pending = r[6].as<int64_t>();
    return stats;
  });
}

absl::Status SchedulerStore::TouchAgent(const std::string& agent_id) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) {
    tx.exec_params(
        "UPDATE scheduler.agents SET last_seen_at = clock_timestamp() WHERE id::text = $1 AND "
        "last_seen_at < clock_timestamp() - INTERVAL '1 second'",
        agent_id);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<std::pair<Claimed, std::string>>> SchedulerStore::Claim(
    const Taker& taker, int max_running, absl::Duration lease, const Mint& mint) {
  using Result = std::optional<std::pair<Claimed, std::string>>;
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<Result> {
    std::vector<std::string> excluded;  // owners found at their limit
    for (int round = 0; round < 8; ++round) {
      pqxx::result c = tx.exec_params(
          "SELECT q.job_id::text, q.owner FROM scheduler.queue q "
          "LEFT JOIN scheduler.owners o ON o.owner = q.owner "
          "WHERE q.state = 'QUEUED' "
          "AND (q.owner = $1 OR (q.allow_shared_pool AND $2)) "
          "AND (cardinality($3::text[]) = 0 OR q.model = ANY($3::text[])) "
          "AND (q.model <> 'script' OR ($4 AND (q.owner = $1 OR $5))) "
          "AND coalesce(o.running, 0) < coalesce(o.max_running, $6) "
          "AND NOT (q.owner = ANY($7::text[])) "
          // Priority, then the owner with the fewest running jobs, then age.
          "ORDER BY q.priority DESC, coalesce(o.running, 0) ASC, q.queued_at ASC "
          "LIMIT 1 FOR UPDATE OF q SKIP LOCKED",
          taker.owner, taker.shared_pool, TextArray(taker.recipes), taker.allow_scripts,
          taker.allow_shared_scripts, max_running, TextArray(excluded));
      if (c.empty()) return Result();
      const std::string job_id = c[0][0].as<std::string>();
      const std::string owner = c[0][1].as<std::string>();
      // The owner's row lock makes the limit exact under concurrent claims.
      pqxx::result slot = tx.exec_params(
          "INSERT INTO scheduler.owners AS o (owner, running) VALUES ($1, 1) "
          "ON CONFLICT (owner) DO UPDATE SET running = o.running + 1 "
          "WHERE o.running < coalesce(o.max_running, $2) "
          "RETURNING running",
          owner, max_running);
      if (slot.empty()) {
        excluded.push_back(owner);
        continue;
      }
      pqxx::result u = tx.exec_params(
          absl::StrCat("UPDATE scheduler.queue SET state = 'RUNNING', attempt = attempt + 1, "
                       "agent_id = $2::uuid, claimed_at = clock_timestamp(), cancel_requested = false, "
                       "running_reported = false, progress_reported_at = NULL, "
                       "lease_expires_at = clock_timestamp() + $3::bigint * INTERVAL '1 millisecond' "
                       "WHERE job_id = $1::uuid RETURNING attempt, job, checkpoint, ",
                       Micros("lease_expires_at")),
          job_id, taker.agent_id, absl::ToInt64Milliseconds(lease));
      Claimed claimed;
      claimed.attempt = u[0][0].as<int>();
      if (auto job = Parse<Job>(u[0][1])) claimed.job = *job;
      claimed.job.set_attempt(claimed.attempt);
      claimed.resume_from = Parse<trainmesh::v1::Artifact>(u[0][2]);
      claimed.lease_expires = absl::FromUnixMicros(u[0][3].as<int64_t>());
      TM_ASSIGN_OR_RETURN(std::string token, mint(claimed.job, claimed.attempt));
      Write(tx, {.job_id = job_id,
                 .state = Job::INITIALIZING,
                 .attempt = claimed.attempt,
                 .agent_id = taker.agent_id,
                 .message = absl::StrCat("claimed by agent ", taker.agent_id, " (attempt ",
                                         claimed.attempt, ")")});
      return Result(std::make_pair(std::move(claimed), std::move(token)));
    }
    return Result();
  });
}

absl::StatusOr<HeartbeatResult> SchedulerStore::Heartbeat(
    const std::string& job_id, int attempt, const trainmesh::v1::Progress* progress,
    Job::State state, const trainmesh::v1::Artifact* checkpoint, absl::Duration lease,
    absl::Duration progress_report_interval) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<HeartbeatResult> {
    pqxx::result r = tx.exec_params(
        absl::StrCat(
            "UPDATE scheduler.queue SET "
            "lease_expires_at = clock_timestamp() + $3::bigint * INTERVAL '1 millisecond', "
            "progress = coalesce(NULLIF($4, ''::bytea), progress), "
            "checkpoint = coalesce(NULLIF($5, ''::bytea), checkpoint) "
            "WHERE job_id = $1::uuid AND attempt = $2 AND state = 'RUNNING' "
            "RETURNING cancel_requested, ",
            Micros("lease_expires_at"),
            ", running_reported, (progress_reported_at IS NULL OR progress_reported_at < "
            "clock_timestamp() - $6::bigint * INTERVAL '1 millisecond'), agent_id::text"),
        job_id, attempt, absl::ToInt64Milliseconds(lease),
        progress != nullptr ? Bytes(*progress) : pqxx::binarystring(std::string()),
        checkpoint != nullptr ? Bytes(*checkpoint) : pqxx::binarystring(std::string()),
        absl::ToInt64Milliseconds(progress_report_interval));
    if (r.empty()) return Stale(tx, job_id, attempt);
    HeartbeatResult result;
    result.cancel_requested = r[0][0].as<bool>();
    result.lease_expires = absl::FromUnixMicros(r[0][1].as<int64_t>());
    const bool running_reported = r[0][2].as<bool>();
    const bool progress_due = r[0][3].as<bool>();
    if (result.cancel_requested) return result;  // CANCELLED for its owner already
    if (state == Job::RUNNING && !running_reported) {
      Write(tx, {.job_id = job_id, .state = Job::RUNNING, .attempt = attempt,
                 .agent_id = r[0][4].as<std::string>(), .message = "training", .progress = progress});
      tx.exec_params("UPDATE scheduler.queue SET running_reported = true, "
                     "progress_reported_at = clock_timestamp() WHERE job_id = $1::uuid",
                     job_id);
    } else if (progress != nullptr && progress_due && running_reported) {
      Write(tx, {.job_id = job_id, .attempt = attempt, .progress = progress});
      tx.exec_params(
          "UPDATE scheduler.queue SET progress_reported_at = clock_timestamp() WHERE job_id = $1::uuid",
          job_id);
    }
    return result;
  });
}

absl::Status SchedulerStore::Complete(const std::string& job_id, int attempt,
                                      const trainmesh::v1::Artifact& artifact,
                                      const trainmesh::v1::Progress* progress) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::Status {
    pqxx::result r = tx.exec_params(
        "UPDATE scheduler.queue SET state = 'DONE', outcome = 'COMPLETED', "
        "finished_at = clock_timestamp(), lease_expires_at = NULL, progress = "
        "coalesce(NULLIF($3, ''::bytea), progress) "
        "WHERE job_id = $1::uuid AND attempt = $2 AND state = 'RUNNING' RETURNING owner, agent_id::text",
        job_id, attempt,
        progress != nullptr ? Bytes(*progress) : pqxx::binarystring(std::string()));
    if (r.empty()) return Stale(tx, job_id, attempt);
    ReleaseSlot(tx, r[0][0].as<std::string>());
    Write(tx, {.job_id = job_id, .state = Job::COMPLETED, .attempt = attempt,
               .agent_id = r[0][1].as<std::string>(), .message = "completed",
               .progress = progress, .artifact = &artifact});
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> SchedulerStore::Fail(const std::string& job_id, int attempt,
                                          const std::string& error, trainmesh::v1::ErrorKind kind,
                                          const trainmesh::v1::Artifact* checkpoint) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<bool> {
    pqxx::result r = tx.exec_params(
        "SELECT owner, failures, max_attempts, cancel_requested FROM scheduler.queue "
        "WHERE job_id = $1::uuid AND attempt = $2 AND state = 'RUNNING' FOR UPDATE",
        job_id, attempt);
    if (r.empty()) return Stale(tx, job_id, attempt);
    const std::string owner = r[0][0].as<std::string>();
    const int failures = r[0][1].as<int>() + 1;
    const int max_attempts = r[0][2].as<int>();
    const bool cancelled = r[0][3].as<bool>();
    ReleaseSlot(tx, owner);
    const bool requeue = !cancelled && kind == trainmesh::v1::ERROR_KIND_INFRA && failures < max_attempts;
    tx.exec_params(
        "UPDATE scheduler.queue SET failures = $2, agent_id = NULL, lease_expires_at = NULL, "
        "checkpoint = coalesce(NULLIF($3, ''::bytea), checkpoint), "
        "state = CASE WHEN $4 THEN 'QUEUED' ELSE 'DONE' END, "
        "queued_at = CASE WHEN $4 THEN clock_timestamp() ELSE queued_at END, "
        "outcome = CASE WHEN $4 THEN NULL WHEN $5 THEN 'CANCELLED' ELSE 'FAILED' END, "
        "finished_at = CASE WHEN $4 THEN NULL ELSE clock_timestamp() END "
        "WHERE job_id = $1::uuid",
        job_id, failures, checkpoint != nullptr ? Bytes(*checkpoint) : pqxx::binarystring(std::string()),
        requeue, cancelled);
    if (cancelled) return false;
    if (requeue) {
      Write(tx, {.job_id = job_id, .state = Job::QUEUED, .attempt = attempt,
                 .message = absl::StrCat("attempt ", attempt, " failed (", failures, " of ",
                                         max_attempts, " allowed): ", error, "; requeued")});
    } else {
      Write(tx, {.job_id = job_id, .state = Job::FAILED, .attempt = attempt, .message = "failed",
                 .error_log = error, .kind = kind});
    }
    return requeue;
  });
}

absl::Status SchedulerStore::Release(const std::string& job_id, int attempt,
                                     const trainmesh::v1::Artifact* checkpoint,
                                     const std::string& reason) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::Status {
    pqxx::result r = tx.exec_params(
        "UPDATE scheduler.queue SET agent_id = NULL, lease_expires_at = NULL, "
        "checkpoint = coalesce(NULLIF($3, ''::bytea), checkpoint), "
        "state = CASE WHEN cancel_requested THEN 'DONE' ELSE 'QUEUED' END, "
        "outcome = CASE WHEN cancel_requested THEN 'CANCELLED' ELSE NULL END, "
        "finished_at = CASE WHEN cancel_requested THEN clock_timestamp() ELSE NULL END, "
        "queued_at = clock_timestamp() "
        "WHERE job_id = $1::uuid AND attempt = $2 AND state = 'RUNNING' "
        "RETURNING owner, cancel_requested",
        job_id, attempt,
        checkpoint != nullptr ? Bytes(*checkpoint) : pqxx::binarystring(std::string()));
    if (r.empty()) return Stale(tx, job_id, attempt);
    ReleaseSlot(tx, r[0][0].as<std::string>());
    if (!r[0][1].as<bool>()) {
      Write(tx, {.job_id = job_id, .state = Job::QUEUED, .attempt = attempt,
                 .message = absl::StrCat("released by its agent (", reason, "); requeued",
                                         checkpoint != nullptr ? absl::StrCat(", resumes from ", checkpoint->uri())
                                                               : std::string())});
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<ReapResult> SchedulerStore::Reap(absl::Duration grace) {
  return pool_->InTransaction([&](pqxx::work& tx) -> absl::StatusOr<ReapResult> {
    ReapResult result;
    pqxx::result expired = tx.exec_params(
        "SELECT job_id::text, owner, attempt, failures, max_attempts, cancel_requested, "
        "coalesce(agent_id::text, '') FROM scheduler.queue WHERE state = 'RUNNING' AND "
        "lease_expires_at < clock_timestamp() - $1::bigint * INTERVAL '1 millisecond' "
        "ORDER BY lease_expires_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        absl::ToInt64Milliseconds(grace));
    for (const auto& row : expired) {
      const std::string job_id = row[0].as<std::string>();
      const std::string owner = row[1].as<std::string>();
      const int attempt = row[2].as<int>();
      const int failures = row[3].as<int>() + 1;
      const int max_attempts = row[4].as<int>();
      const bool cancelled = row[5].as<bool>();
      const std::string agent = row[6].as<std::string>();
      const bool requeue = !cancelled && failures < max_attempts;
      ReleaseSlot(tx, owner);
      tx.exec_params(
          "UPDATE scheduler.queue SET failures = $2, agent_id = NULL, lease_expires_at = NULL, "
          "state = CASE WHEN $3 THEN 'QUEUED' ELSE 'DONE' END, "
          "queued_at = CASE WHEN $3 THEN clock_timestamp() ELSE queued_at END, "
          "outcome = CASE WHEN $3 THEN NULL WHEN $4 THEN 'CANCELLED' ELSE 'FAILED' END, "
          "finished_at = CASE WHEN $3 THEN NULL ELSE clock_timestamp() END WHERE job_id = $1::uuid",
          job_id, failures, requeue, cancelled);
      if (cancelled) continue;
      const std::string why = absl::StrCat("agent ", agent, " stopped renewing its lease on attempt ",
                                           attempt, " (lost, killed or cut off)");
      if (requeue) {
        ++result.requeued;
        Write(tx, {.job_id = job_id, .state = Job::QUEUED, .attempt = attempt,
                   .message = absl::StrCat(why, "; requeued (", failures, " of ", max_attempts,
                                           " failures allowed)")});
      } else {
        ++result.failed;
        Write(tx, {.job_id = job_id, .state = Job::FAILED, .attempt = attempt, .message = "failed",
                   .error_log = absl::StrCat(why, "; no attempts left (", max_attempts, ")"),
                   .kind = trainmesh::v1::ERROR_KIND_INFRA});
      }
    }
    pqxx::result timed_out = tx.exec(
        "UPDATE scheduler.queue SET state = 'DONE', outcome = 'FAILED', "
        "finished_at = clock_timestamp() WHERE state = 'QUEUED' AND "
        "queued_at + queue_timeout_seconds * INTERVAL '1 second' < clock_timestamp() "
        "RETURNING job_id::text, attempt, queue_timeout_seconds");
    for (const auto& row : timed_out) {
      ++result.timed_out;
      Write(tx, {.job_id = row[0].as<std::string>(), .state = Job::FAILED,
                 .attempt = row[1].as<int>(), .message = "failed",
                 .error_log = absl::StrCat("no agent claimed the job within ",
                                           absl::FormatDuration(absl::Seconds(row[2].as<int64_t>())),
                                           " (its queue_timeout)"),
                 .kind = trainmesh::v1::ERROR_KIND_INFRA});
    }
    return result;
  });
}

absl::StatusOr<trainmesh::v1::QueuePosition> SchedulerStore::QueuePosition(
    const std::string& job_id, const std::string& owner, int max_running,
    absl::Duration online_within) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<trainmesh::v1::QueuePosition> {
        pqxx::result r = tx.exec_params(
            "SELECT state, priority, allow_shared_pool, model, queued_at FROM scheduler.queue "
            "WHERE job_id::text = $1 AND owner = $2",
            job_id, owner);
        if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
        trainmesh::v1::QueuePosition pos;
        pos.set_job_id(job_id);
        const std::string state = r[0][0].as<std::string>();
        const bool shared = r[0][2].as<bool>();
        const bool script = r[0][3].as<std::string>() == "script";
        pqxx::result agents = tx.exec_params(
            "SELECT count(*) FROM scheduler.agents WHERE NOT draining AND last_seen_at > "
            "clock_timestamp() - $3::bigint * INTERVAL '1 millisecond' AND "
            "(owner = $1 OR (shared_pool AND $2)) AND (NOT $4 OR (allow_scripts AND "
            "(owner = $1 OR allow_shared_scripts)))",
            owner, shared, absl::ToInt64Milliseconds(online_within), script);
        pos.set_agents_online(agents[0][0].as<int>());
        if (state != "QUEUED") {
          pos.set_reason(state == "RUNNING" ? "running" : "finished");
          return pos;
        }
        pqxx::result ahead = tx.exec_params(
            "SELECT count(*) FROM scheduler.queue q WHERE q.state = 'QUEUED' AND "
            "q.job_id::text <> $1 AND (q.owner = $2 OR q.allow_shared_pool) AND "
            "(q.priority > $3 OR (q.priority = $3 AND q.queued_at < (SELECT queued_at FROM "
            "scheduler.queue WHERE job_id::text = $1)))",
            job_id, owner, r[0][1].as<int>());
        pqxx::result running = tx.exec_params(
            "SELECT coalesce((SELECT running FROM scheduler.owners WHERE owner = $1), 0), "
            "coalesce((SELECT max_running FROM scheduler.owners WHERE owner = $1), $2)",
            owner, max_running);
        const int n_ahead = ahead[0][0].as<int>();
        const int n_running = running[0][0].as<int>();
        max_running = running[0][1].as<int>();  // the owner's own limit, if any
        pos.set_jobs_ahead(n_ahead);
        pos.set_position(n_ahead + 1);
        if (pos.agents_online() == 0) {
          pos.set_reason(script ? "no agent online that runs scripts for you"
                                : "no agent online for this job");
        } else if (n_running >= max_running) {
          pos.set_reason(absl::StrCat("user concurrency limit (", n_running, " of ", max_running,
                                      " running)"));
        } else if (n_ahead > 0) {
          pos.set_reason(absl::StrCat("behind ", n_ahead, n_ahead == 1 ? " job" : " jobs"));
        } else {
          pos.set_reason("next in line");
        }
        return pos;
      });
}

}  // namespace trainmesh::scheduler
