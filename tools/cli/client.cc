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


// Where `trainctl login` keeps its token.
std::string TokenPath() {
  if (const char* dir = std::getenv("TRAINMESH_CONFIG_DIR"); dir != nullptr && *dir != '\0') {
    return absl::StrCat(dir, "/token");
  }
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/trainmesh/token");
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.config/trainmesh/token");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Connection ResolveConnection(const Args& args) {
  std::map<std::string, std::string> file;
  const char* file_path = std::getenv("TRAINMESH_CREDENTIALS_FILE");
  file = ParseEnvFile(ReadFile(file_path != nullptr ? file_path : ".run/credentials.env"));
  auto pick = [&](const std::string& flag, const char* env) {
    if (args.Has(flag)) return args.Get(flag);
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return std::string(v);
    return file[env];
  };
  Connection c;
  c.endpoint = pick("endpoint", "TRAINMESH_ENDPOINT");
  c.auth_endpoint = pick("auth-endpoint", "TRAINMESH_AUTH_ENDPOINT");
  if (c.endpoint.empty()) c.endpoint = "127.0.0.1:7001";
  if (c.auth_endpoint.empty()) c.auth_endpoint = "127.0.0.1:7002";
  c.metrics_endpoint = pick("metrics-endpoint", "TRAINMESH_METRICS_ENDPOINT");
  c.scheduler_endpoint = pick("scheduler-endpoint", "TRAINMESH_SCHEDULER_ENDPOINT");
  if (c.metrics_endpoint.empty()) c.metrics_endpoint = "127.0.0.1:7004";
  if (c.scheduler_endpoint.empty()) c.scheduler_endpoint = "127.0.0.1:7003";
  c.gateway = pick("gateway", "TRAINMESH_GATEWAY");
  c.tls_ca = pick("tls-ca", "TRAINMESH_TLS_CA");
  // Explicit flags, then the environment, then a stored login, then tools/up's file.
  for (const auto& [flag, env] : {std::pair<const char*, const char*>{"token", "TRAINMESH_TOKEN"},
                                  {"api-key", "TRAINMESH_API_KEY"}}) {
    if (args.Has(flag)) return c.credential = args.Get(flag), c;
  }
  for (const char* env : {"TRAINMESH_TOKEN", "TRAINMESH_API_KEY"}) {
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return c.credential = v, c;
  }
  std::map<std::string, std::string> login = ParseEnvFile(ReadFile(TokenPath()));
  int64_t expires = 0;
  if (!login["TOKEN"].empty() && absl::SimpleAtoi(login["EXPIRES"], &expires) &&
      absl::FromUnixSeconds(expires) > absl::Now()) {
    return c.credential = login["TOKEN"], c;
  }
  for (const char* env : {"TRAINMESH_TOKEN", "TRAINMESH_API_KEY"}) {
    if (!file[env].empty()) return c.credential = file[env], c;
  }
  return c;
}

int ReportError(const grpc::Status& s, const std::string& endpoint) {
  absl::Status status = status::FromGrpcStatus(s);
  const auto violations = status::FieldViolationsOf(status);
  std::cerr << "error: " << absl::StatusCodeToString(status.code());
  if (violations.empty()) std::cerr << ": " << status.message();
  std::cerr << "\n";
  for (const auto& v : violations) std::cerr << "  " << v.field << ": " << v.description << "\n";
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::cerr << "  (is the mesh running at " << endpoint << "? start it with tools/up)\n";
  }
  if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    std::cerr << "  (run `trainctl login NAME`, or pass --api-key / --token)\n";
  }
  return kExitError;
}

int UsageError(const std::string& message) {
  std::cerr << "error: " << message << "\nRun `trainctl help` for usage.\n";
  return kExitUsage;
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

std::string FormatTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(ts.seconds()),
                          absl::LocalTimeZone());
}

std::string StateName(Job::State s) { return Job::State_Name(s); }

std::string ProgressText(const trainmesh::v1::Progress& p) {
  if (p.total_steps() > 0) {
    return absl::StrFormat("%d/%d (%.0f%%)", p.step(), p.total_steps(), 100.0 * p.fraction());
  }
  if (p.step() > 0) return absl::StrCat("step ", p.step());
  return "-";
}

void PrintJob(const Job& job) {
  std::cout << "id:          " << job.id() << "\n"
            << "state:       " << StateName(job.state()) << "\n"
            << "model:       " << job.model() << "\n"
            << "dataset:     " << job.dataset_url() << "\n"
            << "owner:       " << job.owner() << "\n"
            << "priority:    " << job.priority() << "\n"
            << "attempt:     " << job.attempt() << " of " << job.max_attempts() << "\n"
            << "progress:    " << ProgressText(job.progress()) << "\n";
  if (!job.retry_of().empty()) {
    std::cout << "retry of:    " << job.retry_of() << " (retry #" << job.retry_count() << ")\n";
  }
  if (!job.labels().empty()) {
    std::vector<std::string> labels;
    for (const auto& [k, v] : job.labels()) labels.push_back(absl::StrCat(k, "=", v));
    std::sort(labels.begin(), labels.end());
    std::cout << "labels:      " << absl::StrJoin(labels, ", ") << "\n";
  }
  std::cout << "created:     " << FormatTime(job.create_time()) << "\n";
  if (job.has_start_time()) std::cout << "started:     " << FormatTime(job.start_time()) << "\n";
  if (job.has_complete_time()) {
    std::cout << "completed:   " << FormatTime(job.complete_time()) << "\n";
  }
  if (job.has_fail_time()) std::cout << "failed:      " << FormatTime(job.fail_time()) << "\n";
  if (job.has_cancel_time()) {
    std::cout << "cancelled:   " << FormatTime(job.cancel_time()) << "\n";
  }
  if (job.has_cost()) {
    std::cout << absl::StrFormat("cost:        %.4f %s\n", job.cost().amount(),
                                 job.cost().currency());
  }
  std::cout << "hyperparameters: " << Json(job.hyperparameters()) << "\n";
  if (!job.error_log().empty()) std::cout << "error:       " << job.error_log() << "\n";
}

void PrintEvent(const JobEvent& e) {
  std::string line = absl::StrCat(FormatTime(e.time()), "  #", e.seq(), "  ");
  switch (e.type()) {
    case JobEvent::CREATED:
      absl::StrAppend(&line, "created (", StateName(e.state()), ")");
      break;
    case JobEvent::STATE_CHANGED:
      absl::StrAppend(&line, StateName(e.previous_state()), " -> ", StateName(e.state()));
      break;
    case JobEvent::PROGRESS:
      absl::StrAppend(&line, StateName(e.state()), "  ", ProgressText(e.progress()));
      if (e.progress().train_loss() != 0) {
        absl::StrAppend(&line, absl::StrFormat("  loss %.4g", e.progress().train_loss()));
      }
      break;
    default:
      absl::StrAppend(&line, JobEvent::Type_Name(e.type()), " ", StateName(e.state()));
  }
  if (e.attempt() > 0) absl::StrAppend(&line, "  attempt ", e.attempt());
  if (!e.message().empty()) absl::StrAppend(&line, "  ", e.message());
  std::cout << line << std::endl;
}

int TerminalWidth() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 100;
}

// Parses `value` as JSON when it is JSON, else as a string.
google::protobuf::Value ParseValue(const std::string& value) {
  google::protobuf::Value v;
  if (!google::protobuf::util::JsonStringToMessage(value, &v).ok()) v.set_string_value(value);
  return v;
}

}  // namespace trainmesh::cli
