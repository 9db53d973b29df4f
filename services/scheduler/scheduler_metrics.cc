#include "services/scheduler/scheduler_metrics.h"

#include "absl/time/clock.h"
#include "libs/log/log.h"

namespace trainmesh::scheduler {

QueueStatsCache::QueueStatsCache(SchedulerStore* store, absl::Duration online_within, absl::Duration period)
    : store_(store), online_within_(online_within), period_(period) {}

QueueStatsCache::~QueueStatsCache() { Stop(); }

void QueueStatsCache::Start() {
  thread_ = std::thread([this] {
    while (true) {
      Refresh();
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), period_)) return;
    }
  });
}

void QueueStatsCache::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void QueueStatsCache::Refresh() {
  absl::StatusOr<QueueStats> stats = store_->Stats(online_within_);
  if (!stats.ok()) {
    TM_LOG(Warning, "queue statistics unavailable").With("error", stats.status());
    return;
  }
  absl::MutexLock lock(&mu_);
  stats_ = *stats;
  read_at_ = absl::Now();
}

std::optional<QueueStats> QueueStatsCache::Latest() const {
  absl::MutexLock lock(&mu_);
  if (!stats_.has_value() || absl::Now() - read_at_ > 3 * period_) return std::nullopt;
  return stats_;
}

telemetry::Registry::Registration ExportMetrics(telemetry::Registry* registry, const QueueStatsCache* cache,
                                                const Waiters* waiters) {
  // The counters' series exist from the start (a rate over them is 0, not absent).
  ClaimsCounter();
  for (const char* outcome : {"requeued", "failed", "timed_out"}) ReapedCounter(outcome);
  return registry->AddCollector([cache, waiters](telemetry::Exposition& out) {
    out.Family("trainmesh_scheduler_waiting_polls", "Agents long-polling this scheduler replica for work now.",
               "gauge");
    out.Sample("trainmesh_scheduler_waiting_polls", {}, static_cast<double>(waiters->size()));
    const std::optional<QueueStats> stats = cache->Latest();
    if (!stats.has_value()) return;  // stale: absent() alerts can see it
    out.Family("trainmesh_queue_jobs", "Jobs in the scheduler's queue, by state.", "gauge");
    out.Sample("trainmesh_queue_jobs", {{"state", "queued"}}, static_cast<double>(stats->queued));
    out.Sample("trainmesh_queue_jobs", {{"state", "running"}}, static_cast<double>(stats->running));
    out.Family("trainmesh_queue_oldest_wait_seconds", "How long the longest-waiting queued job has waited.",
               "gauge");
    out.Sample("trainmesh_queue_oldest_wait_seconds", {}, stats->oldest_wait_seconds);
    out.Family("trainmesh_agents",
               "Trainer agents heard from recently (online), and silent ones seen within a day (offline).", "gauge");
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
          .AddCounter("trainmesh_scheduler_claims_total", "Jobs handed to agents (each attempt counts).", {})
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
