// The metrics service's logic, free of gRPC: who may report and read, batch
// validation, queries.
#pragma once

#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

#include "absl/status/statusor.h"
#include "services/metrics/metrics_store.h"
#include "services/metrics/price_table.h"
#include "trainmesh/v1/auth.pb.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::metrics {

struct MetricsOptions {
  PriceTable prices;
  int max_points_per_batch = 200000;
  int max_logs_per_batch = 50000;
  // The owner of a job this service holds nothing of yet, from the service
  // that owns jobs (NOT_FOUND when there is no such job). Unset: such a job
  // reads as empty for anyone.
  std::function<absl::StatusOr<std::string>(const std::string& job_id)> job_owner;
};

class MetricsService {
 public:
  using Principal = trainmesh::v1::Principal;

  MetricsService(MetricsStore* store, MetricsOptions options);

  // A batch from a trainer: the caller must hold a job token for this job and
  // its current attempt. INVALID_ARGUMENT with field violations for a bad
  // batch, PERMISSION_DENIED for another job's token, FAILED_PRECONDITION for
  // a stale attempt.
  absl::StatusOr<trainmesh::v1::ReportMetricsResponse> Report(
      const Principal& caller, const trainmesh::v1::ReportMetricsRequest& request);
  absl::StatusOr<trainmesh::v1::ReportMetricsBatchResponse> ReportBatch(
      const Principal& caller, const trainmesh::v1::ReportMetricsBatchRequest& request);

  absl::StatusOr<trainmesh::v1::QueryMetricsResponse> QueryMetrics(
      const Principal& caller, const trainmesh::v1::QueryMetricsRequest& request);
  absl::StatusOr<trainmesh::v1::ListMetricNamesResponse> ListMetricNames(
      const Principal& caller, const trainmesh::v1::ListMetricNamesRequest& request);
  absl::StatusOr<trainmesh::v1::GetLogsResponse> GetLogs(
      const Principal& caller, const trainmesh::v1::GetLogsRequest& request);
  absl::StatusOr<trainmesh::v1::Cost> GetCost(const Principal& caller,
                                              const trainmesh::v1::GetCostRequest& request);
  absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse> GetRecentMetrics(
      const Principal& caller, const trainmesh::v1::GetRecentMetricsRequest& request);

  // Reading a job's telemetry: its owner, or an internal service. Another
  // user's job, and a job that does not exist, are NOT_FOUND (before the
  // first report the owner comes from options.job_owner, remembered; while
  // that cannot be asked, such a job reads as empty, which shows nothing).
  // INVALID_ARGUMENT for a malformed id.
  absl::Status CheckRead(const Principal& caller, const std::string& job_id);
  // Whether `caller` may see data of a job owned by `owner`.
  static bool MaySee(const Principal& caller, const std::string& owner);

  MetricsStore* store() { return store_; }

 private:
  // Whose job `job_id` is, when this service holds nothing of it yet.
  absl::StatusOr<std::string> OwnerOfUnknownJob(const std::string& job_id);

  MetricsStore* store_;
  MetricsOptions options_;
  absl::Mutex owners_mu_;
  // Owners learnt from options_.job_owner (a job's owner never changes).
  absl::flat_hash_map<std::string, std::string> owners_ ABSL_GUARDED_BY(owners_mu_);
};

}  // namespace trainmesh::metrics
