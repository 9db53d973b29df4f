#include "services/jobs/watch.h"

#include <memory>
#include <string>
#include <utility>

#include "libs/server/write_pump.h"
#include "services/jobs/state_machine.h"

namespace trainmesh::jobs {

using trainmesh::v1::JobEvent;

void PublishNotification(EventHub* hub, const std::string& payload) {
  const size_t space = payload.find(' ');
  hub->Publish(payload.substr(0, space),
               JobChange{space == std::string::npos ? "" : payload.substr(space + 1)});
}

namespace {

// Events read per database round trip.
constexpr int kBatch = 500;

// One WatchJob stream: the job's events after the last one it holds, read
// again whenever the hub says the job changed.
class Watch : public server::WritePump<JobEvent>, public EventHub::Subscriber {
 public:
  Watch(JobsService* service, server::Executor* executor, EventHub* hub,
        server::StreamGuards* guards, Authorize authorize, std::string job_id, int64_t after_seq)
      : WritePump(executor, guards, std::move(authorize)),
        service_(service),
        hub_(hub),
        job_id_(std::move(job_id)),
        fetched_seq_(after_seq) {}

  // The job changed, or may have: read again.
  void OnEvent(const std::string&, const JobChange&) override { Wake(); }
  void Resync() override { Wake(); }
  void Drain() override {
    // Only the client knows which event reached it last (one may be in
    // flight): the message tells it how to resume.
    EndWith(absl::UnavailableError(
        "server is shutting down; reconnect with after_seq = the seq of the last event received"));
  }

 protected:
  void Subscribe() override {
    subscription_ = hub_->Subscribe(job_id_, std::static_pointer_cast<Watch>(shared_from_this()));
  }
  void Unsubscribe() override { hub_->Unsubscribe(subscription_); }

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
    absl::StatusOr<JobStore::EventsPage> page =
        service_->WatchBatch(caller, job_id_, after, kBatch);
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
  EventHub* const hub_;
  const std::string job_id_;
  uint64_t subscription_ = 0;  // set in Subscribe, before gRPC can end the stream
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
