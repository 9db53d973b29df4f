// The metrics repository: the `metrics` schema. Batches go in with COPY in one
// transaction; queries downsample in the database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/pg/pool.h"
#include "trainmesh/v1/common.pb.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::metrics {

struct IngestBatch {
  std::string job_id;
  std::string owner;
  int attempt = 0;
  int64_t batch_seq = 0;
  std::vector<trainmesh::v1::MetricPoint> points;
  std::vector<trainmesh::v1::LogLine> logs;
  std::vector<trainmesh::v1::Chart> charts;
  double device_seconds = 0;
  std::string device_type;
  double price_per_hour = 0;
  std::string currency = "USD";
  bool final = false;
};

struct IngestResult {
  bool duplicate = false;
  int64_t points_stored = 0;
  int64_t logs_stored = 0;
  // The job's sequence ranges after the batch; first > last when none stored.
  int64_t first_point_seq = 0, last_point_seq = 0;
  int64_t first_log_seq = 0, last_log_seq = 0;
};

struct JobInfo {
  std::string owner;
  int attempt = 0;
  int64_t last_point_seq = 0;
  int64_t last_log_seq = 0;
  trainmesh::v1::Cost cost;
};

template <typename Item>
struct Page {
  std::string owner;  // of the job ("" when it has reported nothing)
  std::vector<Item> items;
};

struct SeriesQuery {
  std::string job_id;
  std::vector<std::string> names;  // all when empty
  std::optional<std::string> run;  // all runs when unset
  int64_t min_step = 0;
  int64_t max_step = INT64_MAX;
  int max_points = 2000;
  // The first this many series by (name, run): one answer stays bounded
  // whatever a script logged.
  int max_series = 64;
};

class MetricsStore {
 public:
  // NOTIFY channel; payload "job_id first_point last_point first_log last_log".
  static constexpr char kChannel[] = "trainmesh_metrics";

  // Statements to prepare on every pooled connection (the hot path).
  static std::vector<std::pair<std::string, std::string>> PreparedStatements();

  explicit MetricsStore(pg::ConnectionPool* pool) : pool_(pool) {}

  // Stores a batch in one transaction (acknowledged means durable):
  //   a report of an attempt older than one seen before -> FAILED_PRECONDITION
  //   a token owner other than the job's                -> PERMISSION_DENIED
  //   (job, attempt, batch_seq) stored before           -> duplicate, nothing written
  absl::StatusOr<IngestResult> Ingest(const IngestBatch& batch);

  // NOT_FOUND when the job has reported nothing.
  absl::StatusOr<JobInfo> Job(const std::string& job_id);

  // Points / logs with after < seq <= until (until 0: no bound), oldest first.
  absl::StatusOr<Page<trainmesh::v1::MetricPoint>> Points(const std::string& job_id, int64_t after,
                                                          int64_t until, int limit);
  absl::StatusOr<Page<trainmesh::v1::LogLine>> Logs(const std::string& job_id, int64_t after,
                                                    int64_t until, int limit);
  // The newest `limit` points, oldest first.
  absl::StatusOr<std::vector<trainmesh::v1::MetricPoint>> Recent(const std::string& job_id,
                                                                 int limit);

  // Every series in range, each at most max_points: when a series has more,
  // the step range is cut into max_points/2 buckets and each bucket keeps its
  // minimum and its maximum point (so spikes survive).
  absl::StatusOr<std::vector<trainmesh::v1::MetricSeries>> Query(const SeriesQuery& query);

  absl::StatusOr<std::vector<trainmesh::v1::MetricSummary>> Summaries(const std::string& job_id);
  absl::StatusOr<std::vector<trainmesh::v1::Chart>> Charts(const std::string& job_id);

 private:
  pg::ConnectionPool* pool_;
};

}  // namespace trainmesh::metrics
