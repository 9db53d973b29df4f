// The mesh in one test process: a throwaway database, and the real auth and
// jobs services behind real gRPC servers on port 0, wired as tools/up wires
// them (jobs verifies tokens against auth's JWKS and resolves API keys through
// auth with its own service key).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/service_identity.h"
#include "libs/pg/listener.h"
#include "libs/pg/pool.h"
#include "libs/server/executor.h"
#include "libs/server/grpc_server.h"
#include "libs/server/stream_guard.h"
#include "services/auth/auth_server.h"
#include "services/auth/auth_service.h"
#include "services/jobs/jobs_server.h"
#include "services/jobs/jobs_service.h"
#include "services/metrics/metrics_server.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "trainmesh/v1/metrics.grpc.pb.h"

namespace trainmesh::testing {

struct MeshOptions {
  absl::Duration api_key_cache_ttl = absl::Seconds(10);
  std::map<std::string, identity::RateLimit> rate_limits;
  // The jobs and metrics services' stream guards, as their mains make them.
  server::StreamGuards::Options streams;
};

class TestMesh {
 public:
  explicit TestMesh(MeshOptions options = {});
  ~TestMesh();

  // A new user (not admin unless asked) and a login token for them.
  struct User {
    trainmesh::v1::User user;
    std::string token;
  };
  User AddUser(const std::string& name, bool admin = false);

  // An API key of `owner` with `scopes`.
  trainmesh::v1::CreateApiKeyResponse AddApiKey(const User& owner, std::vector<std::string> scopes);

  // A client context carrying `credential`, with a deadline.
  static std::unique_ptr<grpc::ClientContext> With(const std::string& credential);

  trainmesh::v1::AuthService::Stub& auth() { return *auth_stub_; }
  trainmesh::v1::JobService::Stub& jobs() { return *jobs_stub_; }
  trainmesh::v1::MetricsService::Stub& metrics() { return *metrics_stub_; }

  // A job token for (job, attempt) of `owner`, minted by the auth service as
  // the scheduler will at claim time.
  std::string JobToken(const std::string& job_id, int attempt, const std::string& owner);
  const User& admin() const { return admin_; }
  const std::string& service_key() const { return service_key_; }
  const identity::Authenticator& jobs_authenticator() const { return *jobs_auth_; }

  // host:port of each service (for clients we did not write: the gateway).
  std::string auth_endpoint() const { return absl::StrCat("127.0.0.1:", auth_grpc_->port()); }
  std::string jobs_endpoint() const { return absl::StrCat("127.0.0.1:", jobs_grpc_->port()); }
  std::string metrics_endpoint() const { return absl::StrCat("127.0.0.1:", metrics_grpc_->port()); }

  // Stops the auth service (an outage); the jobs service keeps running.
  void StopAuth();

 private:
  std::string dsn_;
  // Shared by the jobs and metrics services here; first, so it outlives
  // every stream.
  std::unique_ptr<server::StreamGuards> stream_guards_;
  // auth
  std::unique_ptr<pg::ConnectionPool> auth_pool_;
  std::unique_ptr<auth::AuthStore> auth_store_;
  std::unique_ptr<auth::AuthService> auth_service_;
  std::unique_ptr<identity::Authenticator> auth_auth_;
  std::unique_ptr<server::Executor> auth_executor_;
  std::unique_ptr<auth::AuthServer> auth_server_;
  std::unique_ptr<server::GrpcServer> auth_grpc_;
  // metrics
  std::unique_ptr<pg::ConnectionPool> metrics_pool_;
  std::unique_ptr<metrics::MetricsStore> metrics_store_;
  std::unique_ptr<metrics::MetricsService> metrics_service_;
  std::unique_ptr<identity::Authenticator> metrics_auth_;
  std::unique_ptr<server::Executor> metrics_executor_;
  std::unique_ptr<metrics::PointFeed> point_feed_;
  std::unique_ptr<metrics::LogFeed> log_feed_;
  std::unique_ptr<pg::Listener> metrics_listener_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  std::unique_ptr<server::GrpcServer> metrics_grpc_;
  // jobs
  std::unique_ptr<pg::ConnectionPool> jobs_pool_;
  std::unique_ptr<jobs::JobStore> job_store_;
  std::unique_ptr<jobs::JobsService> jobs_service_;
  std::unique_ptr<identity::Authenticator> jobs_auth_;
  std::unique_ptr<server::Executor> jobs_executor_;
  jobs::EventHub hub_;
  std::unique_ptr<pg::Listener> listener_;
  std::unique_ptr<jobs::JobsServer> jobs_server_;
  std::unique_ptr<server::GrpcServer> jobs_grpc_;
  std::unique_ptr<jobs::JobControlServer> job_control_server_;
  std::function<absl::StatusOr<std::string>(const std::string&)> job_owner_;
  // clients
  std::unique_ptr<trainmesh::v1::AuthService::Stub> auth_stub_;
  std::unique_ptr<trainmesh::v1::JobService::Stub> jobs_stub_;
  std::unique_ptr<trainmesh::v1::MetricsService::Stub> metrics_stub_;
  User admin_;
  std::string service_key_;
};

}  // namespace trainmesh::testing
