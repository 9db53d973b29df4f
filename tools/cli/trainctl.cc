// trainctl: the command-line client of trainmesh (gRPC).
//
//   trainctl submit --model M --dataset URL [-p key=value]... [--file hp.json] [--wait]
//   trainctl list | get ID | watch ID | cancel ID | retry ID | logs ID | recipes [NAME]
//   trainctl metrics ID | download ID -o DIR | agents
//   trainctl login | logout | whoami | users create|list | keys create|list|revoke | health
//
// Connection and credentials: --endpoint/--auth-endpoint/--token/--api-key, else
// TRAINMESH_ENDPOINT, TRAINMESH_AUTH_ENDPOINT, TRAINMESH_TOKEN, TRAINMESH_API_KEY, else
// the token `trainctl login` stored, else the .run/credentials.env that tools/up
// writes. `-o json` prints proto3 JSON (one object per line for streams).
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
#include "tools/cli/args.h"
#include "tools/cli/progress.h"
#include "tools/cli/sweep.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "trainmesh/v1/metrics.grpc.pb.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"

namespace trainmesh::cli {
namespace {

using trainmesh::v1::Job;
using trainmesh::v1::JobEvent;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
// watch / submit --wait: the job ended FAILED or CANCELLED.
constexpr int kExitJobUnsuccessful = 3;

constexpr char kUsage[] = R"(trainctl: run and follow training jobs on trainmesh.

Usage:
  trainctl submit --model RECIPE --dataset URL [-p KEY=VALUE]... [--file PARAMS.json]
                  [--priority N] [--max-attempts N] [-l KEY=VALUE]... [--request-id ID]
                  [--allow-shared-pool] [--validate-only] [--wait]
  trainctl sweep --model RECIPE --dataset URL [--grid KEY=V1,V2,...]... [--random KEY=LOW:HIGH[:log|:int]]...
                 [--trials N] [--seed N] [--name NAME] [submit's -p, --file, -l, --priority ...]
                 [--validate-only]
                                          one job per grid combination (x N random draws per
                                          combination, default 10); all checked before any is
                                          submitted; labelled sweep=NAME; running it again
                                          submits none twice. At most 256 jobs.
  trainctl list [--state STATE]... [-l KEY=VALUE]... [--model RECIPE] [--retry-of ID]
                [--page-size N] [--page-token TOKEN] [--all]
  trainctl get ID
  trainctl compare ID... | -l KEY=VALUE... [--metric NAME]
                                          jobs side by side, best first: the settings that
                                          differ and the metric's best and last values
                                          (-l sweep=NAME: a whole sweep)
  trainctl watch ID [--after-seq N]       follow a job until it ends (exit 0 COMPLETED, 3 otherwise);
                                          a live progress bar on a terminal, resumes after a
                                          dropped connection
  trainctl cancel ID [--reason TEXT]
  trainctl retry ID [--resume] [--request-id ID] [--wait]
  trainctl logs ID [-f]                   the job's events, its training log and error log
                                          (-f: follow the log until the job ends; exit as watch)
  trainctl metrics ID [--name N]... [--max-points N]
                                          summary of every metric (-o json: the series)
  trainctl download ID [-o DIR] [--name FILE]
                                          the trained model (model.pt + model.json) into DIR
  trainctl notifications [--unread] [--page-size N] [--page-token TOKEN]
                                          your inbox: jobs that started, finished or were requeued
                                          (* marks unread)
  trainctl notifications read ID... | --all
                                          mark some, or every one shown so far, read
  trainctl agents [--all]                 trainer agents you can use (--all: offline too)
  trainctl recipes [NAME]                 recipes and their hyperparameters
  trainctl health                         is the endpoint serving?

  trainctl login NAME [--password P | --password-stdin] [--print-token]
                                          sign in; the token is stored for later calls
                                          (--print-token prints it as the last line instead)
  trainctl logout                         forget the stored token
  trainctl whoami                         who the mesh thinks you are
  trainctl users create NAME [--password P | --password-stdin] [--admin] [--email E]   (admin)
  trainctl users list                                                                  (admin)
  trainctl keys create [--name N] [--scope S]... [--expires 720h] [--for USER]
                                          the key is shown once; --for (admins): the key is
                                          USER's, e.g. --scope agent --scope pool:shared
  trainctl keys list
  trainctl keys revoke ID

Global flags:
  --endpoint HOST:PORT   jobs service (TRAINMESH_ENDPOINT)
  --tls-ca FILE          CA that signed the services' certificates (TRAINMESH_TLS_CA)
  --auth-endpoint H:P    auth service (TRAINMESH_AUTH_ENDPOINT)
  --metrics-endpoint H:P metrics service (TRAINMESH_METRICS_ENDPOINT)
  --scheduler-endpoint H:P  scheduler (TRAINMESH_SCHEDULER_ENDPOINT)
  --token JWT            bearer token (TRAINMESH_TOKEN)
  --api-key KEY          API key (TRAINMESH_API_KEY)
  -o, --output FORMAT    text (default) or json (for download: the directory)
  --timeout DURATION     per-call deadline (default 30s)

Values of -p are JSON when they parse as JSON (numbers, true/false, [lists]), else strings.
Unset flags fall back to the environment, then to .run/credentials.env (written by tools/up).
)";

struct Connection {
  std::string endpoint;
  std::string auth_endpoint;
  std::string metrics_endpoint;
  std::string scheduler_endpoint;
  // The REST gateway's base URL, for links to the dashboard (may be empty).
  std::string gateway;
  std::string credential;
  // PEM CA the services' certificates are checked against; empty: plaintext.
  std::string tls_ca;
};

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

class Client {
 public:
  Client(const Args& args) : args_(args), connection_(ResolveConnection(args)) {
    grpc::ChannelArguments channel_args;
    channel_args.SetMaxReceiveMessageSize(64 << 20);
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        tls::ChannelCredentials({.ca_file = connection_.tls_ca});
    if (!creds.ok()) {
      std::cerr << "error: " << creds.status().message() << " (TRAINMESH_TLS_CA, --tls-ca)\n";
      std::exit(2);
    }
    channel_ = grpc::CreateCustomChannel(connection_.endpoint, *creds, channel_args);
    jobs_ = trainmesh::v1::JobService::NewStub(channel_);
    auth_ = trainmesh::v1::AuthService::NewStub(
        grpc::CreateCustomChannel(connection_.auth_endpoint, *creds, channel_args));
    metrics_ = trainmesh::v1::MetricsService::NewStub(
        grpc::CreateCustomChannel(connection_.metrics_endpoint, *creds, channel_args));
    scheduler_ = trainmesh::v1::SchedulerService::NewStub(
        grpc::CreateCustomChannel(connection_.scheduler_endpoint, *creds, channel_args));
    absl::Duration timeout;
    timeout_ = absl::ParseDuration(args.Get("timeout", "30s"), &timeout) ? timeout
                                                                         : absl::Seconds(30);
  }

  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!connection_.credential.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + connection_.credential);
    }
    if (!streaming) ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    return ctx;
  }

  trainmesh::v1::JobService::Stub& jobs() { return *jobs_; }
  trainmesh::v1::AuthService::Stub& auth() { return *auth_; }
  trainmesh::v1::MetricsService::Stub& metrics() { return *metrics_; }
  trainmesh::v1::SchedulerService::Stub& scheduler() { return *scheduler_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  const Connection& connection() const { return connection_; }
  bool json() const { return args_.Get("output") == "json"; }

 private:
  const Args& args_;
  Connection connection_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<trainmesh::v1::JobService::Stub> jobs_;
  std::unique_ptr<trainmesh::v1::AuthService::Stub> auth_;
  std::unique_ptr<trainmesh::v1::MetricsService::Stub> metrics_;
  std::unique_ptr<trainmesh::v1::SchedulerService::Stub> scheduler_;
  absl::Duration timeout_;
};

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

// Follows `id` from `after_seq` until its terminal event, reconnecting when
// the server goes away (for up to 2 minutes). `on_event` sees every event,
// `on_lost` each lost connection (with the seq it resumes after). OK with the
// final state, or the error that ended it.
grpc::Status FollowEvents(Client& client, const std::string& id, int64_t after_seq,
                          const std::function<void(const JobEvent&)>& on_event,
                          const std::function<void(const grpc::Status&, int64_t)>& on_lost, Job::State* final) {
  absl::Time failing_since = absl::InfiniteFuture();
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    trainmesh::v1::WatchJobRequest request;
    request.set_id(id);
    request.set_after_seq(after_seq);
    auto ctx = client.Context(/*streaming=*/true);
    auto reader = client.jobs().WatchJob(ctx.get(), request);
    JobEvent e;
    std::optional<Job::State> final_state;
    while (reader->Read(&e)) {
      failing_since = absl::InfiniteFuture();
      backoff = absl::Milliseconds(200);
      after_seq = e.seq();
      on_event(e);
      if (e.terminal()) final_state = e.state();
    }
    grpc::Status s = reader->Finish();
    if (s.ok()) {
      if (!final_state.has_value()) {
        // The stream ended at once: the job had finished before after_seq.
        trainmesh::v1::GetJobRequest get;
        get.set_id(id);
        Job job;
        grpc::Status g = client.jobs().GetJob(client.Context().get(), get, &job);
        if (!g.ok()) return g;
        final_state = job.state();
      }
      *final = *final_state;
      return grpc::Status::OK;
    }
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return s;
    // The server went away (restart, drain): resume where we are.
    const absl::Time now = absl::Now();
    if (failing_since == absl::InfiniteFuture()) failing_since = now;
    if (now - failing_since > absl::Minutes(2)) return s;
    on_lost(s, after_seq);
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

// `watch`: prints the events (a live progress bar on a terminal); the exit
// code says how the job ended.
int Follow(Client& client, const std::string& id, int64_t after_seq) {
  const bool live = !client.json() && isatty(STDOUT_FILENO);
  bool bar_shown = false;
  auto clear_bar = [&] {
    if (bar_shown) std::cout << "\r\033[K" << std::flush;
    bar_shown = false;
  };
  auto on_event = [&](const JobEvent& e) {
    if (client.json()) {
      std::cout << Json(e) << std::endl;
    } else if (live && e.type() == JobEvent::PROGRESS) {
      // One line redrawn in place: step, %, loss, samples/s, ETA.
      ProgressView view;
      view.state = StateName(e.state());
      view.step = e.progress().step();
      view.total_steps = e.progress().total_steps();
      view.fraction = e.progress().fraction();
      view.train_loss = e.progress().train_loss();
      view.val_loss = e.progress().val_loss();
      view.samples_per_second = e.progress().samples_per_second();
      view.eta = absl::Seconds(e.progress().eta().seconds());
      std::cout << "\r\033[K" << ProgressLine(view, TerminalWidth() - 1) << std::flush;
      bar_shown = true;
    } else {
      clear_bar();
      PrintEvent(e);
    }
  };
  auto on_lost = [&](const grpc::Status& s, int64_t seq) {
    if (client.json()) return;
    clear_bar();
    std::cerr << "(connection lost: " << s.error_message() << "; resuming after #" << seq << ")\n";
  };
  Job::State final = Job::STATE_UNSPECIFIED;
  grpc::Status s = FollowEvents(client, id, after_seq, on_event, on_lost, &final);
  clear_bar();
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  return final == Job::COMPLETED ? kExitOk : kExitJobUnsuccessful;
}

// The job submit and sweep describe with their flags; the exit code of a
// usage error otherwise.
std::optional<int> JobFromFlags(const Args& args, Job* job) {
  job->set_model(args.Get("model"));
  job->set_dataset_url(args.Get("dataset"));
  if (args.Has("file")) {
    std::string text = ReadFile(args.Get("file"));
    if (text.empty()) return UsageError("cannot read " + args.Get("file"));
    auto parsed = google::protobuf::util::JsonStringToMessage(text, job->mutable_hyperparameters());
    if (!parsed.ok()) {
      return UsageError(absl::StrCat(args.Get("file"), " is not a JSON object: ",
                                     parsed.message().as_string()));
    }
  }
  for (const std::string& kv : args.All("param")) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return UsageError("-p takes KEY=VALUE, got " + kv);
    (*job->mutable_hyperparameters()->mutable_fields())[kv.substr(0, eq)] =
        ParseValue(kv.substr(eq + 1));
  }
  for (const std::string& kv : args.All("label")) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return UsageError("-l takes KEY=VALUE, got " + kv);
    (*job->mutable_labels())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  int number = 0;
  if (args.Has("priority")) {
    if (!absl::SimpleAtoi(args.Get("priority"), &number)) return UsageError("--priority: integer");
    job->set_priority(number);
  }
  if (args.Has("max-attempts")) {
    if (!absl::SimpleAtoi(args.Get("max-attempts"), &number)) {
      return UsageError("--max-attempts: integer");
    }
    job->set_max_attempts(number);
  }
  job->set_allow_shared_pool(args.Has("allow-shared-pool"));
  return std::nullopt;
}

int Submit(Client& client, const Args& args) {
  trainmesh::v1::CreateJobRequest request;
  Job* job = request.mutable_job();
  if (std::optional<int> error = JobFromFlags(args, job)) return *error;
  job->set_request_id(args.Get("request-id"));
  request.set_validate_only(args.Has("validate-only"));
  Job created;
  grpc::Status s = client.jobs().CreateJob(client.Context().get(), request, &created);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(created) << std::endl;
  } else if (request.validate_only()) {
    std::cout << "valid; the job would run with " << Json(created.hyperparameters()) << "\n";
  } else {
    std::cout << created.id() << "\n";
  }
  if (args.Has("wait") && !request.validate_only()) return Follow(client, created.id(), 0);
  return kExitOk;
}

int List(Client& client, const Args& args) {
  trainmesh::v1::ListJobsRequest request;
  for (const std::string& state : args.All("state")) {
    Job::State s;
    if (!Job::State_Parse(absl::AsciiStrToUpper(state), &s) || s == Job::STATE_UNSPECIFIED) {
      return UsageError("unknown state " + state);
    }
    request.add_states(s);
  }
  for (const std::string& label : args.All("label")) request.add_labels(label);
  request.set_model(args.Get("model"));
  request.set_retry_of(args.Get("retry-of"));
  int page_size = 0;
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
    return UsageError("--page-size: integer");
  }
  request.set_page_size(page_size);
  request.set_page_token(args.Get("page-token"));
  bool header = true;
  while (true) {
    trainmesh::v1::ListJobsResponse response;
    grpc::Status s = client.jobs().ListJobs(client.Context().get(), request, &response);
    if (!s.ok()) return ReportError(s, client.connection().endpoint);
    if (client.json()) {
      std::cout << Json(response) << std::endl;
    } else {
      if (header) {
        std::cout << absl::StrFormat("%-36s  %-12s  %-10s  %-16s  %s\n", "ID", "STATE", "MODEL",
                                     "PROGRESS", "CREATED");
        header = false;
      }
      for (const Job& job : response.jobs()) {
        std::cout << absl::StrFormat("%-36s  %-12s  %-10s  %-16s  %s\n", job.id(),
                                     StateName(job.state()), job.model(),
                                     ProgressText(job.progress()), FormatTime(job.create_time()));
      }
    }
    if (response.next_page_token().empty()) break;
    if (!args.Has("all")) {
      if (!client.json()) std::cout << "next page: --page-token " << response.next_page_token() << "\n";
      break;
    }
    request.set_page_token(response.next_page_token());
  }
  return kExitOk;
}

int MarkRead(Client& client, const Args& args) {
  trainmesh::v1::MarkNotificationsReadRequest request;
  for (size_t i = 1; i < args.positional.size(); ++i) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(args.positional[i], &id)) {
      return UsageError("notifications read takes notification ids (numbers)");
    }
    request.add_ids(id);
  }
  if (args.Has("all")) {
    // Through the newest one there is now: one that arrives later stays unread.
    trainmesh::v1::ListNotificationsRequest newest;
    newest.set_page_size(1);
    trainmesh::v1::ListNotificationsResponse response;
    grpc::Status s = client.jobs().ListNotifications(client.Context().get(), newest, &response);
    if (!s.ok()) return ReportError(s, client.connection().endpoint);
    if (response.notifications().empty()) return kExitOk;
    request.set_through_id(response.notifications(0).id());
  }
  if (request.ids().empty() && !args.Has("all")) {
    return UsageError("notifications read takes ids or --all");
  }
  trainmesh::v1::MarkNotificationsReadResponse response;
  grpc::Status s = client.jobs().MarkNotificationsRead(client.Context().get(), request, &response);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(response) << std::endl;
  } else {
    std::cout << "marked " << response.marked() << " read; " << response.unread_count()
              << " unread\n";
  }
  return kExitOk;
}

int Notifications(Client& client, const Args& args) {
  if (!args.positional.empty() && args.positional[0] == "read") return MarkRead(client, args);
  if (!args.positional.empty()) return UsageError("notifications takes no arguments but read");
  trainmesh::v1::ListNotificationsRequest request;
  request.set_unread_only(args.Has("unread"));
  int page_size = 0;
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
    return UsageError("--page-size: integer");
  }
  request.set_page_size(page_size);
  request.set_page_token(args.Get("page-token"));
  trainmesh::v1::ListNotificationsResponse response;
  grpc::Status s = client.jobs().ListNotifications(client.Context().get(), request, &response);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(response) << std::endl;
    return kExitOk;
  }
  for (const auto& n : response.notifications()) {
    std::cout << absl::StrFormat("%s %-6d  %s  %s  %-10s  %-9s  %s\n", n.read() ? " " : "*", n.id(),
                                 FormatTime(n.create_time()), n.job_id(), n.model(),
                                 trainmesh::v1::Notification::Kind_Name(n.kind()), n.message());
  }
  std::cout << response.unread_count() << " unread\n";
  if (!response.next_page_token().empty()) {
    std::cout << "next page: --page-token " << response.next_page_token() << "\n";
  }
  return kExitOk;
}

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

int Get(Client& client, const std::string& id) {
  trainmesh::v1::GetJobRequest request;
  request.set_id(id);
  Job job;
  grpc::Status s = client.jobs().GetJob(client.Context().get(), request, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(job) << std::endl;
  } else {
    PrintJob(job);
  }
  return kExitOk;
}

int Cancel(Client& client, const std::string& id, const Args& args) {
  trainmesh::v1::CancelJobRequest request;
  request.set_id(id);
  request.set_reason(args.Get("reason"));
  Job job;
  grpc::Status s = client.jobs().CancelJob(client.Context().get(), request, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(job) << std::endl;
  } else {
    std::cout << job.id() << " " << StateName(job.state())
              << (job.cancel_requested() ? " (the trainer stops at its next heartbeat)" : "")
              << "\n";
  }
  return kExitOk;
}

int Retry(Client& client, const std::string& id, const Args& args) {
  trainmesh::v1::RetryJobRequest request;
  request.set_id(id);
  request.set_resume_from_checkpoint(args.Has("resume"));
  request.set_request_id(args.Get("request-id"));
  Job job;
  grpc::Status s = client.jobs().RetryJob(client.Context().get(), request, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (client.json()) {
    std::cout << Json(job) << std::endl;
  } else {
    std::cout << job.id() << "\n";
  }
  if (args.Has("wait")) return Follow(client, job.id(), 0);
  return kExitOk;
}

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
  std::mutex mu;
  std::optional<Job::State> final_state;
  std::unique_ptr<grpc::ClientContext> stream_ctx;
  // The job's end, from its own event stream, stops the log stream.
  std::thread watcher([&] {
    Job::State state = Job::STATE_UNSPECIFIED;
    (void)FollowEvents(
        client, id, after_event, [](const JobEvent&) {}, [](const grpc::Status&, int64_t) {}, &state);
    std::lock_guard<std::mutex> lock(mu);
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
      std::lock_guard<std::mutex> lock(mu);
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
      std::lock_guard<std::mutex> lock(mu);
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

// Downloads artifact `name` of job `id` into `dir`, checking its SHA-256.
int DownloadOne(Client& client, const std::string& id, const std::string& name, const std::string& dir,
                bool quiet_if_missing) {
  trainmesh::v1::DownloadArtifactRequest request;
  request.set_id(id);
  request.set_name(name);
  auto ctx = client.Context(/*streaming=*/true);
  auto reader = client.jobs().DownloadArtifact(ctx.get(), request);
  const std::string path = absl::StrCat(dir, "/", name);
  const std::string partial = path + ".partial";
  std::ofstream out;
  trainmesh::v1::ArtifactChunk chunk;
  std::string expected_sha;
  int64_t written = 0, total = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
  while (reader->Read(&chunk)) {
    if (!out.is_open()) out.open(partial, std::ios::binary | std::ios::trunc);
    if (!chunk.sha256().empty()) expected_sha = chunk.sha256();
    if (chunk.total_size() > 0) total = chunk.total_size();
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    EVP_DigestUpdate(sha.get(), chunk.data().data(), chunk.data().size());
    written += static_cast<int64_t>(chunk.data().size());
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    std::remove(partial.c_str());
    if (quiet_if_missing && s.error_code() == grpc::StatusCode::NOT_FOUND) return kExitOk;
    return ReportError(s, client.connection().endpoint);
  }
  if (!out.is_open()) out.open(partial, std::ios::binary | std::ios::trunc);  // an empty file
  out.close();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &digest_len);
  std::string hex;
  for (unsigned int i = 0; i < digest_len; ++i) absl::StrAppend(&hex, absl::StrFormat("%02x", digest[i]));
  if ((total > 0 && written != total) || (!expected_sha.empty() && hex != expected_sha)) {
    std::remove(partial.c_str());
    std::cerr << "error: " << name << " arrived damaged (" << written << " of " << total
              << " bytes, sha256 mismatch); try again\n";
    return kExitError;
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    std::cerr << "error: cannot write " << path << "\n";
    return kExitError;
  }
  std::cout << path << "  " << written << " bytes  sha256 " << hex << "\n";
  return kExitOk;
}

int Download(Client& client, const std::string& id, const Args& args) {
  const std::string dir = args.Get("output", ".");
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::cerr << "error: cannot create " << dir << "\n";
    return kExitError;
  }
  if (args.Has("name")) return DownloadOne(client, id, args.Get("name"), dir, false);
  trainmesh::v1::GetJobRequest get;
  get.set_id(id);
  Job job;
  grpc::Status s = client.jobs().GetJob(client.Context().get(), get, &job);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  if (job.artifact().uri().empty()) {
    std::cerr << "error: job " << id << " has no model yet (state " << StateName(job.state()) << ")\n";
    return kExitError;
  }
  const std::string name = job.artifact().uri().substr(job.artifact().uri().rfind('/') + 1);
  if (int rc = DownloadOne(client, id, name, dir, false); rc != kExitOk) return rc;
  if (name != "model.json") return DownloadOne(client, id, "model.json", dir, /*quiet_if_missing=*/true);
  return kExitOk;
}

int Agents(Client& client, const Args& args) {
  trainmesh::v1::ListAgentsRequest request;
  request.set_include_offline(args.Has("all"));
  request.set_page_size(200);
  trainmesh::v1::ListAgentsResponse response;
  grpc::Status s = client.scheduler().ListAgents(client.Context().get(), request, &response);
  if (!s.ok()) return ReportError(s, client.connection().scheduler_endpoint);
  if (client.json()) {
    std::cout << Json(response) << std::endl;
    return kExitOk;
  }
  if (response.agents().empty()) {
    std::cout << "no agents online" << (args.Has("all") ? "" : " (--all shows offline ones)")
              << "; start one with services/trainer/trainer\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-36s  %-24s %-8s %-22s %-7s %-7s %s\n", "ID", "NAME", "STATE", "DEVICE", "JOBS",
                               "POOL", "LAST SEEN");
  for (const auto& a : response.agents()) {
    const auto& c = a.capabilities();
    std::string device = c.device_type();
    if (c.gpu_count() > 0) absl::StrAppend(&device, " ", c.gpu_count(), "x ", c.gpu_model());
    if (c.gpu_count() == 0 && c.cpu_cores() > 0) absl::StrAppend(&device, " ", c.cpu_cores(), " cores");
    std::cout << absl::StrFormat("%-36s  %-24s %-8s %-22s %-7s %-7s %s\n", a.id(), a.name(),
                                 trainmesh::v1::Agent::State_Name(a.state()), device,
                                 absl::StrCat(a.running_jobs(), "/", a.max_concurrent_jobs()),
                                 a.shared_pool() ? "shared" : "own", FormatTime(a.last_seen_time()));
  }
  std::cout << response.online_count() << " online\n";
  return kExitOk;
}

int Recipes(Client& client, const Args& args) {
  trainmesh::v1::ListRecipesResponse response;
  grpc::Status s = client.jobs().ListRecipes(client.Context().get(), {}, &response);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  const std::string only = args.positional.empty() ? "" : args.positional[0];
  for (const auto& recipe : response.recipes()) {
    if (!only.empty() && recipe.name() != only) continue;
    if (client.json()) {
      std::cout << Json(recipe) << std::endl;
      continue;
    }
    std::cout << recipe.name() << " — " << recipe.title() << "\n  " << recipe.description()
              << "\n";
    for (const auto& p : recipe.parameters()) {
      std::string range;
      if (p.has_min() || p.has_max()) {
        range = absl::StrCat(" [", p.has_min() ? absl::StrFormat("%.10g", p.min()) : "", ", ",
                             p.has_max() ? absl::StrFormat("%.10g", p.max()) : "", "]");
      }
      if (p.allowed_values_size() > 0) range = " {" + absl::StrJoin(p.allowed_values(), ",") + "}";
      std::cout << absl::StrFormat(
          "    %-18s %-11s %-14s %s\n", p.name(),
          absl::AsciiStrToLower(trainmesh::v1::ParameterSpec::Type_Name(p.type())) + range,
          p.required() ? "(required)" : Json(p.default_value()), p.help());
    }
    std::cout << "  datasets: " << absl::StrJoin(recipe.dataset_examples(), "  ") << "\n\n";
  }
  return kExitOk;
}

int Health(Client& client) {
  auto stub = grpc::health::v1::Health::NewStub(client.channel());
  grpc::health::v1::HealthCheckResponse response;
  auto ctx = client.Context();
  grpc::Status s = stub->Check(ctx.get(), {}, &response);
  if (!s.ok()) return ReportError(s, client.connection().endpoint);
  const std::string status = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  std::cout << client.connection().endpoint << " " << status << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                               : kExitError;
}

std::string ReadPassword(const Args& args) {
  if (args.Has("password")) return args.Get("password");
  std::string line;
  if (args.Has("password-stdin")) {
    std::getline(std::cin, line);
    return line;
  }
  if (isatty(STDIN_FILENO)) {
    std::cerr << "password: " << std::flush;
    std::string command = "stty -echo";
    (void)!std::system(command.c_str());
    std::getline(std::cin, line);
    (void)!std::system("stty echo");
    std::cerr << "\n";
  }
  return line;
}

int Login(Client& client, const Args& args) {
  if (args.positional.size() != 1) return UsageError("login takes a user name");
  trainmesh::v1::LoginRequest request;
  request.set_name(args.positional[0]);
  request.set_password(ReadPassword(args));
  trainmesh::v1::LoginResponse response;
  grpc::Status s = client.auth().Login(client.Context().get(), request, &response);
  if (!s.ok()) return ReportError(s, client.connection().auth_endpoint);
  if (args.Has("print-token")) {
    std::cout << response.access_token() << "\n";
    return kExitOk;
  }
  const std::string path = TokenPath();
  const std::string dir = path.substr(0, path.rfind('/'));
  (void)!std::system(absl::StrCat("mkdir -p '", dir, "'").c_str());
  const mode_t old = umask(077);
  std::ofstream(path) << "TOKEN=" << response.access_token() << "\nEXPIRES="
                      << response.expire_time().seconds() << "\n";
  umask(old);
  std::cout << "signed in as " << response.user().name() << " until "
            << FormatTime(response.expire_time()) << "\n";
  return kExitOk;
}

int Logout() {
  std::remove(TokenPath().c_str());
  std::cout << "signed out\n";
  return kExitOk;
}

int WhoAmI(Client& client) {
  trainmesh::v1::Principal who;
  grpc::Status s = client.auth().WhoAmI(client.Context().get(), {}, &who);
  if (!s.ok()) return ReportError(s, client.connection().auth_endpoint);
  if (client.json()) {
    std::cout << Json(who) << std::endl;
    return kExitOk;
  }
  std::cout << "subject: " << who.subject() << "\n"
            << "name:    " << who.name() << "\n"
            << "kind:    " << trainmesh::v1::Principal::Kind_Name(who.kind()) << "\n"
            << "scopes:  " << absl::StrJoin(who.scopes(), " ") << "\n";
  return kExitOk;
}

int Users(Client& client, const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub == "create") {
    if (args.positional.size() != 2) return UsageError("users create takes a user name");
    trainmesh::v1::CreateUserRequest request;
    request.mutable_user()->set_name(args.positional[1]);
    request.mutable_user()->set_email(args.Get("email"));
    request.mutable_user()->set_admin(args.Has("admin"));
    request.set_password(ReadPassword(args));
    trainmesh::v1::User user;
    grpc::Status s = client.auth().CreateUser(client.Context().get(), request, &user);
    if (!s.ok()) return ReportError(s, client.connection().auth_endpoint);
    if (client.json()) {
      std::cout << Json(user) << std::endl;
    } else {
      std::cout << user.id() << "\n";
    }
    return kExitOk;
  }
  if (sub == "list") {
    trainmesh::v1::ListUsersRequest request;
    request.set_page_size(1000);
    while (true) {
      trainmesh::v1::ListUsersResponse response;
      grpc::Status s = client.auth().ListUsers(client.Context().get(), request, &response);
      if (!s.ok()) return ReportError(s, client.connection().auth_endpoint);
      for (const auto& u : response.users()) {
        if (client.json()) {
          std::cout << Json(u) << std::endl;
        } else {
          std::cout << absl::StrFormat("%-36s  %-20s  %s\n", u.id(), u.name(),
                                       u.admin() ? "admin" : "");
        }
      }
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return kExitOk;
  }
  return UsageError("users takes create or list");
}

int Keys(Client& client, const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub == "create") {
    trainmesh::v1::CreateApiKeyRequest request;
    request.mutable_api_key()->set_name(args.Get("name"));
    for (const auto& scope : args.All("scope")) request.mutable_api_key()->add_scopes(scope);
    if (args.Has("for")) request.set_for_user(args.Get("for"));
    if (args.Has("expires")) {
      absl::Duration d;
      if (!absl::ParseDuration(args.Get("expires"), &d)) return UsageError("--expires: a duration");
      request.mutable_api_key()->mutable_expire_time()->set_seconds(
          absl::ToUnixSeconds(absl::Now() + d));
    }
    trainmesh::v1::CreateApiKeyResponse response;
    grpc::Status s = client.auth().CreateApiKey(client.Context().get(), request, &response);
    if (!s.ok()) return ReportError(s, client.connection().auth_endpoint);
    if (client.json()) {
      std::cout << Json(response) << std::endl;
    } else {
      std::cerr << "API key " << response.api_key().id() << " ("
                << absl::StrJoin(response.api_key().scopes(), " ")
                << "). It is shown once; keep it now.\n";
      std::cout << response.secret() << "\n";
    }
    return kExitOk;
  }
  if (sub == "list") {
    trainmesh::v1::ListApiKeysRequest request;
    request.set_page_size(1000);
    trainmesh::v1::ListApiKeysResponse response;
    grpc::Status s = client.auth().ListApiKeys(client.Context().get(), request, &response);
    if (!s.ok()) return ReportError(s, client.connection().auth_endpoint);
    if (client.json()) {
      std::cout << Json(response) << std::endl;
      return kExitOk;
    }
    std::cout << absl::StrFormat("%-36s  %-12s  %-24s  %-10s  %s\n", "ID", "PREFIX", "SCOPES",
                                 "STATE", "NAME");
    for (const auto& k : response.api_keys()) {
      const std::string state = k.has_revoke_time() ? "revoked" : "active";
      std::cout << absl::StrFormat("%-36s  %-12s  %-24s  %-10s  %s\n", k.id(), k.prefix(),
                                   absl::StrJoin(k.scopes(), " "), state, k.name());
    }
    return kExitOk;
  }
  if (sub == "revoke") {
    if (args.positional.size() != 2) return UsageError("keys revoke takes a key id");
    trainmesh::v1::RevokeApiKeyRequest request;
    request.set_id(args.positional[1]);
    trainmesh::v1::ApiKey key;
    grpc::Status s = client.auth().RevokeApiKey(client.Context().get(), request, &key);
    if (!s.ok()) return ReportError(s, client.connection().auth_endpoint);
    std::cout << key.id() << " revoked\n";
    return kExitOk;
  }
  return UsageError("keys takes create, list or revoke");
}

int Run(int argc, char** argv) {
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  absl::StatusOr<Args> parsed =
      Parse(argv_list,
            {"endpoint",
             "tls-ca",
             "auth-endpoint",
             "metrics-endpoint",
             "scheduler-endpoint",
             "max-points",
             "token",
             "api-key",
             "output",
             "timeout",
             "model",
             "dataset",
             "param",
             "file",
             "priority",
             "max-attempts",
             "label",
             "request-id",
             "reason",
             "state",
             "page-size",
             "page-token",
             "retry-of",
             "after-seq",
             "scope",
             "for",
             "password",
             "email",
             "name",
             "expires",
             "grid",
             "random",
             "trials",
             "seed",
             "metric"},
            {"wait", "all", "resume", "help", "follow", "allow-shared-pool", "validate-only",
             "print-token", "password-stdin", "admin", "unread"},
            {{"p", "param"}, {"o", "output"}, {"l", "label"}, {"h", "help"}, {"f", "follow"}});
  if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
  const Args& args = *parsed;
  if (args.command.empty() || args.command == "help" || args.Has("help")) {
    std::cout << kUsage;
    return args.command.empty() && !args.Has("help") ? kExitUsage : kExitOk;
  }
  if (args.command != "download" && args.Has("output") && args.Get("output") != "json" &&
      args.Get("output") != "text") {
    return UsageError("-o takes json or text");
  }
  if (args.command == "logout") return Logout();
  Client client(args);
  const std::string& cmd = args.command;
  auto need_id = [&]() -> std::optional<std::string> {
    if (args.positional.size() != 1) return std::nullopt;
    return args.positional[0];
  };
  if (cmd == "submit") {
    if (!args.Has("model") || !args.Has("dataset")) {
      return UsageError("submit needs --model and --dataset");
    }
    return Submit(client, args);
  }
  if (cmd == "list") return List(client, args);
  if (cmd == "sweep") return Sweep(client, args);
  if (cmd == "compare") return Compare(client, args);
  if (cmd == "recipes") return Recipes(client, args);
  if (cmd == "health") return Health(client);
  if (cmd == "login") return Login(client, args);
  if (cmd == "whoami") return WhoAmI(client);
  if (cmd == "users") return Users(client, args);
  if (cmd == "keys") return Keys(client, args);
  if (cmd == "agents") return Agents(client, args);
  if (cmd == "notifications") return Notifications(client, args);
  if (cmd == "get" || cmd == "watch" || cmd == "cancel" || cmd == "retry" || cmd == "logs" ||
      cmd == "metrics" || cmd == "download") {
    std::optional<std::string> id = need_id();
    if (!id.has_value()) return UsageError(cmd + " takes one job id");
    if (cmd == "get") return Get(client, *id);
    if (cmd == "cancel") return Cancel(client, *id, args);
    if (cmd == "retry") return Retry(client, *id, args);
    if (cmd == "logs") return Logs(client, *id, args);
    if (cmd == "metrics") return Metrics(client, *id, args);
    if (cmd == "download") return Download(client, *id, args);
    int64_t after = 0;
    if (args.Has("after-seq") && !absl::SimpleAtoi(args.Get("after-seq"), &after)) {
      return UsageError("--after-seq: integer");
    }
    return Follow(client, *id, after);
  }
  return UsageError("unknown command " + cmd);
}

}  // namespace
}  // namespace trainmesh::cli

int main(int argc, char** argv) { return trainmesh::cli::Run(argc, argv); }
