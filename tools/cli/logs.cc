// trainctl logs and metrics.
#include "tools/cli/client.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"
#include "tools/cli/sweep.h"

#include <openssl/evp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/tls/tls.h"
#include "grpcpp/grpcpp.h"
#include "libs/status/field_violations.h"
#include "libs/status/grpc_status.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "trainmesh/v1/metrics.grpc.pb.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"

namespace trainmesh::cli {


void PrintLogLine(const trainmesh::v1::LogLine& line) {
  const char* tag = line.stream() == trainmesh::v1::LogLine::STDERR   ? "err"
                    : line.stream() == trainmesh::v1::LogLine::SYSTEM ? "sys"
                                                                     : "out";
  std::cout << FormatTime(line.time()) << "  a" << line.attempt() << " " << tag << "  " << line.text() << "\n";
}

// Prints the training log after `after_seq` (every page); returns the last
// seq printed, or `after_seq`. False in *ok when the metrics service failed.
int64_t PrintLogsAfter(Client& client, const std::string& id, int64_t after_seq, bool* header, bool* ok) {
  trainmesh::v1::GetLogsRequest request;
  request.set_job_id(id);
  request.set_limit(1000);
  request.set_after_seq(after_seq);
  *ok = true;
  while (true) {
    trainmesh::v1::GetLogsResponse lines;
    grpc::Status s = client.metrics().GetLogs(client.Context().get(), request, &lines);
    if (!s.ok()) {
      std::cerr << "(training log unavailable: " << s.error_message() << ")\n";
      *ok = false;
      return after_seq;
    }
    if (!*header && lines.lines_size() > 0) {
      std::cout << "\ntraining log:\n";
      *header = true;
    }
    for (const auto& line : lines.lines()) {
      PrintLogLine(line);
      after_seq = line.seq();
    }
    if (!lines.more() || lines.lines().empty()) break;
    request.set_after_seq(after_seq);
  }
  std::cout << std::flush;
  return after_seq;
}

// `logs -f`: the training log as it is written, until the job ends.
int FollowLogs(Client& client, const std::string& id, int64_t after_seq, int64_t after_event) {
  absl::Mutex mu;
  std::optional<Job::State> final_state;
  std::unique_ptr<grpc::ClientContext> stream_ctx;
  // The job's end, from its own event stream, stops the log stream.
  std::thread watcher([&] {
    Job::State state = Job::STATE_UNSPECIFIED;
    (void)FollowEvents(
        client, id, after_event, [](const JobEvent&) {}, [](const grpc::Status&, int64_t) {}, &state);
    absl::MutexLock lock(&mu);
    final_state = state;
    if (stream_ctx != nullptr) stream_ctx->TryCancel();
  });
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    trainmesh::v1::StreamLogsRequest request;
    request.set_job_id(id);
    request.set_after_seq(after_seq);
    std::unique_ptr<grpc::ClientReader<trainmesh::v1::LogStreamItem>> reader;
    {
      absl::MutexLock lock(&mu);
      if (final_state.has_value()) break;
      stream_ctx = client.Context(/*streaming=*/true);
      reader = client.metrics().StreamLogs(stream_ctx.get(), request);
    }
    trainmesh::v1::LogStreamItem item;
    while (reader->Read(&item)) {
      backoff = absl::Milliseconds(200);
      for (const auto& line : item.lines()) {
        if (line.seq() <= after_seq) continue;
        PrintLogLine(line);
        after_seq = line.seq();
      }
      std::cout << std::flush;
    }
    grpc::Status s = reader->Finish();
    {
      absl::MutexLock lock(&mu);
      if (final_state.has_value()) break;
    }
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE && s.error_code() != grpc::StatusCode::CANCELLED) {
      watcher.detach();
      return ReportError(s, client.connection().metrics_endpoint);
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  watcher.join();
  // Lines stored after the stream stopped: read them back.
  bool header = true, ok = true;
  PrintLogsAfter(client, id, after_seq, &header, &ok);
  std::cout << "(job " << StateName(*final_state) << ")" << std::endl;
  return *final_state == Job::COMPLETED ? kExitOk : kExitJobUnsuccessful;
}

int Logs(Client& client, const std::string& id, const Args& args) {
  trainmesh::v1::GetErrorLogRequest log_request;
  log_request.set_id(id);
  trainmesh::v1::ErrorLog log;
  grpc::Status s = client.jobs().GetErrorLog(client.Context().get(), log_request, &log);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  trainmesh::v1::ListJobEventsRequest request;
  request.set_id(id);
  request.set_page_size(1000);
  std::vector<JobEvent> events;
  while (true) {
    trainmesh::v1::ListJobEventsResponse response;
    s = client.jobs().ListJobEvents(client.Context().get(), request, &response);
    if (!s.ok()) return ReportError(s, client.connection().endpoint);
    for (const auto& e : response.events()) events.push_back(e);
    if (!response.more() || response.events().empty()) break;
    request.set_after_seq(response.events(response.events_size() - 1).seq());
  }
  if (client.json()) {
    std::cout << Json(log) << std::endl;
    for (const auto& e : events) std::cout << Json(e) << std::endl;
    return kExitOk;
  }
  for (const auto& e : events) PrintEvent(e);
  // The training log, from the metrics service (absent when it is unreachable).
  bool header = false, ok = true;
  const int64_t last = PrintLogsAfter(client, id, 0, &header, &ok);
  const bool terminal = !events.empty() && events.back().terminal();
  if (args.Has("follow") && !terminal) {
    if (!header) std::cout << "\ntraining log:\n" << std::flush;
    return FollowLogs(client, id, last, events.empty() ? 0 : events.back().seq());
  }
  if (!log.text().empty()) {
    std::cout << "\nerror log";
    if (log.kind() == trainmesh::v1::ERROR_KIND_USER) std::cout << " (user error";
    if (log.kind() == trainmesh::v1::ERROR_KIND_INFRA) std::cout << " (infrastructure error";
    if (log.kind() != trainmesh::v1::ERROR_KIND_UNSPECIFIED) {
      std::cout << ", attempt " << log.attempt() << ")";
    }
    std::cout << ":\n" << log.text() << "\n";
  }
  return kExitOk;
}

int Metrics(Client& client, const std::string& id, const Args& args) {
  if (client.json()) {
    trainmesh::v1::QueryMetricsRequest request;
    request.set_job_id(id);
    for (const std::string& n : args.All("name")) request.add_names(n);
    int max_points = 1000;
    if (args.Has("max-points") && !absl::SimpleAtoi(args.Get("max-points"), &max_points)) {
      return UsageError("--max-points: integer");
    }
    request.set_max_points(max_points);
    trainmesh::v1::QueryMetricsResponse response;
    grpc::Status s = client.metrics().QueryMetrics(client.Context().get(), request, &response);
    if (!s.ok()) return ReportError(s, client.connection().metrics_endpoint);
    std::cout << Json(response) << std::endl;
    return kExitOk;
  }
  trainmesh::v1::ListMetricNamesRequest request;
  request.set_job_id(id);
  trainmesh::v1::ListMetricNamesResponse response;
  grpc::Status s = client.metrics().ListMetricNames(client.Context().get(), request, &response);
  if (!s.ok()) return ReportError(s, client.connection().metrics_endpoint);
  if (response.metrics().empty()) {
    std::cout << "no metrics reported yet\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-28s %-8s %12s %12s %12s %10s %8s\n", "METRIC", "RUN", "LAST", "MIN", "MAX",
                               "STEP", "POINTS");
  for (const auto& m : response.metrics()) {
    std::cout << absl::StrFormat("%-28s %-8s %12.6g %12.6g %12.6g %10d %8d\n", m.name(),
                                 m.run().empty() ? "-" : m.run(), m.last(), m.min(), m.max(), m.last_step(),
                                 m.count());
  }
  trainmesh::v1::GetCostRequest cost_request;
  cost_request.set_job_id(id);
  trainmesh::v1::Cost cost;
  if (client.metrics().GetCost(client.Context().get(), cost_request, &cost).ok() && cost.device_seconds() > 0) {
    std::cout << absl::StrFormat("\ncost: %.4f %s for %.1f device-seconds on %s\n", cost.amount(), cost.currency(),
                                 cost.device_seconds(), cost.device_type());
  }
  return kExitOk;
}

}  // namespace trainmesh::cli
