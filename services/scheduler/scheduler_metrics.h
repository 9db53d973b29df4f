// The scheduler's Prometheus metrics, besides its RPCs':
//   trainmesh_queue_jobs{state="queued"|"running"}    jobs waiting and running
//   trainmesh_queue_oldest_wait_seconds               how long the oldest queued job has waited
//   trainmesh_agents{status="online"|"offline"}       agents heard from recently, and those silent
//                                                     but seen within the last day
//   trainmesh_agent_slots_online                      job slots of online, non-draining agents
//   trainmesh_scheduler_outbox_pending                status reports not yet at the jobs service
//   trainmesh_scheduler_waiting_polls                 agents long-polling this replica now
//   trainmesh_scheduler_claims_total                  jobs handed to agents
//   trainmesh_scheduler_reaped_total{outcome}         lease expiries requeued or failed, queue timeouts
// The gauges of the queue and agents come from the database, read in the
// background (a scrape never waits on it), so every replica shows the same
// values: aggregate them with max, not sum.
#pragma once

#include <optional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/telemetry/metrics.h"
#include "services/scheduler/scheduler_store.h"
#include "services/scheduler/waiters.h"

namespace trainmesh::scheduler {

// The queue's statistics, read from the database every `period`.
class QueueStatsCache {
 public:
  QueueStatsCache(SchedulerStore* store, absl::Duration online_within, absl::Duration period);
  ~QueueStatsCache();  // Stop()

  void Start();
  void Stop();
  // Reads them now (the background loop calls this).
  void Refresh();
  // The latest statistics, unless they are older than three periods (the
  // database is unreachable): then none, and the series go missing.
  std::optional<QueueStats> Latest() const;

 private:
  SchedulerStore* store_;
  const absl::Duration online_within_;
  const absl::Duration period_;
  mutable absl::Mutex mu_;
  std::optional<QueueStats> stats_ ABSL_GUARDED_BY(mu_);
  absl::Time read_at_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

[[nodiscard]] telemetry::Registry::Registration ExportMetrics(telemetry::Registry* registry,
                                                              const QueueStatsCache* stats,
                                                              const Waiters* waiters);

// Counted where they happen (the process's registry).
telemetry::Counter& ClaimsCounter();
telemetry::Counter& ReapedCounter(const char* outcome);  // requeued, failed, timed_out

}  // namespace trainmesh::scheduler
