// The jobs service binary: flags, wiring, and the drain on SIGTERM.
#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/identity/api_keys.h"
#include "services/common/identity_flags.h"
#include "libs/log/log.h"
#include "libs/pg/listener.h"
#include "libs/pg/migrations.h"
#include "libs/pg/pool.h"
#include "services/common/database.h"
#include "libs/server/executor.h"
#include "libs/server/grpc_server.h"
#include "services/jobs/job_store.h"
#include "services/jobs/jobs_server.h"
#include "services/jobs/jobs_service.h"
#include "services/jobs/metrics_client.h"
#include "services/jobs/dispatch.h"
#include "libs/pg/outbox_relay.h"
#include "libs/artifacts/artifact_store.h"
#include "services/jobs/watch.h"
#include "services/common/service_main.h"

ABSL_FLAG(int, db_pool_size, 16, "Database connections this replica may hold.");
ABSL_FLAG(int, workers, 16, "Threads that run RPC work (database round trips).");
ABSL_FLAG(bool, auto_queue, false,
          "Move new jobs to QUEUED at once (for trying flows before a scheduler runs).");
ABSL_FLAG(std::string, page_token_secret, "",
          "Key for page-token HMACs, shared by all replicas (default: derived from "
          "--service_api_key).");
ABSL_FLAG(std::string, metrics_endpoint, "127.0.0.1:7004",
          "gRPC address of the metrics service (GetJob shows a job's latest points and cost); "
          "empty: none.");
ABSL_FLAG(std::string, scheduler_endpoint, "127.0.0.1:7003",
          "gRPC address of the scheduler new jobs and cancels go to; empty: none (jobs stay "
          "PENDING unless --auto_queue).");
ABSL_FLAG(std::string, artifact_root, "",
          "Directory of job artifacts (shared with the trainers), for DownloadArtifact.");

namespace trainmesh::jobs {
const std::vector<pg::Migration>& Migrations();
}  // namespace trainmesh::jobs

int main(int argc, char** argv) {
  using namespace trainmesh;
  service::StartProcess(argc, argv, "jobs",
                       "trainmesh jobs service: job CRUD, cancel, retry, WatchJob.");

  const std::string dsn = service::MigrateDatabase("jobs", jobs::Migrations());
  absl::StatusOr<std::unique_ptr<identity::Authenticator>> authenticator =
      service::AuthenticatorFromFlags();
  if (!authenticator.ok()) server::Fail("bad identity configuration", authenticator.status());

  pg::ConnectionPool pool({.dsn = dsn,
                           .size = absl::GetFlag(FLAGS_db_pool_size),
                           .prepared = jobs::JobStore::PreparedStatements()});
  jobs::JobStore store(&pool);
  std::string page_secret = absl::GetFlag(FLAGS_page_token_secret);
  if (page_secret.empty() && !service::ServiceCredential().empty()) {
    page_secret = identity::HashApiKey(absl::StrCat("page-tokens:", service::ServiceCredential()));
  }
  if (page_secret.empty()) {
    TM_LOG(Warning, "no --page_token_secret: page tokens are valid in this process only");
    page_secret = identity::GenerateApiKey().secret;
  }
  jobs::JobsServiceOptions options{.auto_queue = absl::GetFlag(FLAGS_auto_queue),
                                   .page_token_secret = page_secret};
  if (const std::string endpoint = absl::GetFlag(FLAGS_metrics_endpoint);
      !endpoint.empty() && !service::ServiceCredential().empty()) {
    options.recent_metrics = jobs::RecentMetricsFrom(endpoint, service::ServiceCredential());
  }
  const std::string scheduler_endpoint = absl::GetFlag(FLAGS_scheduler_endpoint);
  std::unique_ptr<pg::OutboxRelay> relay;
  if (!scheduler_endpoint.empty() && !service::ServiceCredential().empty()) {
    relay = std::make_unique<pg::OutboxRelay>(
        pg::OutboxRelay::Options{.dsn = dsn, .table = "jobs.outbox"},
        jobs::DeliverToScheduler(&store, scheduler_endpoint, service::ServiceCredential()));
    options.dispatch = true;
    options.wake_dispatch = [r = relay.get()] { r->Wake(); };
    relay->Start();
  }
  jobs::JobsService service(&store, std::move(options));
  std::unique_ptr<artifacts::ArtifactStore> artifacts;
  if (!absl::GetFlag(FLAGS_artifact_root).empty()) {
    artifacts = std::make_unique<artifacts::ArtifactStore>(absl::GetFlag(FLAGS_artifact_root));
  }
  server::Executor executor(absl::GetFlag(FLAGS_workers), "jobs-worker");
  jobs::EventHub hub;
  pg::Listener listener(
      dsn, {jobs::JobStore::kEventsChannel},
      [&hub](const std::string&, const std::string& job_id) { jobs::PublishNotification(&hub, job_id); },
      [&hub] { hub.ResyncAll(); });
  listener.Start();

  server::StreamGuards stream_guards(service::StreamGuardOptionsFromFlags());
  jobs::JobsServer jobs_server(&service, &executor, authenticator->get(), &hub, artifacts.get(), &stream_guards);
  jobs::JobControlServer control_server(&service, &executor, authenticator->get());
  server::GrpcServer grpc_server(service::ServerOptionsFromFlags());
  grpc_server.AddService(&jobs_server, "trainmesh.v1.JobService");
  grpc_server.AddService(&control_server, "trainmesh.v1.JobControlService");
  grpc_server.OnDrain([&hub] { hub.DrainAll(); });
  if (absl::Status s = grpc_server.Start(); !s.ok()) server::Fail("cannot start", s);

  server::GrpcServer::WaitForTerminationSignal();
  grpc_server.Shutdown();
  listener.Stop();
  if (relay != nullptr) relay->Stop();
  executor.Shutdown();
  TM_LOG(Info, "bye");
  return 0;
}
