#include "services/jobs/watch.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"
#include "services/jobs/state_machine.h"
#include "services/jobs/write_pump.h"

namespace trainmesh::jobs {

using trainmesh::v1::JobEvent;

uint64_t EventHub::Subscribe(const std::string& job_id, Wake wake) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  subscribers_[id] = Subscriber{job_id, std::move(wake), nullptr};
  by_job_[job_id][id] = true;
  return id;
}

uint64_t EventHub::SubscribeAll(Changed changed) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  subscribers_[id] = Subscriber{"", [changed] { changed("", ""); }, nullptr};
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

void EventHub::Publish(const std::string& payload) {
  const size_t space = payload.find(' ');
  const std::string job_id = payload.substr(0, space);
  const std::string owner = space == std::string::npos ? "" : payload.substr(space + 1);
  std::vector<Wake> wakes;
  std::vector<Changed> feeds;
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
  for (auto& changed : feeds) changed(job_id, owner);
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

// One WatchJob stream: the job's events after the last one it holds, read
// again whenever the hub says the job changed.
class Watch : public WritePump<JobEvent> {
 public:
  Watch(JobsService* service, server::Executor* executor, EventHub* hub, server::StreamGuards* guards,
        Authorize authorize, std::string job_id, int64_t after_seq)
      : WritePump(executor, hub, guards, std::move(authorize),
                  "server is shutting down; reconnect with after_seq = the seq of the last event received"),
        service_(service),
        job_id_(std::move(job_id)),
        fetched_seq_(after_seq) {}

 protected:
  uint64_t Subscribe() override {
    std::weak_ptr<Watch> weak = std::static_pointer_cast<Watch>(shared_from_this());
    return hub()->Subscribe(job_id_, [weak] {
      if (auto self = weak.lock()) self->Wake();
    });
  }

  bool TakeFetch() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool due = refetch_;
    refetch_ = false;
    return due;
  }

  bool Complete() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return complete_; }

  absl::Status Fetch(const trainmesh::v1::Principal& caller) override {
    int64_t after = 0;
    {
      absl::MutexLock lock(&mu_);
      after = fetched_seq_;
    }
    absl::StatusOr<JobStore::EventsPage> page = service_->WatchBatch(caller, job_id_, after, kBatch);
    if (!page.ok()) return page.status();
    absl::MutexLock lock(&mu_);
    for (JobEvent& e : page->events) {
      if (e.seq() <= fetched_seq_) continue;
      fetched_seq_ = e.seq();
      pending_.push_back(std::move(e));
    }
    if (static_cast<int>(page->events.size()) == kBatch) refetch_ = true;
    // Finished job and nothing newer than what we hold: the stream can end.
    if (IsTerminal(page->state) && fetched_seq_ >= page->last_event_seq) complete_ = true;
    return absl::OkStatus();
  }

 private:
  void Wake() {
    {
      absl::MutexLock lock(&mu_);
      refetch_ = true;
    }
    Pump();
  }

  JobsService* const service_;
  const std::string job_id_;
  int64_t fetched_seq_ ABSL_GUARDED_BY(mu_);
  bool refetch_ ABSL_GUARDED_BY(mu_) = false;   // (the first fetch is always due)
  bool complete_ ABSL_GUARDED_BY(mu_) = false;  // the terminal event is queued or sent
};

}  // namespace

grpc::ServerWriteReactor<JobEvent>* StartWatch(
    JobsService* service, server::Executor* executor, EventHub* hub, server::StreamGuards* guards,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::WatchJobRequest& request) {
  return std::make_shared<Watch>(service, executor, hub, guards, std::move(authorize), request.id(),
                                 request.after_seq())
      ->Start();
}

}  // namespace trainmesh::jobs
