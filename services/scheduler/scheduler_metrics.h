// The scheduler's Prometheus metrics, besides its RPCs':
//   trainmesh_queue_jobs{state="queued"|"running"}    jobs waiting and running
//   trainmesh_queue_oldest_wait_seconds               how long the oldest queued job has waited
//   trainmesh_agents{status="online"|"offline"}       registered agents
//   trainmesh_agent_slots_online                      job slots of online, non-draining agents
//   trainmesh_scheduler_outbox_pending                status reports not yet at the jobs service
//   trainmesh_scheduler_waiting_polls                 agents long-polling this replica now
//   trainmesh_scheduler_claims_total                  jobs handed to agents
//   trainmesh_scheduler_reaped_total{outcome}         lease expiries requeued or failed, queue timeouts
// The gauges of the queue and agents come from the database at each scrape,
// so every replica shows the same values (aggregate them with max, not sum).
#pragma once

#include "absl/time/time.h"
#include "libs/telemetry/metrics.h"
#include "services/scheduler/scheduler_store.h"
#include "services/scheduler/waiters.h"

namespace trainmesh::scheduler {

[[nodiscard]] telemetry::Registry::Registration ExportMetrics(telemetry::Registry* registry, SchedulerStore* store,
                                                              const Waiters* waiters,
                                                              absl::Duration online_within);

// Counted where they happen (the process's registry).
telemetry::Counter& ClaimsCounter();
telemetry::Counter& ReapedCounter(const char* outcome);  // requeued, failed, timed_out

}  // namespace trainmesh::scheduler
