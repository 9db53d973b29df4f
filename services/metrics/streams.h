// Live telemetry streams (StreamMetrics, StreamLogs) and the ingest stream
// (ReportMetrics).
//
// Fan-out: each metrics replica LISTENs for batch notifications carrying only
// (job, sequence range). A Feed reads each announced range once per replica
// and offers it to every subscriber of that job on the replica, so a thousand
// watchers of one job cost one database read per batch, and points written
// through one replica reach subscribers of every other.
//
// A subscriber holds a bounded queue. One that falls behind (a slow client)
// drops its queue, is marked lagged, and catches up from the database from
// its last sequence number, so it never silently loses points and never slows
// ingest. Every item carries the sequence number to resume from.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/hub.h"
#include "libs/server/stream_guard.h"
#include "services/metrics/metrics_service.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::metrics {

// Items of one job with seq in [first, last], as read from the database.
template <typename Item>
struct Chunk {
  std::string owner;
  int64_t first = 0;
  int64_t last = 0;
  std::vector<Item> items;
};

// One replica's fan-out of a job's items (see above): a Hub keyed by job id
// whose events are chunks, plus the announced ranges not yet read.
template <typename Item>
class Feed {
 public:
  using ChunkPtr = std::shared_ptr<const Chunk<Item>>;
  // Told each chunk of its job (must not block), to re-read from the
  // database when chunks may have been missed, and when the server drains.
  using Subscriber = typename server::Hub<ChunkPtr>::Subscriber;
  using Fetch = std::function<absl::StatusOr<Page<Item>>(const std::string& job, int64_t after,
                                                         int64_t until, int limit)>;

  Feed(Fetch fetch, server::Executor* executor) : fetch_(std::move(fetch)), executor_(executor) {}

  uint64_t Add(const std::string& job, std::weak_ptr<Subscriber> subscriber) {
    return hub_.Subscribe(job, std::move(subscriber));
  }
  void Remove(uint64_t id) { hub_.Unsubscribe(id); }

  // Items [first, last] of `job` were committed (from NOTIFY).
  void Announce(const std::string& job, int64_t first, int64_t last);
  void ResyncAll() { hub_.ResyncAll(); }
  void DrainAll() { hub_.DrainAll(); }
  size_t subscribers() const { return hub_.subscribers(); }

 private:
  // Announced ranges of one job not yet read; one read in flight per job
  // keeps order.
  struct Unread {
    int64_t first = 0, last = -1;
    bool reading = false;
  };
  void Read(const std::string& job);

  const Fetch fetch_;
  server::Executor* const executor_;
  server::Hub<ChunkPtr> hub_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Unread> unread_ ABSL_GUARDED_BY(mu_);
};

using PointFeed = Feed<trainmesh::v1::MetricPoint>;
using LogFeed = Feed<trainmesh::v1::LogLine>;

struct StreamLimits {
  // A subscriber further behind than this is lagged and catches up from the
  // database.
  size_t max_queued_items = 50000;
  int read_batch = 5000;
  // Per-user stream slots, and the end of a stream whose credential lapses
  // (null: neither).
  server::StreamGuards* guards = nullptr;
};

grpc::ServerWriteReactor<trainmesh::v1::MetricsStreamItem>* StartMetricsStream(
    MetricsService* service, PointFeed* feed, server::Executor* executor,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::StreamMetricsRequest& request, StreamLimits limits = {});

grpc::ServerWriteReactor<trainmesh::v1::LogStreamItem>* StartLogStream(
    MetricsService* service, LogFeed* feed, server::Executor* executor,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::StreamLogsRequest& request, StreamLimits limits = {});

grpc::ServerBidiReactor<trainmesh::v1::ReportMetricsRequest, trainmesh::v1::ReportMetricsResponse>*
StartReportStream(MetricsService* service, server::Executor* executor,
                  std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize);

}  // namespace trainmesh::metrics
