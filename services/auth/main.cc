// The auth service binary.
//   auth                  serve
//   auth bootstrap --admin NAME --password_file F --credentials_out F
//                         ensure an admin user, a user API key and a service
//                         API key exist (idempotent); used by tools/up
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/identity/api_keys.h"
#include "services/common/identity_flags.h"
#include "libs/log/log.h"
#include "libs/pg/migrations.h"
#include "libs/pg/pool.h"
#include "services/common/database.h"
#include "libs/server/executor.h"
#include "libs/server/grpc_server.h"
#include "services/auth/auth_server.h"
#include "services/auth/auth_service.h"
#include "services/auth/auth_store.h"
#include "services/common/service_main.h"

ABSL_FLAG(int, db_pool_size, 8, "Database connections this replica may hold.");
ABSL_FLAG(int, workers, 8, "Threads that run RPC work.");
ABSL_FLAG(int, login_workers, 2,
          "Threads that check passwords (argon2), apart from the other calls so logins cannot starve them.");
ABSL_FLAG(std::vector<std::string>, trusted_proxies, std::vector<std::string>({"127.0.0.1", "::1"}),
          "Peer addresses (the gateway's) whose x-forwarded-for names the client that login throttling counts.");
ABSL_FLAG(std::string, signing_alg, "RS256", "Algorithm of new signing keys: RS256 or ES256.");
ABSL_FLAG(absl::Duration, access_token_ttl, absl::Hours(1), "Lifetime of login tokens.");
ABSL_FLAG(absl::Duration, job_token_ttl, absl::Minutes(15), "Lifetime of job tokens.");
ABSL_FLAG(int, argon2_memory_kib, 19456, "argon2id memory per password hash (KiB).");
ABSL_FLAG(int, argon2_iterations, 2, "argon2id passes per password hash.");
ABSL_FLAG(std::string, page_token_secret, "",
          "Key for page-token HMACs, shared by all replicas (default: random per process).");
ABSL_FLAG(std::string, admin, "dev", "bootstrap: the admin user to ensure.");
ABSL_FLAG(std::string, password_file, "",
          "bootstrap: the admin's password (made and written there when the file is missing).");
ABSL_FLAG(std::string, credentials_out, "",
          "bootstrap: env file that receives TRAINMESH_API_KEY, TRAINMESH_SERVICE_API_KEY and TRAINMESH_AGENT_API_KEY "
          "(kept when its keys are still valid).");

namespace trainmesh::auth {
const std::vector<pg::Migration>& Migrations();
}  // namespace trainmesh::auth

namespace {

using namespace trainmesh;


std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteSecretFile(const std::string& path, const std::string& text) {
  const mode_t old = umask(077);
  std::ofstream(path) << text;
  umask(old);
}

std::map<std::string, std::string> ReadEnvFile(const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq != std::string::npos && line[0] != '#') out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

int Bootstrap(auth::AuthService& service) {
  const std::string name = absl::GetFlag(FLAGS_admin);
  const std::string password_file = absl::GetFlag(FLAGS_password_file);
  const std::string out = absl::GetFlag(FLAGS_credentials_out);
  if (password_file.empty() || out.empty()) {
    server::Fail("bad flags", absl::InvalidArgumentError("bootstrap needs --password_file and --credentials_out"));
  }
  std::string password(absl::StripAsciiWhitespace(ReadFile(password_file)));
  if (password.empty()) {
    password = identity::GenerateApiKey().secret.substr(12);  // 40 random characters
    WriteSecretFile(password_file, password + "\n");
  }
  trainmesh::v1::CreateUserRequest create;
  create.mutable_user()->set_name(name);
  create.mutable_user()->set_admin(true);
  create.set_password(password);
  absl::StatusOr<trainmesh::v1::User> user = service.CreateUser(create);
  if (!user.ok() && user.status().code() != absl::StatusCode::kAlreadyExists) {
    server::Fail("cannot create the admin user", user.status());
  }
  trainmesh::v1::LoginRequest login;
  login.set_name(name);
  login.set_password(password);
  absl::StatusOr<trainmesh::v1::LoginResponse> session = service.Login(login);
  if (!session.ok()) {
    server::Fail("the admin user exists with another password", session.status());
  }
  trainmesh::v1::Principal admin;
  admin.set_subject(session->user().id());
  for (const char* s : {"jobs:read", "jobs:write", "admin"}) admin.add_scopes(s);

  std::map<std::string, std::string> env = ReadEnvFile(out);
  auto valid = [&](const std::string& key) { return !key.empty() && service.ResolveApiKey(key).ok(); };
  auto ensure = [&](const std::string& var, const std::string& key_name,
                    std::vector<std::string> scopes) {
    if (valid(env[var])) return;
    trainmesh::v1::CreateApiKeyRequest request;
    request.mutable_api_key()->set_name(key_name);
    for (auto& s : scopes) request.mutable_api_key()->add_scopes(s);
    absl::StatusOr<trainmesh::v1::CreateApiKeyResponse> key = service.CreateApiKey(admin, request);
    if (!key.ok()) server::Fail("cannot create an API key", key.status());
    env[var] = key->secret();
  };
  ensure("TRAINMESH_API_KEY", absl::StrCat(name, " (tools/up)"),
         {"jobs:read", "jobs:write", "agent", "admin"});
  ensure("TRAINMESH_SERVICE_API_KEY", "mesh services (tools/up)", {"internal"});
  ensure("TRAINMESH_AGENT_API_KEY", absl::StrCat(name, "'s trainer agent (tools/up)"), {"agent"});
  std::string text = "# Written by `auth bootstrap`.\n";
  for (const auto& [k, v] : env) absl::StrAppend(&text, k, "=", v, "\n");
  WriteSecretFile(out, text);
  TM_LOG(Info, "bootstrap done").With("admin", name).With("user_id", session->user().id());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = service::StartProcess(argc, argv, "auth",
                       "trainmesh auth service: users, signing keys (JWKS), API keys, job tokens.\n`auth bootstrap` ensures an admin user and API keys.");
  const bool bootstrap = args.size() > 1 && std::string(args[1]) == "bootstrap";
  const std::string dsn = service::MigrateDatabase("auth", auth::Migrations());

  pg::ConnectionPool pool({.dsn = dsn, .size = absl::GetFlag(FLAGS_db_pool_size)});
  auth::AuthStore store(&pool);
  auth::AuthOptions options;
  options.issuer = service::TokenIssuer();
  options.audience = service::TokenAudience();
  options.signing_alg = absl::GetFlag(FLAGS_signing_alg);
  options.access_token_ttl = absl::GetFlag(FLAGS_access_token_ttl);
  options.job_token_ttl = absl::GetFlag(FLAGS_job_token_ttl);
  options.password.memory_kib = absl::GetFlag(FLAGS_argon2_memory_kib);
  options.password.iterations = absl::GetFlag(FLAGS_argon2_iterations);
  options.page_token_secret = absl::GetFlag(FLAGS_page_token_secret);
  if (options.page_token_secret.empty()) options.page_token_secret = identity::GenerateApiKey().secret;
  auth::AuthService service(&store, options);
  if (absl::Status s = service.Init(); !s.ok()) server::Fail("cannot prepare a signing key", s);

  absl::StatusOr<std::unique_ptr<identity::Authenticator>> authenticator =
      service::AuthenticatorFromFlags(
          [&service] { return service.GetJwks(); },
          [&service](absl::string_view key) { return service.ResolveApiKey(key); });
  if (!authenticator.ok()) server::Fail("bad identity configuration", authenticator.status());
  // Authenticate and RenewJobToken verify with the same trusted issuers.
  service.SetVerifier((*authenticator)->verifier());

  if (bootstrap) return Bootstrap(service);

  server::Executor executor(absl::GetFlag(FLAGS_workers), "auth-worker");
  // Few logins wait: past that, a flood is answered RESOURCE_EXHAUSTED at once.
  server::Executor login_executor(absl::GetFlag(FLAGS_login_workers), "auth-login",
                                  static_cast<size_t>(16 * absl::GetFlag(FLAGS_login_workers)));
  auth::AuthServer auth_server(&service, &executor, authenticator->get(),
                               {.login_executor = &login_executor,
                                .trusted_proxies = absl::GetFlag(FLAGS_trusted_proxies)});
  server::GrpcServer grpc_server(service::ServerOptionsFromFlags());
  grpc_server.AddService(&auth_server, "trainmesh.v1.AuthService");
  if (absl::Status s = grpc_server.Start(); !s.ok()) server::Fail("cannot start", s);
  server::GrpcServer::WaitForTerminationSignal();
  grpc_server.Shutdown();
  login_executor.Shutdown();
  executor.Shutdown();
  TM_LOG(Info, "bye");
  return 0;
}
