#include "services/scheduler/scheduler_metrics.h"

#include "libs/log/log.h"

namespace trainmesh::scheduler {

telemetry::Registry::Registration ExportMetrics(telemetry::Registry* registry, SchedulerStore* store,
                                                const Waiters* waiters, absl::Duration online_within) {
  return registry->AddCollector([store, waiters, online_within](telemetry::Exposition& out) {
    out.Family("trainmesh_scheduler_waiting_polls", "Agents long-polling this scheduler replica for work now.",
               "gauge");
    out.Sample("trainmesh_scheduler_waiting_polls", {}, static_cast<double>(waiters->size()));
    absl::StatusOr<QueueStats> stats = store->Stats(online_within);
    if (!stats.ok()) {
      // The series go missing for this scrape, which absent() alerts can see.
      TM_LOG(Warning, "queue statistics unavailable").With("error", stats.status());
      return;
    }
    out.Family("trainmesh_queue_jobs", "Jobs in the scheduler's queue, by state.", "gauge");
    out.Sample("trainmesh_queue_jobs", {{"state", "queued"}}, static_cast<double>(stats->queued));
    out.Sample("trainmesh_queue_jobs", {{"state", "running"}}, static_cast<double>(stats->running));
    out.Family("trainmesh_queue_oldest_wait_seconds", "How long the longest-waiting queued job has waited.",
               "gauge");
    out.Sample("trainmesh_queue_oldest_wait_seconds", {}, stats->oldest_wait_seconds);
    out.Family("trainmesh_agents", "Registered trainer agents, by whether they were heard from recently.", "gauge");
    out.Sample("trainmesh_agents", {{"status", "online"}}, static_cast<double>(stats->agents_online));
    out.Sample("trainmesh_agents", {{"status", "offline"}}, static_cast<double>(stats->agents_offline));
    out.Family("trainmesh_agent_slots_online", "Job slots of the online agents that are not draining.", "gauge");
    out.Sample("trainmesh_agent_slots_online", {}, static_cast<double>(stats->slots_online));
    out.Family("trainmesh_scheduler_outbox_pending",
               "Job status reports written but not yet delivered to the jobs service.", "gauge");
    out.Sample("trainmesh_scheduler_outbox_pending", {}, static_cast<double>(stats->outbox_pending));
  });
}

telemetry::Counter& ClaimsCounter() {
  static telemetry::Counter& claims =
      telemetry::Registry::Default()
          .AddCounter("trainmesh_scheduler_claims_total", "Jobs claimed by agents (each attempt counts).", {})
          .With({});
  return claims;
}

telemetry::Counter& ReapedCounter(const char* outcome) {
  static telemetry::Family<telemetry::Counter>& reaped = telemetry::Registry::Default().AddCounter(
      "trainmesh_scheduler_reaped_total",
      "Jobs taken back by the reaper: requeued or failed after a lost lease, failed after the queue timeout.",
      {"outcome"});
  return reaped.With({outcome});
}

}  // namespace trainmesh::scheduler
