#include "services/jobs/watch.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"
#include "services/jobs/state_machine.h"

namespace trainmesh::jobs {

using trainmesh::v1::JobEvent;

uint64_t EventHub::Subscribe(const std::string& job_id, Wake wake) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  subscribers_[id] = Subscriber{job_id, std::move(wake), nullptr};
  by_job_[job_id][id] = true;
  return id;
}

uint64_t EventHub::SubscribeAll(std::function<void(const std::string& job_id)> changed) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  subscribers_[id] = Subscriber{"", [changed] { changed(""); }, nullptr};
  all_[id] = std::move(changed);
  return id;
}

void EventHub::OnDrain(uint64_t id, Wake drain) {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(id);
  if (it != subscribers_.end()) it->second.drain = std::move(drain);
}

void EventHub::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  all_.erase(id);
  auto it = subscribers_.find(id);
  if (it == subscribers_.end()) return;
  auto job = by_job_.find(it->second.job_id);
  if (job != by_job_.end()) {
    job->second.erase(id);
    if (job->second.empty()) by_job_.erase(job);
  }
  subscribers_.erase(it);
}

void EventHub::Publish(const std::string& job_id) {
  std::vector<Wake> wakes;
  std::vector<std::function<void(const std::string&)>> feeds;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, changed] : all_) feeds.push_back(changed);
    auto job = by_job_.find(job_id);
    if (job != by_job_.end()) {
      for (const auto& [id, unused] : job->second) wakes.push_back(subscribers_[id].wake);
    }
  }
  // Outside the lock: a wake may run after its watcher unsubscribed, which the
  // watcher tolerates (it holds itself alive through the callback).
  for (auto& wake : wakes) wake();
  for (auto& changed : feeds) changed(job_id);
}

void EventHub::PublishAll() {
  std::vector<Wake> wakes;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, sub] : subscribers_) wakes.push_back(sub.wake);
  }
  for (auto& wake : wakes) wake();
}

void EventHub::Drain() {
  std::vector<Wake> drains;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, sub] : subscribers_) {
      if (sub.drain) drains.push_back(sub.drain);
    }
  }
  for (auto& drain : drains) drain();
}

size_t EventHub::subscribers() const {
  absl::MutexLock lock(&mu_);
  return subscribers_.size();
}

namespace {

// Events read per database round trip.
constexpr int kBatch = 500;

class WatchReactor;

// The state of one stream, shared by the reactor, executor tasks and hub
// callbacks; outlives the reactor while callbacks still hold it.
class Watch : public std::enable_shared_from_this<Watch> {
 public:
  Watch(JobsService* service, server::Executor* executor, EventHub* hub,
        std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize, std::string job_id,
        int64_t after_seq)
      : service_(service),
        executor_(executor),
        hub_(hub),
        authorize_(std::move(authorize)),
        job_id_(std::move(job_id)),
        fetched_seq_(after_seq) {}

  void Start(WatchReactor* reactor);
  void OnWriteDone(bool ok);
  void OnCancel();
  void OnDone();

 private:
  enum class Action { kNone, kWrite, kFetch, kFinish };

  void Wake();
  void Drain();
  void Fetch();
  // Decides the next step under the lock and takes it outside.
  void Pump();

  JobsService* const service_;
  server::Executor* const executor_;
  EventHub* const hub_;
  const std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize_;
  // Set by the first fetch (on the executor); read by later ones only.
  std::optional<trainmesh::v1::Principal> caller_;
  const std::string job_id_;
  uint64_t subscription_ = 0;

  absl::Mutex mu_;
  WatchReactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;  // null once done
  std::deque<JobEvent> pending_ ABSL_GUARDED_BY(mu_);
  JobEvent in_flight_ ABSL_GUARDED_BY(mu_);
  int64_t fetched_seq_ ABSL_GUARDED_BY(mu_);
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool refetch_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool complete_ ABSL_GUARDED_BY(mu_) = false;  // the terminal event is queued or sent
  std::optional<absl::Status> finish_with_ ABSL_GUARDED_BY(mu_);
};

class WatchReactor : public grpc::ServerWriteReactor<JobEvent> {
 public:
  explicit WatchReactor(std::shared_ptr<Watch> watch) : watch_(std::move(watch)) {}
  void OnWriteDone(bool ok) override { watch_->OnWriteDone(ok); }
  void OnCancel() override { watch_->OnCancel(); }
  void OnDone() override {
    watch_->OnDone();
    delete this;
  }

 private:
  std::shared_ptr<Watch> watch_;
};

void Watch::Start(WatchReactor* reactor) {
  {
    absl::MutexLock lock(&mu_);
    reactor_ = reactor;
  }
  std::weak_ptr<Watch> weak = weak_from_this();
  // Subscribe before the first read, so nothing committed meanwhile is missed.
  subscription_ = hub_->Subscribe(job_id_, [weak] {
    if (auto self = weak.lock()) self->Wake();
  });
  hub_->OnDrain(subscription_, [weak] {
    if (auto self = weak.lock()) self->Drain();
  });
  Pump();
}

void Watch::Wake() {
  {
    absl::MutexLock lock(&mu_);
    refetch_ = true;
  }
  Pump();
}

void Watch::Drain() {
  {
    absl::MutexLock lock(&mu_);
    pending_.clear();
    if (!finish_with_.has_value()) {
      // Only the client knows which event reached it last (one may be in flight).
      finish_with_ = absl::UnavailableError(
          "server is shutting down; reconnect with after_seq = the seq of the last event "
          "received");
    }
  }
  Pump();
}

void Watch::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !finish_with_.has_value()) {
      finish_with_ = absl::CancelledError("client went away");
    }
  }
  Pump();
}

void Watch::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    pending_.clear();
    finish_with_ = absl::CancelledError("watch cancelled");
  }
  Pump();
}

void Watch::OnDone() {
  hub_->Unsubscribe(subscription_);
  absl::MutexLock lock(&mu_);
  reactor_ = nullptr;
}

void Watch::Fetch() {
  // Fetches never overlap (fetching_), so caller_ needs no lock.
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
  }
  int64_t after = 0;
  {
    absl::MutexLock lock(&mu_);
    after = fetched_seq_;
  }
  absl::StatusOr<JobStore::EventsPage> page =
      service_->WatchBatch(*caller_, job_id_, after, kBatch);
  {
    absl::MutexLock lock(&mu_);
    fetching_ = false;
    if (!page.ok()) {
      if (!finish_with_.has_value()) finish_with_ = page.status();
    } else {
      for (JobEvent& e : page->events) {
        if (e.seq() <= fetched_seq_) continue;
        fetched_seq_ = e.seq();
        pending_.push_back(std::move(e));
      }
      if (static_cast<int>(page->events.size()) == kBatch) refetch_ = true;
      // Finished job and nothing newer than what we hold: the stream can end.
      if (IsTerminal(page->state) && fetched_seq_ >= page->last_event_seq) complete_ = true;
    }
  }
  Pump();
}

void Watch::Pump() {
  Action action = Action::kNone;
  WatchReactor* reactor = nullptr;
  grpc::Status finish_status;
  {
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || finished_ || writing_) return;
    reactor = reactor_;
    if (finish_with_.has_value()) {  // an error, a cancel or a drain: end now
      finished_ = true;
      action = Action::kFinish;
      finish_status = status::ToGrpcStatus(*finish_with_);
    } else if (!pending_.empty()) {
      in_flight_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      action = Action::kWrite;
    } else if (complete_) {
      finished_ = true;
      action = Action::kFinish;
      finish_status = grpc::Status::OK;
    } else if (refetch_ && !fetching_) {
      refetch_ = false;
      fetching_ = true;
      action = Action::kFetch;
    }
  }
  // Safe outside the lock: while writing_ is set or before finished_ is set,
  // gRPC cannot call OnDone, so `reactor` is alive.
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

grpc::ServerWriteReactor<JobEvent>* StartWatch(
    JobsService* service, server::Executor* executor, EventHub* hub,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::WatchJobRequest& request) {
  auto watch = std::make_shared<Watch>(service, executor, hub, std::move(authorize), request.id(),
                                       request.after_seq());
  auto* reactor = new WatchReactor(watch);
  watch->Start(reactor);
  return reactor;
}

}  // namespace trainmesh::jobs
