#include "services/jobs/feed.h"

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "services/jobs/write_pump.h"

namespace trainmesh::jobs {
namespace {

using trainmesh::v1::Job;

// Jobs of other owners remembered (not fetched again); bounded.
constexpr size_t kMaxStrangers = 100000;
// Jobs read back per resync.
constexpr int kResyncLimit = 1000;

// One WatchJobs stream: snapshots of the caller's jobs that changed, read
// when the hub names them (or everything updated since a time, on a resync).
class Feed : public WritePump<Job> {
 public:
  Feed(JobStore* store, server::Executor* executor, EventHub* hub, Authorize authorize,
       std::optional<absl::Time> since)
      : WritePump(executor, hub, std::move(authorize),
                  "server is shutting down; reconnect with since = the last update_time received"),
        store_(store),
        since_(since) {}

 protected:
  uint64_t Subscribe() override {
    std::weak_ptr<Feed> weak = std::static_pointer_cast<Feed>(shared_from_this());
    return hub()->SubscribeAll([weak](const std::string& job_id) {
      if (auto self = weak.lock()) self->Changed(job_id);
    });
  }

  // The fetch itself takes what is due.
  bool TakeFetch() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return since_.has_value() || !dirty_.empty(); }

  absl::Status Fetch(const trainmesh::v1::Principal& caller) override;

 private:
  void Changed(const std::string& job_id);
  void Queue(Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  std::optional<absl::Time> since_ ABSL_GUARDED_BY(mu_);  // a resync is due from here
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> strangers_ ABSL_GUARDED_BY(mu_);
};

void Feed::Changed(const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    if (job_id.empty()) {
      // Notifications were missed: read back what changed lately.
      since_ = absl::Now() - absl::Minutes(1);
    } else if (!strangers_.contains(job_id)) {
      dirty_.insert(job_id);
    } else {
      return;
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
  std::set<std::string> dirty;
  {
    absl::MutexLock lock(&mu_);
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
  std::vector<std::string> strangers;
  for (const std::string& id : dirty) {
    absl::StatusOr<StoredJob> job = store_->Get(caller.subject(), id);
    if (job.ok()) {
      fresh.push_back(std::move(job->job));
    } else if (absl::IsNotFound(job.status())) {
      strangers.push_back(id);  // not theirs
    } else {
      failed = job.status();
    }
  }
  absl::MutexLock lock(&mu_);
  for (Job& job : fresh) Queue(std::move(job));
  if (strangers_.size() + strangers.size() > kMaxStrangers) strangers_.clear();
  strangers_.insert(strangers.begin(), strangers.end());
  return failed;
}

}  // namespace

grpc::ServerWriteReactor<Job>* StartFeed(JobStore* store, server::Executor* executor, EventHub* hub,
                                         std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
                                         const trainmesh::v1::WatchJobsRequest& request) {
  std::optional<absl::Time> since;
  if (request.has_since()) {
    since = absl::FromUnixMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(request.since()));
  }
  return std::make_shared<Feed>(store, executor, hub, std::move(authorize), since)->Start();
}

}  // namespace trainmesh::jobs
