// Streams one attempt's metric points, log lines, charts and device time to
// the metrics service over a long-lived ReportMetrics stream, in numbered
// batches the service deduplicates, so a batch resent after a broken stream is
// stored once. Training never waits on it: points queue in a bounded buffer
// (the oldest are dropped past the bound, and that is logged) while the
// service is unreachable, and go out once it is back.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "trainmesh/v1/metrics.grpc.pb.h"

namespace trainmesh::trainer {

struct ReporterOptions {
  absl::Duration flush_interval = absl::Milliseconds(250);
  size_t max_batch_points = 5000;
  size_t max_batch_logs = 2000;
  // Points and log lines held while the service is unreachable.
  size_t max_buffered = 500'000;
  absl::Duration max_backoff = absl::Seconds(5);
  std::string device_type = "cpu";
};

class MetricsReporter {
 public:
  // `token` returns the job token to present (it is renewed while the job runs).
  MetricsReporter(std::shared_ptr<trainmesh::v1::MetricsService::StubInterface> stub,
                  std::string job_id, int attempt, std::function<std::string()> token,
                  ReporterOptions options);
  ~MetricsReporter();

  void Points(std::vector<trainmesh::v1::MetricPoint> points);
  void Log(trainmesh::v1::LogLine::Stream stream, std::string text);
  void Chart(trainmesh::v1::Chart chart);
  void AddDeviceSeconds(double seconds);
  void Usage(const trainmesh::v1::DeviceUsage& usage);

  // Sends what is left, the last batch marked final, and waits for it to be
  // acknowledged up to `timeout`. True when everything was delivered.
  bool Finish(absl::Duration timeout);

  // Batches acknowledged, points dropped for lack of room, whether the service
  // refused this attempt for good (a stale token).
  int64_t acked_batches() const { return acked_.load(); }
  int64_t dropped() const { return dropped_.load(); }
  bool refused() const { return refused_.load(); }
  int64_t failed_deliveries() const { return failed_.load(); }

 private:
  void Loop();
  // Moves queued items into `batch_` (when it is empty); false if nothing to send.
  bool FillBatch(bool final);
  // One delivery attempt of `batch_`; true when acknowledged or dropped for good.
  bool Deliver();
  void CloseStream();

  const std::shared_ptr<trainmesh::v1::MetricsService::StubInterface> stub_;
  const std::string job_id_;
  const int attempt_;
  const std::function<std::string()> token_;
  const ReporterOptions options_;

  // What the loop waits for: a stop, or a finish not yet delivered.
  bool Wakeful() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || (finishing_ && !done_);
  }

  absl::Mutex mu_;
  std::deque<trainmesh::v1::MetricPoint> points_ ABSL_GUARDED_BY(mu_);
  std::deque<trainmesh::v1::LogLine> logs_ ABSL_GUARDED_BY(mu_);
  std::vector<trainmesh::v1::Chart> charts_ ABSL_GUARDED_BY(mu_);
  double device_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<trainmesh::v1::DeviceUsage> usage_ ABSL_GUARDED_BY(mu_);
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // the final batch was acknowledged (or refused)
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by the loop thread.
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriterInterface<trainmesh::v1::ReportMetricsRequest,
                                                    trainmesh::v1::ReportMetricsResponse>>
      stream_;
  std::optional<trainmesh::v1::ReportMetricsRequest> batch_;
  int64_t next_seq_ = 1;
  absl::Duration backoff_ = absl::ZeroDuration();

  std::atomic<int64_t> acked_{0};
  std::atomic<int64_t> dropped_{0};
  std::atomic<int64_t> failed_{0};
  std::atomic<bool> refused_{false};
  std::thread thread_;
};

}  // namespace trainmesh::trainer
