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
namespace {


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

}  // namespace


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

}  // namespace trainmesh::cli


int main(int argc, char** argv) { return trainmesh::cli::Run(argc, argv); }
