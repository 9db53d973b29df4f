// trainctl commands on the mesh and its users: agents, recipes, health,
// login, logout, whoami, users, keys.
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

}  // namespace trainmesh::cli
