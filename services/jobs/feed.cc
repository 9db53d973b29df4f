#include "services/jobs/feed.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/server/write_pump.h"

namespace trainmesh::jobs {
namespace {

using trainmesh::v1::Job;

// Jobs read back per resync.
constexpr int kResyncLimit = 1000;

// One WatchJobs stream: snapshots of the caller's jobs that changed, read
// when the hub names them (or everything updated since a time, on a resync).
class Feed : public server::WritePump<Job>, public EventHub::Subscriber {
 public:
  Feed(JobStore* store, server::Executor* executor, EventHub* hub, server::StreamGuards* guards,
       Authorize authorize, std::optional<absl::Time> since)
      : WritePump(executor, guards, std::move(authorize)),
        store_(store),
        hub_(hub),
        since_(since) {}

  void OnEvent(const std::string& job_id, const JobChange& change) override {
    Changed(job_id, change.owner);
  }
  // Notifications were missed: read back what changed lately.
  void Resync() override { Changed("", ""); }
  void Drain() override {
    EndWith(absl::UnavailableError(
        "server is shutting down; reconnect with since = the last update_time received"));
  }

 protected:
  void Subscribe() override {
    subscription_ = hub_->SubscribeAll(std::static_pointer_cast<Feed>(shared_from_this()));
  }
  void Unsubscribe() override { hub_->Unsubscribe(subscription_); }

  // The fetch itself takes what is due.
  bool TakeFetch() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return since_.has_value() || !dirty_.empty();
  }

  absl::Status Fetch(const trainmesh::v1::Principal& caller) override;

 private:
  void Changed(const std::string& job_id, const std::string& owner);
  void Queue(Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  EventHub* const hub_;
  uint64_t subscription_ = 0;  // set in Subscribe, before gRPC can end the stream
  std::optional<absl::Time> since_ ABSL_GUARDED_BY(mu_);  // a resync is due from here
  // Jobs that changed, to read back: job id → owner (empty: not said).
  std::map<std::string, std::string> dirty_ ABSL_GUARDED_BY(mu_);
  // The caller, once authorized: other owners' changes are ignored at once.
  std::optional<std::string> subject_ ABSL_GUARDED_BY(mu_);
};

void Feed::Changed(const std::string& job_id, const std::string& owner) {
  {
    absl::MutexLock lock(&mu_);
    if (job_id.empty()) {
      // Notifications were missed: read back what changed lately.
      since_ = absl::Now() - absl::Minutes(1);
    } else if (!owner.empty() && subject_.has_value() && owner != *subject_) {
      return;  // another user's job: nothing to read
    } else {
      dirty_[job_id] = owner;
    }
  }
  Pump();
}

// A newer snapshot of a job replaces one still waiting to be written.
void Feed::Queue(Job job) {
  for (Job& waiting : pending_) {
    if (waiting.id() == job.id()) {
      if (job.last_event_seq() >= waiting.last_event_seq()) waiting = std::move(job);
      return;
    }
  }
  pending_.push_back(std::move(job));
}

absl::Status Feed::Fetch(const trainmesh::v1::Principal& caller) {
  std::optional<absl::Time> since;
  std::map<std::string, std::string> dirty;
  {
    absl::MutexLock lock(&mu_);
    subject_ = caller.subject();
    since.swap(since_);
    dirty.swap(dirty_);
  }
  std::vector<Job> fresh;
  absl::Status failed;
  if (since.has_value()) {
    ListQuery query;
    query.owner = caller.subject();
    query.updated_since = *since;
    query.limit = kResyncLimit;
    absl::StatusOr<std::vector<Job>> jobs = store_->List(query);
    if (jobs.ok()) {
      fresh = *std::move(jobs);
    } else {
      failed = jobs.status();
    }
  }
  for (const auto& [id, owner] : dirty) {
    if (!owner.empty() && owner != caller.subject()) continue;  // noted before authorization
    absl::StatusOr<StoredJob> job = store_->Get(caller.subject(), id);
    if (job.ok()) {
      fresh.push_back(std::move(job->job));
    } else if (!absl::IsNotFound(job.status())) {  // not found: not theirs
      failed = job.status();
    }
  }
  absl::MutexLock lock(&mu_);
  for (Job& job : fresh) Queue(std::move(job));
  return failed;
}

}  // namespace

grpc::ServerWriteReactor<Job>* StartFeed(
    JobStore* store, server::Executor* executor, EventHub* hub, server::StreamGuards* guards,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::WatchJobsRequest& request) {
  std::optional<absl::Time> since;
  if (request.has_since()) {
    since = absl::FromUnixMicros(
        google::protobuf::util::TimeUtil::TimestampToMicroseconds(request.since()));
  }
  return std::make_shared<Feed>(store, executor, hub, guards, std::move(authorize), since)->Start();
}

}  // namespace trainmesh::jobs
