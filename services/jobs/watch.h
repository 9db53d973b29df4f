// WatchJob: a server-streaming reactor that replays a job's events after
// `after_seq` and then follows new ones as they are committed. Postgres
// NOTIFY (payload: job id) wakes the watchers of a job through the EventHub;
// a woken watcher re-reads its job's events after the last one it has, so
// a notification that is lost, duplicated or coalesced never costs an event
// or repeats one. Database reads run on the executor, never on gRPC threads.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "libs/server/executor.h"
#include "libs/server/stream_guard.h"
#include "services/jobs/jobs_service.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::jobs {

// Who watches which job. Thread-safe.
class EventHub {
 public:
  using Wake = std::function<void()>;

  using Changed = std::function<void(const std::string& job_id, const std::string& owner)>;

  uint64_t Subscribe(const std::string& job_id, Wake wake);
  // Every job's changes: `changed(job_id, owner)` (owner empty when the
  // notification did not say), or `changed("", "")` when any job may have
  // changed (notifications were missed).
  uint64_t SubscribeAll(Changed changed);
  void Unsubscribe(uint64_t id);

  // A job's events changed: `payload` is a NOTIFY's, "JOB_ID OWNER" (or
  // just the job id).
  void Publish(const std::string& payload);
  // Notifications may have been missed (listener reconnected): wake everyone.
  void PublishAll();
  // The server drains: every watcher ends its stream.
  void Drain();
  void OnDrain(uint64_t id, Wake drain);

  size_t subscribers() const;

 private:
  struct Subscriber {
    std::string job_id;
    Wake wake;
    Wake drain;
  };
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::map<uint64_t, bool>> by_job_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Changed> all_ ABSL_GUARDED_BY(mu_);
};

// Starts a WatchJob stream. `authorize` (which may block: key refresh, API key
// lookup) runs on the executor before anything is read; its error ends the
// stream. The returned reactor owns itself.
grpc::ServerWriteReactor<trainmesh::v1::JobEvent>* StartWatch(
    JobsService* service, server::Executor* executor, EventHub* hub, server::StreamGuards* guards,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::WatchJobRequest& request);

}  // namespace trainmesh::jobs
