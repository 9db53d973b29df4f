#include "services/jobs/feed.h"

#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "libs/status/grpc_status.h"

namespace trainmesh::jobs {
namespace {

using trainmesh::v1::Job;

// Jobs of other owners remembered (not fetched again); bounded.
constexpr size_t kMaxStrangers = 100000;
// Jobs read back per resync.
constexpr int kResyncLimit = 1000;

class FeedReactor;

class Feed : public std::enable_shared_from_this<Feed> {
 public:
  Feed(JobStore* store, server::Executor* executor, EventHub* hub,
       std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize, std::optional<absl::Time> since)
      : store_(store), executor_(executor), hub_(hub), authorize_(std::move(authorize)), since_(since) {}

  void Start(FeedReactor* reactor);
  void OnWriteDone(bool ok);
  void OnCancel();
  void OnDone();

 private:
  enum class Action { kNone, kWrite, kFetch, kFinish };
  void Changed(const std::string& job_id);
  void Drain();
  void Fetch();
  void Pump();
  void Queue(Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  server::Executor* const executor_;
  EventHub* const hub_;
  const std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize_;
  // Set by the first fetch; fetches never overlap (fetching_).
  std::optional<trainmesh::v1::Principal> caller_;
  uint64_t subscription_ = 0;

  absl::Mutex mu_;
  FeedReactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::optional<absl::Time> since_ ABSL_GUARDED_BY(mu_);  // a resync is due from here
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> strangers_ ABSL_GUARDED_BY(mu_);
  std::deque<Job> pending_ ABSL_GUARDED_BY(mu_);
  Job in_flight_ ABSL_GUARDED_BY(mu_);
  bool authorized_ ABSL_GUARDED_BY(mu_) = false;
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> finish_with_ ABSL_GUARDED_BY(mu_);
};

class FeedReactor : public grpc::ServerWriteReactor<Job> {
 public:
  explicit FeedReactor(std::shared_ptr<Feed> feed) : feed_(std::move(feed)) {}
  void OnWriteDone(bool ok) override { feed_->OnWriteDone(ok); }
  void OnCancel() override { feed_->OnCancel(); }
  void OnDone() override {
    feed_->OnDone();
    delete this;
  }

 private:
  std::shared_ptr<Feed> feed_;
};

void Feed::Start(FeedReactor* reactor) {
  {
    absl::MutexLock lock(&mu_);
    reactor_ = reactor;
  }
  std::weak_ptr<Feed> weak = weak_from_this();
  // Subscribed before the first read, so nothing committed meanwhile is missed.
  subscription_ = hub_->SubscribeAll([weak](const std::string& job_id) {
    if (auto self = weak.lock()) self->Changed(job_id);
  });
  hub_->OnDrain(subscription_, [weak] {
    if (auto self = weak.lock()) self->Drain();
  });
  Pump();  // the first fetch authorizes (and resyncs when `since` was given)
}

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

void Feed::Drain() {
  {
    absl::MutexLock lock(&mu_);
    pending_.clear();
    if (!finish_with_.has_value()) {
      finish_with_ = absl::UnavailableError(
          "server is shutting down; reconnect with since = the last update_time received");
    }
  }
  Pump();
}

void Feed::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !finish_with_.has_value()) finish_with_ = absl::CancelledError("client went away");
  }
  Pump();
}

void Feed::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    pending_.clear();
    finish_with_ = absl::CancelledError("watch cancelled");
  }
  Pump();
}

void Feed::OnDone() {
  hub_->Unsubscribe(subscription_);
  absl::MutexLock lock(&mu_);
  reactor_ = nullptr;
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

void Feed::Fetch() {
  if (!caller_.has_value()) {
    absl::StatusOr<trainmesh::v1::Principal> caller = authorize_();
    if (!caller.ok()) {
      {
        absl::MutexLock lock(&mu_);
        fetching_ = false;
        if (!finish_with_.has_value()) finish_with_ = caller.status();
      }
      Pump();
      return;
    }
    caller_ = *std::move(caller);
    absl::MutexLock lock(&mu_);
    authorized_ = true;
  }
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
    query.owner = caller_->subject();
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
    absl::StatusOr<StoredJob> job = store_->Get(caller_->subject(), id);
    if (job.ok()) {
      fresh.push_back(std::move(job->job));
    } else if (absl::IsNotFound(job.status())) {
      strangers.push_back(id);  // not theirs
    } else {
      failed = job.status();
    }
  }
  {
    absl::MutexLock lock(&mu_);
    fetching_ = false;
    if (!failed.ok() && !finish_with_.has_value()) finish_with_ = failed;
    for (Job& job : fresh) Queue(std::move(job));
    if (strangers_.size() + strangers.size() > kMaxStrangers) strangers_.clear();
    strangers_.insert(strangers.begin(), strangers.end());
  }
  Pump();
}

void Feed::Pump() {
  Action action = Action::kNone;
  FeedReactor* reactor = nullptr;
  grpc::Status finish_status;
  {
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_ || writing_) return;
    reactor = reactor_;
    if (finish_with_.has_value()) {
      finished_ = true;
      action = Action::kFinish;
      finish_status = status::ToGrpcStatus(*finish_with_);
    } else if (!pending_.empty()) {
      in_flight_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      action = Action::kWrite;
    } else if (!fetching_ && (!authorized_ || since_.has_value() || !dirty_.empty())) {
      fetching_ = true;
      action = Action::kFetch;
    }
  }
  switch (action) {
    case Action::kWrite:
      reactor->StartWrite(&in_flight_);
      break;
    case Action::kFinish:
      reactor->Finish(finish_status);
      break;
    case Action::kFetch:
      if (!executor_->Submit([self = shared_from_this()] { self->Fetch(); })) {
        {
          absl::MutexLock lock(&mu_);
          fetching_ = false;
          finish_with_ = absl::UnavailableError("server is shutting down");
        }
        Pump();
      }
      break;
    case Action::kNone:
      break;
  }
}

}  // namespace

grpc::ServerWriteReactor<Job>* StartFeed(JobStore* store, server::Executor* executor, EventHub* hub,
                                         std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
                                         const trainmesh::v1::WatchJobsRequest& request) {
  std::optional<absl::Time> since;
  if (request.has_since()) {
    since = absl::FromUnixMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(request.since()));
  }
  auto feed = std::make_shared<Feed>(store, executor, hub, std::move(authorize), since);
  auto* reactor = new FeedReactor(feed);
  feed->Start(reactor);
  return reactor;
}

}  // namespace trainmesh::jobs
