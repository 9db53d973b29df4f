// The scheduler's background work: the reaper (expired leases, unclaimed
// jobs) and the delivery of its outbox to the jobs service.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/pg/outbox_relay.h"
#include "services/scheduler/scheduler_store.h"

namespace trainmesh::scheduler {

// Reaps every `period`. After a start it waits `lease` before reaping leases,
// so agents that kept training through a scheduler outage can heartbeat
// first; expired leases are reaped `grace` after their expiry.
class Reaper {
 public:
  Reaper(SchedulerStore* store, absl::Duration period, absl::Duration lease, absl::Duration grace);
  ~Reaper();
  void Start();
  void Stop();

 private:
  void Run();
  SchedulerStore* store_;
  const absl::Duration period_, lease_, grace_;
  std::thread thread_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

// Delivers scheduler.outbox reports with JobControlService.ReportJobStatus.
pg::OutboxRelay::Deliver DeliverToJobs(const std::string& jobs_endpoint,
                                       const std::string& credential);

}  // namespace trainmesh::scheduler
