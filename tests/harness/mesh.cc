#include "tests/harness/mesh.h"

#include "services/metrics/jobs_client.h"

#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/jobs/metrics_client.h"
#include "absl/time/clock.h"
#include "libs/pg/migrations.h"
#include "libs/pg/testing/test_cluster.h"

namespace trainmesh::auth {
const std::vector<pg::Migration>& Migrations();
}
namespace trainmesh::jobs {
const std::vector<pg::Migration>& Migrations();
}
namespace trainmesh::metrics {
const std::vector<pg::Migration>& Migrations();
}

namespace trainmesh::testing {
namespace {

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) throw std::runtime_error(absl::StrCat(what, ": ", s.ToString()));
}

}  // namespace

TestMesh::TestMesh(MeshOptions options) {
  stream_guards_ = std::make_unique<server::StreamGuards>(options.streams);
  dsn_ = pg::testing::TestCluster::Get().NewDatabase();
  Check(pg::Migrate(dsn_, "auth", auth::Migrations()), "auth migrations");
  Check(pg::Migrate(dsn_, "jobs", jobs::Migrations()), "jobs migrations");
  Check(pg::Migrate(dsn_, "metrics", metrics::Migrations()), "metrics migrations");

  // auth, wired as its main() does.
  auth_pool_ = std::make_unique<pg::ConnectionPool>(pg::PoolOptions{.dsn = dsn_, .size = 4});
  auth_store_ = std::make_unique<auth::AuthStore>(auth_pool_.get());
  auth::AuthOptions auth_options;
  auth_options.password = {.memory_kib = 1024, .iterations = 1, .lanes = 1};
  auth_options.page_token_secret = "mesh-test";
  auth_service_ = std::make_unique<auth::AuthService>(auth_store_.get(), auth_options);
  Check(auth_service_->Init(), "signing key");
  identity::ServiceIdentityOptions auth_identity;
  auto own_jwks = [this] { return auth_service_->GetJwks(); };
  auto own_keys = [this](absl::string_view key) { return auth_service_->ResolveApiKey(key); };
  {
    // The auth service trusts its own store directly.
    identity::IssuerConfig own;
    own.issuer = "trainmesh";
    own.audience = "trainmesh";
    own.jwks = identity::JwksFromFunction(own_jwks);
    own.scopes_from_token = true;
    own.allow_job_tokens = true;
    identity::AuthenticatorOptions o;
    o.tokens = std::make_shared<identity::TokenVerifier>(std::vector<identity::IssuerConfig>{own});
    o.api_keys = own_keys;
    auth_auth_ = std::make_unique<identity::Authenticator>(std::move(o));
  }
  auth_service_->SetVerifier(auth_auth_->verifier());
  auth_executor_ = std::make_unique<server::Executor>(4);
  auth_server_ = std::make_unique<auth::AuthServer>(auth_service_.get(), auth_executor_.get(),
                                                    auth_auth_.get());
  auth_grpc_ = std::make_unique<server::GrpcServer>(
      server::ServerOptions{.address = "127.0.0.1:0", .drain_timeout = absl::Seconds(2)});
  auth_grpc_->AddService(auth_server_.get(), "trainmesh.v1.AuthService");
  Check(auth_grpc_->Start(), "auth server");

  // Bootstrap: an admin and the services' key, as `auth bootstrap` makes them.
  trainmesh::v1::CreateUserRequest create;
  create.mutable_user()->set_name("root");
  create.mutable_user()->set_admin(true);
  create.set_password("root-password");
  Check(auth_service_->CreateUser(create).status(), "admin");
  trainmesh::v1::LoginRequest login;
  login.set_name("root");
  login.set_password("root-password");
  auto session = auth_service_->Login(login);
  Check(session.status(), "admin login");
  admin_ = {session->user(), session->access_token()};
  trainmesh::v1::Principal root;
  root.set_subject(admin_.user.id());
  root.add_scopes("admin");
  trainmesh::v1::CreateApiKeyRequest service_key;
  service_key.mutable_api_key()->add_scopes("internal");
  auto key = auth_service_->CreateApiKey(root, service_key);
  Check(key.status(), "service key");
  service_key_ = key->secret();

  identity::ServiceIdentityOptions identity_options;
  identity_options.auth_endpoint = absl::StrCat("127.0.0.1:", auth_grpc_->port());
  identity_options.service_api_key = service_key_;
  identity_options.api_key_cache_ttl = options.api_key_cache_ttl;
  identity_options.rate_limits = options.rate_limits;

  // metrics, as its main() wires it.
  metrics_pool_ = std::make_unique<pg::ConnectionPool>(pg::PoolOptions{
      .dsn = dsn_, .size = 8, .prepared = metrics::MetricsStore::PreparedStatements()});
  metrics_store_ = std::make_unique<metrics::MetricsStore>(metrics_pool_.get());
  // Whose job an id is comes from the jobs service (started below), over
  // gRPC as in main().
  metrics_service_ = std::make_unique<metrics::MetricsService>(
      metrics_store_.get(),
      metrics::MetricsOptions{.prices = *metrics::PriceTable::Parse("cpu=3.6", "USD"),
                              .job_owner = [this](const std::string& id) { return job_owner_(id); }});
  auto metrics_auth = identity::AuthenticatorForService(identity_options);
  Check(metrics_auth.status(), "metrics authenticator");
  metrics_auth_ = *std::move(metrics_auth);
  metrics_executor_ = std::make_unique<server::Executor>(8);
  point_feed_ = std::make_unique<metrics::PointFeed>(
      [this](const std::string& j, int64_t a, int64_t u, int l) { return metrics_store_->Points(j, a, u, l); },
      metrics_executor_.get());
  log_feed_ = std::make_unique<metrics::LogFeed>(
      [this](const std::string& j, int64_t a, int64_t u, int l) { return metrics_store_->Logs(j, a, u, l); },
      metrics_executor_.get());
  metrics_listener_ = std::make_unique<pg::Listener>(
      dsn_, std::vector<std::string>{metrics::MetricsStore::kChannel},
      [this](const std::string&, const std::string& payload) {
        std::vector<std::string> f = absl::StrSplit(payload, ' ');
        point_feed_->Announce(f[0], std::stoll(f[1]), std::stoll(f[2]));
        log_feed_->Announce(f[0], std::stoll(f[3]), std::stoll(f[4]));
      },
      [this] {
        point_feed_->ResyncAll();
        log_feed_->ResyncAll();
      });
  metrics_listener_->Start();
  metrics_server_ = std::make_unique<metrics::MetricsServer>(
      metrics_service_.get(), metrics_executor_.get(), metrics_auth_.get(), point_feed_.get(),
      log_feed_.get(), metrics::StreamLimits{.guards = stream_guards_.get()});
  metrics_grpc_ = std::make_unique<server::GrpcServer>(
      server::ServerOptions{.address = "127.0.0.1:0", .drain_timeout = absl::Seconds(2)});
  metrics_grpc_->AddService(metrics_server_.get(), "trainmesh.v1.MetricsService");
  Check(metrics_grpc_->Start(), "metrics server");
  const std::string metrics_endpoint = absl::StrCat("127.0.0.1:", metrics_grpc_->port());

  // jobs, verifying through the auth service over gRPC.
  jobs_pool_ = std::make_unique<pg::ConnectionPool>(pg::PoolOptions{
      .dsn = dsn_, .size = 8, .prepared = jobs::JobStore::PreparedStatements()});
  job_store_ = std::make_unique<jobs::JobStore>(jobs_pool_.get());
  jobs_service_ = std::make_unique<jobs::JobsService>(
      job_store_.get(),
      jobs::JobsServiceOptions{.page_token_secret = "mesh-test",
                               .recent_metrics = jobs::RecentMetricsFrom(metrics_endpoint, service_key_)});
  auto jobs_auth = identity::AuthenticatorForService(identity_options);
  Check(jobs_auth.status(), "jobs authenticator");
  jobs_auth_ = *std::move(jobs_auth);
  jobs_executor_ = std::make_unique<server::Executor>(8);
  listener_ = std::make_unique<pg::Listener>(
      dsn_, std::vector<std::string>{jobs::JobStore::kEventsChannel},
      [this](const std::string&, const std::string& id) { jobs::PublishNotification(&hub_, id); },
      [this] { hub_.ResyncAll(); });
  listener_->Start();
  jobs_server_ = std::make_unique<jobs::JobsServer>(jobs_service_.get(), jobs_executor_.get(),
                                                    jobs_auth_.get(), &hub_, nullptr, stream_guards_.get());
  jobs_grpc_ = std::make_unique<server::GrpcServer>(
      server::ServerOptions{.address = "127.0.0.1:0", .drain_timeout = absl::Seconds(2)});
  jobs_grpc_->AddService(jobs_server_.get(), "trainmesh.v1.JobService");
  job_control_server_ =
      std::make_unique<jobs::JobControlServer>(jobs_service_.get(), jobs_executor_.get(), jobs_auth_.get());
  jobs_grpc_->AddService(job_control_server_.get(), "trainmesh.v1.JobControlService");
  jobs_grpc_->OnDrain([this] { hub_.DrainAll(); });
  Check(jobs_grpc_->Start(), "jobs server");
  job_owner_ = metrics::JobOwnerFrom(jobs_endpoint(), service_key_);

  auth_stub_ = trainmesh::v1::AuthService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", auth_grpc_->port()), grpc::InsecureChannelCredentials()));
  jobs_stub_ = trainmesh::v1::JobService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", jobs_grpc_->port()), grpc::InsecureChannelCredentials()));
  metrics_stub_ = trainmesh::v1::MetricsService::NewStub(
      grpc::CreateChannel(metrics_endpoint, grpc::InsecureChannelCredentials()));
}

std::string TestMesh::JobToken(const std::string& job_id, int attempt, const std::string& owner) {
  trainmesh::v1::MintJobTokenRequest mint;
  mint.set_job_id(job_id);
  mint.set_attempt(attempt);
  mint.set_owner(owner);
  mint.set_agent_id("test-agent");
  trainmesh::v1::JobToken token;
  grpc::Status s = auth_stub_->MintJobToken(With(service_key_).get(), mint, &token);
  if (!s.ok()) throw std::runtime_error("MintJobToken: " + s.error_message());
  return token.token();
}

TestMesh::~TestMesh() {
  jobs_grpc_->Shutdown();
  listener_->Stop();
  jobs_executor_->Shutdown();
  metrics_grpc_->Shutdown();
  metrics_listener_->Stop();
  metrics_executor_->Shutdown();
  StopAuth();
}

void TestMesh::StopAuth() {
  auth_grpc_->Shutdown();
  auth_executor_->Shutdown();
}

std::unique_ptr<grpc::ClientContext> TestMesh::With(const std::string& credential) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!credential.empty()) ctx->AddMetadata("authorization", "Bearer " + credential);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

TestMesh::User TestMesh::AddUser(const std::string& name, bool admin) {
  trainmesh::v1::CreateUserRequest create;
  create.mutable_user()->set_name(name);
  create.mutable_user()->set_admin(admin);
  create.set_password(name + "-password");
  trainmesh::v1::User user;
  grpc::Status s = auth_stub_->CreateUser(With(admin_.token).get(), create, &user);
  if (!s.ok()) throw std::runtime_error("CreateUser: " + s.error_message());
  trainmesh::v1::LoginRequest login;
  login.set_name(name);
  login.set_password(name + "-password");
  trainmesh::v1::LoginResponse session;
  s = auth_stub_->Login(With("").get(), login, &session);
  if (!s.ok()) throw std::runtime_error("Login: " + s.error_message());
  return {user, session.access_token()};
}

trainmesh::v1::CreateApiKeyResponse TestMesh::AddApiKey(const User& owner,
                                                        std::vector<std::string> scopes) {
  trainmesh::v1::CreateApiKeyRequest request;
  for (auto& s : scopes) request.mutable_api_key()->add_scopes(s);
  trainmesh::v1::CreateApiKeyResponse key;
  grpc::Status s = auth_stub_->CreateApiKey(With(owner.token).get(), request, &key);
  if (!s.ok()) throw std::runtime_error("CreateApiKey: " + s.error_message());
  return key;
}

}  // namespace trainmesh::testing
