#include "services/trainer/metrics_reporter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/log/log.h"

namespace trainmesh::trainer {

using trainmesh::v1::ReportMetricsRequest;
using trainmesh::v1::ReportMetricsResponse;

MetricsReporter::MetricsReporter(std::shared_ptr<trainmesh::v1::MetricsService::StubInterface> stub,
                                 std::string job_id, int attempt,
                                 std::function<std::string()> token, ReporterOptions options)
    : stub_(std::move(stub)),
      job_id_(std::move(job_id)),
      attempt_(attempt),
      token_(std::move(token)),
      options_(std::move(options)) {
  thread_ = std::thread([this] { Loop(); });
}

MetricsReporter::~MetricsReporter() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

namespace {

template <typename T>
void Trim(std::deque<T>& q, size_t keep, std::atomic<int64_t>& dropped) {
  while (q.size() > keep) {
    q.pop_front();
    dropped.fetch_add(1);
  }
}

}  // namespace

void MetricsReporter::Points(std::vector<trainmesh::v1::MetricPoint> points) {
  absl::MutexLock l(&mu_);
  for (auto& p : points) points_.push_back(std::move(p));
  Trim(points_, options_.max_buffered, dropped_);
}

void MetricsReporter::Log(trainmesh::v1::LogLine::Stream stream, std::string text) {
  trainmesh::v1::LogLine line;
  line.set_stream(stream);
  line.set_text(std::move(text));
  line.set_attempt(attempt_);
  *line.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  absl::MutexLock l(&mu_);
  logs_.push_back(std::move(line));
  Trim(logs_, options_.max_buffered, dropped_);
}

void MetricsReporter::Chart(trainmesh::v1::Chart chart) {
  absl::MutexLock l(&mu_);
  charts_.push_back(std::move(chart));
}

void MetricsReporter::AddDeviceSeconds(double seconds) {
  absl::MutexLock l(&mu_);
  device_seconds_ += std::max(0.0, seconds);
}

void MetricsReporter::Usage(const trainmesh::v1::DeviceUsage& usage) {
  absl::MutexLock l(&mu_);
  usage_ = usage;
}

bool MetricsReporter::Finish(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  finishing_ = true;
  mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
  return done_ && !refused_.load();
}

bool MetricsReporter::FillBatch(bool final) {
  absl::MutexLock l(&mu_);
  if (final && done_) return false;
  const bool empty = points_.empty() && logs_.empty() && charts_.empty() && device_seconds_ == 0 &&
                     !usage_.has_value();
  if (empty && !final) return false;
  ReportMetricsRequest b;
  b.set_job_id(job_id_);
  b.set_attempt(attempt_);
  b.set_batch_seq(next_seq_++);
  b.set_device_type(options_.device_type);
  for (size_t n = 0; n < options_.max_batch_points && !points_.empty(); ++n) {
    *b.add_points() = std::move(points_.front());
    points_.pop_front();
  }
  for (size_t n = 0; n < options_.max_batch_logs && !logs_.empty(); ++n) {
    *b.add_logs() = std::move(logs_.front());
    logs_.pop_front();
  }
  for (auto& c : charts_) *b.add_charts() = std::move(c);
  charts_.clear();
  b.set_device_seconds(device_seconds_);
  device_seconds_ = 0;
  if (usage_.has_value()) *b.mutable_usage() = *usage_;
  usage_.reset();
  if (final && points_.empty() && logs_.empty()) b.set_final(true);
  batch_ = std::move(b);
  return true;
}

void MetricsReporter::CloseStream() {
  if (stream_ != nullptr) {
    context_->TryCancel();
    (void)stream_->Finish();
  }
  stream_.reset();
  context_.reset();
}

bool MetricsReporter::Deliver() {
  if (stream_ == nullptr) {
    context_ = std::make_unique<grpc::ClientContext>();
    context_->AddMetadata("authorization", absl::StrCat("Bearer ", token_()));
    stream_ = stub_->ReportMetrics(context_.get());
  }
  ReportMetricsResponse ack;
  if (stream_->Write(*batch_) && stream_->Read(&ack)) {
    if (ack.acked_batch_seq() != batch_->batch_seq()) {
      TM_LOG(Warning, "metrics service acknowledged another batch")
          .With("job_id", job_id_)
          .With("sent", batch_->batch_seq())
          .With("acked", ack.acked_batch_seq());
    }
    acked_.fetch_add(1);
    const bool final = batch_->final();
    batch_.reset();
    backoff_ = absl::ZeroDuration();
    if (final) {
      absl::MutexLock l(&mu_);
      done_ = true;
    }
    return true;
  }
  // The stream broke: its status says whether to try again.
  (void)stream_->WritesDone();
  const grpc::Status status = stream_->Finish();
  stream_.reset();
  context_.reset();
  switch (status.error_code()) {
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::FAILED_PRECONDITION:
      // Not this attempt's to report any more (requeued elsewhere, or cancelled).
      TM_LOG(Warning, "metrics service refused this attempt's reports")
          .With("job_id", job_id_)
          .With("attempt", attempt_)
          .With("error", status.error_message());
      refused_ = true;
      {
        absl::MutexLock l(&mu_);
        points_.clear();
        logs_.clear();
        done_ = true;
      }
      batch_.reset();
      return true;
    case grpc::StatusCode::INVALID_ARGUMENT:
      TM_LOG(Error, "metrics service rejected a batch; dropping it")
          .With("job_id", job_id_)
          .With("batch_seq", batch_->batch_seq())
          .With("error", status.error_message());
      dropped_.fetch_add(batch_->points_size() + batch_->logs_size());
      if (batch_->final()) {
        absl::MutexLock l(&mu_);
        done_ = true;
      }
      batch_.reset();
      return true;
    default:
      failed_.fetch_add(1);
      backoff_ =
          std::min(options_.max_backoff,
                   backoff_ == absl::ZeroDuration() ? absl::Milliseconds(100) : 2 * backoff_);
      TM_LOG(Warning, "metrics service unreachable; buffering")
          .With("job_id", job_id_)
          .With("error", status.error_message())
          .With("retry_in", absl::FormatDuration(backoff_));
      return false;
  }
}

void MetricsReporter::Loop() {
  absl::Time next_flush = absl::Now() + options_.flush_interval;
  while (true) {
    bool final = false;
    {
      absl::MutexLock l(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(this, &MetricsReporter::Wakeful), next_flush);
      if (stopping_) break;
      final = finishing_;
      if (final && done_) {
        next_flush = absl::InfiniteFuture();
        continue;
      }
    }
    next_flush = absl::Now() + options_.flush_interval;
    while (batch_.has_value() || FillBatch(final)) {
      if (!Deliver()) {
        // Wait out the backoff (or until told to stop), then try again.
        absl::MutexLock l(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff_);
        if (stopping_) break;
        next_flush = absl::Now();
        break;
      }
    }
    if (refused_.load()) {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(&stopping_));
      break;
    }
  }
  CloseStream();
  absl::MutexLock l(&mu_);
  if (dropped_.load() > 0) {
    TM_LOG(Warning, "metric points or log lines were dropped")
        .With("job_id", job_id_)
        .With("dropped", dropped_.load());
  }
}

}  // namespace trainmesh::trainer
