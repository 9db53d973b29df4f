// trainctl sweep and compare: many jobs as one experiment.
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
#include <mutex>
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


// 64-bit FNV-1a: a stable digest (the same on every machine and run).
uint64_t Fnv1a(absl::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

constexpr size_t kMaxSweepJobs = 256;
constexpr size_t kMaxCompared = 8;  // the dashboard's compare page

// Every job of a sweep is checked (validate_only) before any is created, so a
// bad combination creates nothing. Each job carries the label sweep=NAME and
// the request id "sweep:NAME:INDEX": running the same sweep again creates no
// job twice (and finishes one that was cut short).
int Sweep(Client& client, const Args& args) {
  if (!args.Has("model") || !args.Has("dataset"))
    return UsageError("sweep needs --model and --dataset");
  if (args.Has("request-id")) return UsageError("sweep makes its own request ids from --name");
  Job base;
  if (std::optional<int> error = JobFromFlags(args, &base)) return *error;
  SweepSpec spec;
  for (const std::string& flag : args.All("grid")) {
    auto grid = ParseGridFlag(flag);
    if (!grid.ok()) return UsageError(std::string(grid.status().message()));
    spec.grid.push_back(*std::move(grid));
  }
  for (const std::string& flag : args.All("random")) {
    auto range = ParseRangeFlag(flag);
    if (!range.ok()) return UsageError(std::string(range.status().message()));
    spec.random.push_back(*std::move(range));
  }
  if (spec.grid.empty() && spec.random.empty()) return UsageError("sweep needs --grid or --random");
  if (args.Has("trials") && !absl::SimpleAtoi(args.Get("trials"), &spec.trials)) {
    return UsageError("--trials: integer");
  }
  if (!spec.random.empty() && !args.Has("trials")) spec.trials = 10;
  if (args.Has("seed") && !absl::SimpleAtoi(args.Get("seed"), &spec.seed)) {
    return UsageError("--seed: a non-negative integer");
  }
  // Without --name, the name is a digest of the sweep itself: the same
  // command names the same sweep, so running it again submits nothing twice.
  std::string fingerprint;
  {
    google::protobuf::io::StringOutputStream out(&fingerprint);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    base.SerializeToCodedStream(&coded);
  }
  for (const char* flag : {"grid", "random", "trials", "seed"}) {
    for (const std::string& value : args.All(flag))
      absl::StrAppend(&fingerprint, "\x1f", flag, "=", value);
  }
  const std::string name =
      args.Get("name", absl::StrFormat("sweep-%08x", Fnv1a(fingerprint) & 0xffffffff));
  // Without --seed, draws differ from sweep to sweep but repeat for a name.
  if (!args.Has("seed")) spec.seed = Fnv1a(name);
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isgraph(c); })) {
    return UsageError("--name: 1 to 64 printable characters without spaces");
  }
  absl::StatusOr<std::vector<SweepPoint>> points = ExpandSweep(spec, kMaxSweepJobs);
  if (!points.ok()) return UsageError(std::string(points.status().message()));

  auto describe = [](const SweepPoint& point) {
    return absl::StrJoin(point, " ", [](std::string* out, const auto& kv) {
      absl::StrAppend(out, kv.first, "=", kv.second);
    });
  };
  std::vector<trainmesh::v1::CreateJobRequest> requests;
  for (size_t i = 0; i < points->size(); ++i) {
    trainmesh::v1::CreateJobRequest& request = requests.emplace_back();
    *request.mutable_job() = base;
    for (const auto& [key, value] : (*points)[i]) {
      (*request.mutable_job()->mutable_hyperparameters()->mutable_fields())[key] =
          ParseValue(value);
    }
    (*request.mutable_job()->mutable_labels())["sweep"] = name;
    request.mutable_job()->set_request_id(absl::StrCat("sweep:", name, ":", i));
  }
  // Check them all first.
  int invalid = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    trainmesh::v1::CreateJobRequest check = requests[i];
    check.set_validate_only(true);
    Job ignored;
    grpc::Status s = client.jobs().CreateJob(client.Context().get(), check, &ignored);
    if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      std::cerr << "job " << i + 1 << " of " << requests.size() << " (" << describe((*points)[i])
                << "):\n";
      ReportError(s, client.connection().endpoint);
      ++invalid;
    } else if (!s.ok()) {
      return ReportError(s, client.connection().endpoint);
    }
  }
  if (invalid > 0) {
    std::cerr << invalid << " of " << requests.size()
              << " jobs are invalid; nothing was submitted\n";
    return kExitError;
  }
  if (args.Has("validate-only")) {
    for (const SweepPoint& point : *points) std::cout << describe(point) << "\n";
    std::cout << "valid: " << points->size() << " jobs in sweep " << name << "\n";
    return kExitOk;
  }
  std::vector<Job> created(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    grpc::Status s = client.jobs().CreateJob(client.Context().get(), requests[i], &created[i]);
    if (!s.ok()) {
      std::cerr << "job " << i + 1 << " of " << requests.size() << " was not submitted; run the "
                << "same command again (the sweep is " << name
                << ") to submit the rest, none twice\n";
      return ReportError(s, client.connection().endpoint);
    }
  }
  if (client.json()) {
    std::cout << "[";
    for (size_t i = 0; i < created.size(); ++i) std::cout << (i ? "," : "") << Json(created[i]);
    std::cout << "]" << std::endl;
    return kExitOk;
  }
  for (size_t i = 0; i < created.size(); ++i) {
    std::cout << created[i].id() << "  " << describe((*points)[i]) << "\n";
  }
  std::cout << created.size() << " jobs in sweep " << name
            << "; follow them with: trainctl list -l sweep=" << name << "\n";
  if (!client.connection().gateway.empty() && created.size() <= kMaxCompared) {
    std::vector<std::string> ids;
    for (const Job& job : created) ids.push_back(job.id());
    std::cout << "compare: " << client.connection().gateway
              << "/compare?jobs=" << absl::StrJoin(ids, ",") << "\n";
  }
  return kExitOk;
}

// Losses, errors and perplexities are best when lowest; anything else when highest.
bool LowerIsBetter(const std::string& metric) {
  for (const char* word : {"loss", "error", "mae", "mse", "perplexity"}) {
    if (metric.find(word) != std::string::npos) return true;
  }
  return false;
}

// Jobs side by side, best first: those named, or every job with the labels
// given (a sweep: -l sweep=NAME). Columns: the settings that differ, then the
// ranking metric's best and last values.
int Compare(Client& client, const Args& args) {
  if (args.positional.empty() && !args.Has("label"))
    return UsageError("compare takes job ids or -l KEY=VALUE");
  std::vector<Job> jobs;
  for (const std::string& id : args.positional) {
    if (std::any_of(jobs.begin(), jobs.end(), [&](const Job& j) { return j.id() == id; })) continue;
    trainmesh::v1::GetJobRequest request;
    request.set_id(id);
    Job& job = jobs.emplace_back();
    grpc::Status s = client.jobs().GetJob(client.Context().get(), request, &job);
    if (!s.ok()) return ReportError(s, client.connection().endpoint);
  }
  if (args.Has("label")) {
    trainmesh::v1::ListJobsRequest request;
    for (const std::string& label : args.All("label")) request.add_labels(label);
    request.set_page_size(100);
    do {
      trainmesh::v1::ListJobsResponse response;
      grpc::Status s = client.jobs().ListJobs(client.Context().get(), request, &response);
      if (!s.ok()) return ReportError(s, client.connection().endpoint);
      for (const Job& job : response.jobs()) {
        if (std::none_of(jobs.begin(), jobs.end(),
                         [&](const Job& j) { return j.id() == job.id(); })) {
          jobs.push_back(job);
        }
      }
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty() && jobs.size() < 1000);
  }
  if (jobs.empty()) {
    std::cerr << "no jobs with those labels\n";
    return kExitError;
  }
  // Each job's metric summaries (the default run's when a job logs several).
  std::vector<std::map<std::string, trainmesh::v1::MetricSummary>> metrics(jobs.size());
  std::set<std::string> names;
  for (size_t i = 0; i < jobs.size(); ++i) {
    trainmesh::v1::ListMetricNamesRequest request;
    request.set_job_id(jobs[i].id());
    trainmesh::v1::ListMetricNamesResponse response;
    grpc::Status s = client.metrics().ListMetricNames(client.Context().get(), request, &response);
    if (!s.ok()) return ReportError(s, client.connection().metrics_endpoint);
    for (const auto& m : response.metrics()) {
      if (!metrics[i].count(m.name()) || m.run().empty()) metrics[i][m.name()] = m;
      names.insert(m.name());
    }
  }
  std::string metric = args.Get("metric");
  if (metric.empty() && names.count("val_loss")) metric = "val_loss";
  if (metric.empty() && names.count("train_loss")) metric = "train_loss";
  if (metric.empty() && !names.empty()) metric = *names.begin();
  const bool lower = LowerIsBetter(metric);
  auto summary = [&](size_t i) -> const trainmesh::v1::MetricSummary* {
    auto it = metrics[i].find(metric);
    return it == metrics[i].end() ? nullptr : &it->second;
  };
  auto best = [&](size_t i) -> std::optional<double> {
    const auto* m = summary(i);
    if (m == nullptr) return std::nullopt;
    const double v = lower ? m->min() : m->max();
    if (std::isnan(v)) return std::nullopt;
    return v;
  };
  auto last = [&](size_t i) -> std::optional<double> {
    const auto* m = summary(i);
    return m == nullptr ? std::nullopt : std::optional<double>(m->last());
  };
  // The settings that differ from job to job.
  std::vector<std::map<std::string, std::string>> all;
  std::set<std::string> keys;
  for (const Job& job : jobs) {
    std::map<std::string, std::string>& s = all.emplace_back();
    s = {{"model", job.model()}, {"dataset", job.dataset_url()}};
    for (const auto& [key, value] : job.hyperparameters().fields()) {
      s[key] = value.kind_case() == google::protobuf::Value::kStringValue ? value.string_value()
                                                                          : Json(value);
    }
    for (const auto& [k, v] : s) keys.insert(k);
  }
  auto setting = [&](size_t i, const std::string& key) {
    auto it = all[i].find(key);
    return it == all[i].end() ? std::string("-") : it->second;
  };
  std::vector<std::string> differing;
  for (const std::string& key : keys) {
    std::set<std::string> values;
    for (size_t i = 0; i < all.size(); ++i) values.insert(setting(i, key));
    if (values.size() > 1) differing.push_back(key);
  }
  std::vector<size_t> order(jobs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto x = best(a), y = best(b);
    if (x.has_value() != y.has_value()) return x.has_value();  // jobs without the metric last
    if (!x.has_value()) return false;
    return lower ? *x < *y : *x > *y;
  });
  if (client.json()) {
    std::cout << "[";
    for (size_t r = 0; r < order.size(); ++r) {
      const size_t i = order[r];
      google::protobuf::Struct row;
      auto& f = *row.mutable_fields();
      f["job"].set_string_value(jobs[i].id());
      f["state"].set_string_value(StateName(jobs[i].state()));
      f["metric"].set_string_value(metric);
      // JSON has no NaN: a value that is not finite is left out.
      if (best(i) && std::isfinite(*best(i))) f["best"].set_number_value(*best(i));
      if (last(i) && std::isfinite(*last(i))) f["last"].set_number_value(*last(i));
      auto& settings = *f["settings"].mutable_struct_value()->mutable_fields();
      for (const std::string& key : differing) settings[key].set_string_value(setting(i, key));
      std::cout << (r ? "," : "") << Json(row);
    }
    std::cout << "]" << std::endl;
    return kExitOk;
  }
  // A table, each column as wide as its widest cell.
  auto number = [](std::optional<double> v) {
    return v.has_value() ? absl::StrFormat("%.6g", *v) : "-";
  };
  std::vector<std::string> header = {"#", "JOB", "STATE"};
  header.insert(header.end(), differing.begin(), differing.end());
  header.push_back(metric.empty() ? "BEST" : absl::StrCat(metric, lower ? " (min)" : " (max)"));
  header.push_back("LAST");
  std::vector<std::vector<std::string>> rows = {header};
  for (size_t r = 0; r < order.size(); ++r) {
    const size_t i = order[r];
    std::vector<std::string> row = {absl::StrCat(r + 1), jobs[i].id().substr(0, 8),
                                    StateName(jobs[i].state())};
    for (const std::string& key : differing) {
      std::string cell = setting(i, key);
      if (cell.size() > 40) cell = absl::StrCat(cell.substr(0, 39), "…");  // a script's arguments
      for (char& c : cell) c = c == '\n' ? ' ' : c;
      row.push_back(std::move(cell));
    }
    row.push_back(number(best(i)));
    row.push_back(number(last(i)));
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      absl::StrAppend(&line, row[c]);
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
  return kExitOk;
}

}  // namespace trainmesh::cli
