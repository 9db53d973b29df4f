#include "services/metrics/metrics_service.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/pg/ids.h"
#include "libs/identity/authenticator.h"
#include "libs/log/log.h"
#include "libs/pagination/page.h"
#include "libs/status/field_violations.h"
#include "libs/status/status_macros.h"
#include "libs/telemetry/metrics.h"

namespace trainmesh::metrics {
namespace {

using google::protobuf::util::TimeUtil;
using status::FieldViolations;

constexpr size_t kMaxName = 200;
constexpr size_t kMaxLogText = 64 << 10;
constexpr int kDefaultMaxPoints = 2000;
constexpr int kMaxMaxPoints = 100000;
constexpr int kDefaultLogs = 1000;
constexpr int kMaxLogs = 10000;
constexpr int kDefaultRecent = 100;
constexpr int kMaxRecent = 1000;

absl::Status CheckJobId(const std::string& id) {
  if (pg::IsUuid(id)) return absl::OkStatus();
  return status::InvalidField("job_id", "must be a job id (a UUID)");
}

bool HasScope(const trainmesh::v1::Principal& p, absl::string_view scope) {
  return std::find(p.scopes().begin(), p.scopes().end(), scope) != p.scopes().end();
}

}  // namespace

bool MetricsService::MaySee(const Principal& caller, const std::string& owner) {
  return HasScope(caller, "internal") || owner == caller.subject();
}

absl::Status MetricsService::CheckRead(const Principal& caller, const std::string& job_id) {
  TM_RETURN_IF_ERROR(CheckJobId(job_id));
  absl::StatusOr<JobInfo> job = store_->Job(job_id);
  std::string owner;
  if (job.ok()) {
    owner = job->owner;
  } else if (job.status().code() != absl::StatusCode::kNotFound) {
    return job.status();
  } else if (HasScope(caller, "internal") || !options_.job_owner) {
    return absl::OkStatus();  // nothing to hide: it reads as empty
  } else {
    absl::StatusOr<std::string> learnt = OwnerOfUnknownJob(job_id);
    if (learnt.status().code() == absl::StatusCode::kUnavailable) {
      // The jobs service is away: this service holds nothing of the job, so
      // an empty answer (or a stream whose every chunk is checked against its
      // owner) shows nobody anything. Availability wins while it is away.
      TM_LOG(Warning, "answering without knowing whose job this is")
          .With("job_id", job_id)
          .With("error", learnt.status());
      return absl::OkStatus();
    }
    TM_ASSIGN_OR_RETURN(owner, std::move(learnt));
  }
  if (!MaySee(caller, owner)) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MetricsService::OwnerOfUnknownJob(const std::string& job_id) {
  {
    absl::MutexLock lock(&owners_mu_);
    auto it = owners_.find(job_id);
    if (it != owners_.end()) return it->second;
  }
  absl::StatusOr<std::string> owner = options_.job_owner(job_id);
  if (owner.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  if (!owner.ok()) return absl::UnavailableError(absl::StrCat("cannot learn whose job this is: ", owner.status().message()));
  absl::MutexLock lock(&owners_mu_);
  if (owners_.size() >= 100000) owners_.clear();  // bounded; learnt again on demand
  owners_[job_id] = *owner;
  return *owner;
}

namespace {

// Prometheus: what was ingested (rate() of these is the ingest rate). Every
// series exists from the start, so a rate over a service that never ingested
// is 0, not absent.
struct IngestCounters {
  telemetry::Registry& registry = telemetry::Registry::Default();
  telemetry::Family<telemetry::Counter>& batches = registry.AddCounter(
      "trainmesh_ingest_batches_total", "Metric batches received, by whether they were new or a resend.",
      {"result"});
  telemetry::Counter& stored = batches.With({"stored"});
  telemetry::Counter& duplicate = batches.With({"duplicate"});
  telemetry::Counter& points = registry.AddCounter("trainmesh_ingest_points_total", "Metric points stored.", {}).With({});
  telemetry::Counter& logs = registry.AddCounter("trainmesh_ingest_log_lines_total", "Log lines stored.", {}).With({});
  telemetry::Counter& device_seconds =
      registry.AddCounter("trainmesh_device_seconds_total", "Device (GPU or CPU) time reported by training jobs.", {})
          .With({});
};

IngestCounters& Ingested() {
  static auto* counters = new IngestCounters();
  return *counters;
}

void CountIngest(const IngestBatch& batch, const IngestResult& stored) {
  IngestCounters& c = Ingested();
  if (stored.duplicate) {
    c.duplicate.Add();
    return;
  }
  c.stored.Add();
  c.points.Add(static_cast<double>(stored.points_stored));
  c.logs.Add(static_cast<double>(stored.logs_stored));
  c.device_seconds.Add(batch.device_seconds);
}

}  // namespace

MetricsService::MetricsService(MetricsStore* store, MetricsOptions options)
    : store_(store), options_(std::move(options)) {
  Ingested();
}

absl::StatusOr<trainmesh::v1::ReportMetricsResponse> MetricsService::Report(
    const Principal& caller, const trainmesh::v1::ReportMetricsRequest& request) {
  TM_RETURN_IF_ERROR(CheckJobId(request.job_id()));
  // Only the token of this job's current attempt may report.
  TM_RETURN_IF_ERROR(identity::CheckJobToken(caller, request.job_id(), caller.attempt()));
  FieldViolations v;
  if (request.attempt() != 0 && request.attempt() != caller.attempt()) {
    v.Add("attempt", absl::StrCat("is ", request.attempt(), " but the job token is for attempt ",
                                  caller.attempt()));
  }
  if (request.batch_seq() < 0) v.Add("batch_seq", "must be >= 0");
  if (request.points_size() > options_.max_points_per_batch) {
    v.Add("points", absl::StrCat("at most ", options_.max_points_per_batch, " per batch"));
  }
  if (request.logs_size() > options_.max_logs_per_batch) {
    v.Add("logs", absl::StrCat("at most ", options_.max_logs_per_batch, " per batch"));
  }
  if (!std::isfinite(request.device_seconds()) || request.device_seconds() < 0) {
    v.Add("device_seconds", "must be a finite number >= 0");
  }
  IngestBatch batch;
  batch.job_id = request.job_id();
  batch.owner = caller.subject();
  batch.attempt = caller.attempt();
  batch.batch_seq = request.batch_seq();
  batch.device_seconds = request.device_seconds();
  batch.device_type = request.device_type();
  batch.price_per_hour = options_.prices.PerHour(request.device_type());
  batch.currency = options_.prices.currency();
  batch.final = request.final();
  const google::protobuf::Timestamp now = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(absl::Now()));
  batch.points.reserve(request.points_size());
  for (int i = 0; i < request.points_size() && v.violations().size() < 20; ++i) {
    const auto& p = request.points(i);
    if (p.name().empty() || p.name().size() > kMaxName) {
      v.Add(absl::StrCat("points[", i, "].name"), absl::StrCat("must be 1 to ", kMaxName, " bytes"));
    }
    if (p.run().size() > kMaxName) v.Add(absl::StrCat("points[", i, "].run"), "is too long");
    if (p.step() < 0) v.Add(absl::StrCat("points[", i, "].step"), "must be >= 0");
    batch.points.push_back(p);
    if (!p.has_wall_time()) *batch.points.back().mutable_wall_time() = now;
  }
  for (int i = 0; i < request.logs_size(); ++i) {
    batch.logs.push_back(request.logs(i));
    auto& l = batch.logs.back();
    if (l.text().size() > kMaxLogText) l.mutable_text()->resize(kMaxLogText);
    if (l.stream() == trainmesh::v1::LogLine::STREAM_UNSPECIFIED) {
      l.set_stream(trainmesh::v1::LogLine::STDOUT);
    }
    if (!l.has_time()) *l.mutable_time() = now;
  }
  for (int i = 0; i < request.charts_size(); ++i) {
    const auto& c = request.charts(i);
    if (c.title().empty() || c.title().size() > kMaxName || c.metrics().empty()) {
      v.Add(absl::StrCat("charts[", i, "]"), "needs a title and at least one metric");
    }
    batch.charts.push_back(c);
  }
  TM_RETURN_IF_ERROR(v.ToStatus("invalid metrics batch"));
  TM_ASSIGN_OR_RETURN(IngestResult stored, store_->Ingest(batch));
  CountIngest(batch, stored);
  trainmesh::v1::ReportMetricsResponse response;
  response.set_acked_batch_seq(request.batch_seq());
  response.set_points_stored(stored.points_stored);
  response.set_logs_stored(stored.logs_stored);
  response.set_duplicate(stored.duplicate);
  response.set_last_point_seq(stored.last_point_seq);
  response.set_last_log_seq(stored.last_log_seq);
  return response;
}

absl::StatusOr<trainmesh::v1::ReportMetricsBatchResponse> MetricsService::ReportBatch(
    const Principal& caller, const trainmesh::v1::ReportMetricsBatchRequest& request) {
  trainmesh::v1::ReportMetricsBatchResponse response;
  for (const auto& batch : request.batches()) {
    trainmesh::v1::ReportMetricsRequest one = batch;
    if (one.job_id().empty()) one.set_job_id(request.job_id());
    if (one.job_id() != request.job_id()) {
      return status::InvalidField("batches.job_id", "every batch must be for the job in the path");
    }
    TM_ASSIGN_OR_RETURN(*response.add_acks(), Report(caller, one));
  }
  return response;
}

absl::StatusOr<trainmesh::v1::QueryMetricsResponse> MetricsService::QueryMetrics(
    const Principal& caller, const trainmesh::v1::QueryMetricsRequest& request) {
  TM_RETURN_IF_ERROR(CheckRead(caller, request.job_id()));
  FieldViolations v;
  if (request.max_points() < 0 || request.max_points() > kMaxMaxPoints || request.max_points() == 1) {
    v.Add("max_points", absl::StrCat("must be between 2 and ", kMaxMaxPoints, " (0: ",
                                     kDefaultMaxPoints, ")"));
  }
  if (request.min_step() < 0) v.Add("min_step", "must be >= 0");
  if (request.max_step() < 0 || (request.max_step() > 0 && request.max_step() < request.min_step())) {
    v.Add("max_step", "must be >= min_step (0: no bound)");
  }
  SeriesQuery q;
  if (request.names_size() > q.max_series) {
    v.Add("names", absl::StrCat("at most ", q.max_series, " series per query"));
  }
  TM_RETURN_IF_ERROR(v.ToStatus());
  q.job_id = request.job_id();
  q.names.assign(request.names().begin(), request.names().end());
  if (!request.run().empty()) q.run = request.run();
  q.min_step = request.min_step();
  q.max_step = request.max_step() == 0 ? INT64_MAX : request.max_step();
  q.max_points = request.max_points() == 0 ? kDefaultMaxPoints : request.max_points();
  TM_ASSIGN_OR_RETURN(std::vector<trainmesh::v1::MetricSeries> series, store_->Query(q));
  trainmesh::v1::QueryMetricsResponse response;
  for (auto& s : series) *response.add_series() = std::move(s);
  return response;
}

absl::StatusOr<trainmesh::v1::ListMetricNamesResponse> MetricsService::ListMetricNames(
    const Principal& caller, const trainmesh::v1::ListMetricNamesRequest& request) {
  TM_RETURN_IF_ERROR(CheckRead(caller, request.job_id()));
  TM_ASSIGN_OR_RETURN(auto summaries, store_->Summaries(request.job_id()));
  TM_ASSIGN_OR_RETURN(auto charts, store_->Charts(request.job_id()));
  trainmesh::v1::ListMetricNamesResponse response;
  for (auto& s : summaries) *response.add_metrics() = std::move(s);
  for (auto& c : charts) *response.add_charts() = std::move(c);
  return response;
}

absl::StatusOr<trainmesh::v1::GetLogsResponse> MetricsService::GetLogs(
    const Principal& caller, const trainmesh::v1::GetLogsRequest& request) {
  TM_RETURN_IF_ERROR(CheckRead(caller, request.job_id()));
  FieldViolations v;
  const int limit = pagination::PageSize(request.limit(), &v, {kDefaultLogs, kMaxLogs}, "limit");
  if (request.after_seq() < 0) v.Add("after_seq", "must be >= 0");
  TM_RETURN_IF_ERROR(v.ToStatus());
  TM_ASSIGN_OR_RETURN(Page<trainmesh::v1::LogLine> page,
                      store_->Logs(request.job_id(), request.after_seq(), 0,
                                   pagination::RowsToRead(limit)));
  trainmesh::v1::GetLogsResponse response;
  response.set_more(pagination::FillPage(page.items, limit, response.mutable_lines()));
  return response;
}

absl::StatusOr<trainmesh::v1::Cost> MetricsService::GetCost(
    const Principal& caller, const trainmesh::v1::GetCostRequest& request) {
  TM_RETURN_IF_ERROR(CheckRead(caller, request.job_id()));
  absl::StatusOr<JobInfo> job = store_->Job(request.job_id());
  if (job.status().code() == absl::StatusCode::kNotFound) {
    trainmesh::v1::Cost none;
    none.set_currency(options_.prices.currency());
    return none;
  }
  if (!job.ok()) return job.status();
  return job->cost;
}

absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse> MetricsService::GetRecentMetrics(
    const Principal& caller, const trainmesh::v1::GetRecentMetricsRequest& request) {
  TM_RETURN_IF_ERROR(CheckRead(caller, request.job_id()));
  FieldViolations v;
  const int limit = pagination::PageSize(request.limit(), &v, {kDefaultRecent, kMaxRecent}, "limit");
  TM_RETURN_IF_ERROR(v.ToStatus());
  trainmesh::v1::GetRecentMetricsResponse response;
  absl::StatusOr<JobInfo> job = store_->Job(request.job_id());
  if (job.status().code() == absl::StatusCode::kNotFound) return response;
  if (!job.ok()) return job.status();
  *response.mutable_cost() = job->cost;
  TM_ASSIGN_OR_RETURN(auto points, store_->Recent(request.job_id(), limit));
  for (auto& p : points) *response.add_points() = std::move(p);
  return response;
}

}  // namespace trainmesh::metrics
