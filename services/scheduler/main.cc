// The scheduler binary.
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "services/common/identity_flags.h"
#include "libs/log/log.h"
#include "libs/pg/listener.h"
#include "libs/pg/migrations.h"
#include "libs/pg/outbox_relay.h"
#include "libs/pg/pool.h"
#include "libs/rpc/call.h"
#include "services/common/database.h"
#include "libs/server/executor.h"
#include "libs/server/grpc_server.h"
#include "services/scheduler/background.h"
#include "services/scheduler/scheduler_metrics.h"
#include "services/scheduler/scheduler_server.h"
#include "services/scheduler/scheduler_service.h"
#include "services/scheduler/scheduler_store.h"
#include "services/scheduler/waiters.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "libs/tls/tls.h"
#include "services/common/service_main.h"

ABSL_FLAG(int, db_pool_size, 16, "Database connections this replica may hold.");
ABSL_FLAG(int, workers, 16, "Threads that run RPC work and claims.");
ABSL_FLAG(std::string, jobs_endpoint, "127.0.0.1:7001",
          "gRPC address of the jobs service (status reports go there).");
ABSL_FLAG(int, max_running_per_user, 8, "Jobs of one user that run at once, at most.");
ABSL_FLAG(absl::Duration, lease, absl::Seconds(30),
          "A claim's lease; heartbeats renew it. An agent silent this long (plus the grace) "
          "loses the job, which is requeued.");
ABSL_FLAG(absl::Duration, lease_grace, absl::Seconds(30),
          "Extra time after a lease expires before the job is taken away.");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "How often agents heartbeat (and so how soon they learn of a cancel).");
ABSL_FLAG(absl::Duration, progress_report_interval, absl::Seconds(5),
          "Progress goes to the jobs service at most this often per job.");
ABSL_FLAG(absl::Duration, job_token_ttl, absl::Minutes(15), "Lifetime of job tokens minted at claim.");

namespace trainmesh::scheduler {
const std::vector<pg::Migration>& Migrations();
}  // namespace trainmesh::scheduler

int main(int argc, char** argv) {
  using namespace trainmesh;
  service::StartProcess(argc, argv, "scheduler",
                       "trainmesh scheduler: the queue, agents, claims, leases and heartbeats.");
  const std::string dsn = service::MigrateDatabase("scheduler", scheduler::Migrations());
  const std::string credential = service::ServiceCredential();
  if (credential.empty()) {
    server::Fail("bad configuration",
         absl::InvalidArgumentError("--service_api_key is required (job tokens are minted with it)"));
  }
  absl::StatusOr<std::unique_ptr<identity::Authenticator>> authenticator =
      service::AuthenticatorFromFlags();
  if (!authenticator.ok()) server::Fail("bad identity configuration", authenticator.status());

  std::shared_ptr<trainmesh::v1::AuthService::Stub> auth = trainmesh::v1::AuthService::NewStub(
      tls::Channel(service::IdentityOptionsFromFlags().auth_endpoint));
  const absl::Duration token_ttl = absl::GetFlag(FLAGS_job_token_ttl);
  scheduler::SchedulerOptions options;
  options.max_running_per_user = absl::GetFlag(FLAGS_max_running_per_user);
  options.lease = absl::GetFlag(FLAGS_lease);
  options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  options.online_within = std::max(absl::Seconds(15), 3 * options.heartbeat_interval);
  options.progress_report_interval = absl::GetFlag(FLAGS_progress_report_interval);
  using AuthStub = trainmesh::v1::AuthService::Stub;
  options.mint = [auth, credential, token_ttl](const trainmesh::v1::Job& job, int attempt,
                                               const std::string& agent_id) {
    trainmesh::v1::MintJobTokenRequest request;
    request.set_job_id(job.id());
    request.set_attempt(attempt);
    request.set_agent_id(agent_id);
    request.set_owner(job.owner());
    request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(token_ttl));
    return rpc::Call("auth service", *auth, &AuthStub::MintJobToken, request, credential,
                     absl::Seconds(5));
  };
  options.renew = [auth, credential](const std::string& old) {
    trainmesh::v1::RenewJobTokenRequest request;
    request.set_token(old);
    return rpc::Call("auth service", *auth, &AuthStub::RenewJobToken, request, credential,
                     absl::Seconds(5));
  };
  options.user_limit = [auth, credential](const std::string& owner) -> absl::StatusOr<int> {
    trainmesh::v1::GetUserRequest request;
    request.set_id(owner);
    auto user = rpc::Call("auth service", *auth, &AuthStub::GetUser, request, credential,
                          absl::Seconds(2), {grpc::StatusCode::NOT_FOUND});
    if (!user.ok()) return user.status();
    return user->max_running_jobs();
  };

  pg::ConnectionPool pool({.dsn = dsn, .size = absl::GetFlag(FLAGS_db_pool_size)});
  scheduler::SchedulerStore store(&pool);
  scheduler::SchedulerService service(&store, options);
  server::Executor executor(absl::GetFlag(FLAGS_workers), "sched-worker");
  scheduler::Waiters waiters(&executor);
  pg::Listener listener(
      dsn, {scheduler::kQueueChannel},
      [&waiters](const std::string&, const std::string&) { waiters.WakeAll(); },
      [&waiters] { waiters.WakeAll(); });
  listener.Start();
  pg::OutboxRelay relay({.dsn = dsn, .table = "scheduler.outbox"},
                        scheduler::DeliverToJobs(absl::GetFlag(FLAGS_jobs_endpoint), credential));
  relay.Start();
  scheduler::Reaper reaper(&store, absl::Seconds(1), options.lease, absl::GetFlag(FLAGS_lease_grace));
  reaper.Start();

  scheduler::SchedulerServer scheduler_server(&service, &executor, authenticator->get(), &waiters);
  server::GrpcServer grpc_server(service::ServerOptionsFromFlags());
  grpc_server.AddService(&scheduler_server, "trainmesh.v1.SchedulerService");
  grpc_server.OnDrain([&waiters] { waiters.ExpireAll(); });
  scheduler::QueueStatsCache queue_stats(&store, options.online_within, absl::Seconds(5));
  queue_stats.Start();
  telemetry::Registry::Registration metrics =
      scheduler::ExportMetrics(&telemetry::Registry::Default(), &queue_stats, &waiters);
  if (absl::Status s = grpc_server.Start(); !s.ok()) server::Fail("cannot start", s);
  server::GrpcServer::WaitForTerminationSignal();
  grpc_server.Shutdown();
  metrics.Reset();
  queue_stats.Stop();
  reaper.Stop();
  relay.Stop();
  listener.Stop();
  executor.Shutdown();
  TM_LOG(Info, "bye");
  return 0;
}
