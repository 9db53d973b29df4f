// The metrics service binary.
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "services/common/identity_flags.h"
#include "services/metrics/jobs_client.h"
#include "libs/log/log.h"
#include "libs/pg/listener.h"
#include "libs/pg/migrations.h"
#include "libs/pg/pool.h"
#include "services/common/database.h"
#include "libs/server/executor.h"
#include "libs/server/grpc_server.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/metrics_service.h"
#include "services/metrics/metrics_store.h"
#include "services/metrics/streams.h"
#include "services/common/service_main.h"

ABSL_FLAG(int, db_pool_size, 16, "Database connections this replica may hold.");
ABSL_FLAG(int, workers, 16, "Threads that run RPC work and stream reads.");
ABSL_FLAG(std::string, jobs_endpoint, "127.0.0.1:7001",
          "gRPC address of the jobs service (whose job an id is, before the job has reported anything).");
ABSL_FLAG(std::string, price_table, "cpu=0.05,cuda=2.50",
          "Price per device-hour: DEVICE=PRICE,… (exact device type, else its kind before ':', "
          "else \"default\").");
ABSL_FLAG(std::string, currency, "USD", "Currency of the price table.");
ABSL_FLAG(int, stream_queue_limit, 50000,
          "Points a live subscriber may have queued before it is lagged and catches up from "
          "the database.");

namespace trainmesh::metrics {
const std::vector<pg::Migration>& Migrations();
}  // namespace trainmesh::metrics

int main(int argc, char** argv) {
  using namespace trainmesh;
  service::StartProcess(argc, argv, "metrics",
                       "trainmesh metrics service: ingest, query, downsample and stream training telemetry.");
  const std::string dsn = service::MigrateDatabase("metrics", metrics::Migrations());
  absl::StatusOr<metrics::PriceTable> prices =
      metrics::PriceTable::Parse(absl::GetFlag(FLAGS_price_table), absl::GetFlag(FLAGS_currency));
  if (!prices.ok()) server::Fail("bad configuration", prices.status());
  absl::StatusOr<std::unique_ptr<identity::Authenticator>> authenticator =
      service::AuthenticatorFromFlags();
  if (!authenticator.ok()) server::Fail("bad identity configuration", authenticator.status());

  pg::ConnectionPool pool({.dsn = dsn,
                           .size = absl::GetFlag(FLAGS_db_pool_size),
                           .prepared = metrics::MetricsStore::PreparedStatements()});
  metrics::MetricsStore store(&pool);
  metrics::MetricsService service(
      &store, {.prices = *prices,
               .job_owner = metrics::JobOwnerFrom(absl::GetFlag(FLAGS_jobs_endpoint), service::ServiceCredential())});
  server::Executor executor(absl::GetFlag(FLAGS_workers), "metrics-worker");
  metrics::PointFeed points(
      [&store](const std::string& job, int64_t after, int64_t until, int limit) {
        return store.Points(job, after, until, limit);
      },
      &executor);
  metrics::LogFeed logs(
      [&store](const std::string& job, int64_t after, int64_t until, int limit) {
        return store.Logs(job, after, until, limit);
      },
      &executor);
  // "job first_point last_point first_log last_log"
  pg::Listener listener(
      dsn, {metrics::MetricsStore::kChannel},
      [&](const std::string&, const std::string& payload) {
        std::vector<absl::string_view> f = absl::StrSplit(payload, ' ');
        int64_t v[4];
        if (f.size() != 5 || !absl::SimpleAtoi(f[1], &v[0]) || !absl::SimpleAtoi(f[2], &v[1]) ||
            !absl::SimpleAtoi(f[3], &v[2]) || !absl::SimpleAtoi(f[4], &v[3])) {
          return;
        }
        points.Announce(std::string(f[0]), v[0], v[1]);
        logs.Announce(std::string(f[0]), v[2], v[3]);
      },
      [&] {
        points.ResyncAll();
        logs.ResyncAll();
      });
  listener.Start();

  metrics::StreamLimits limits;
  limits.max_queued_items = static_cast<size_t>(absl::GetFlag(FLAGS_stream_queue_limit));
  server::StreamGuards stream_guards(service::StreamGuardOptionsFromFlags());
  limits.guards = &stream_guards;
  metrics::MetricsServer metrics_server(&service, &executor, authenticator->get(), &points, &logs,
                                        limits);
  server::GrpcServer grpc_server(service::ServerOptionsFromFlags());
  grpc_server.AddService(&metrics_server, "trainmesh.v1.MetricsService");
  grpc_server.OnDrain([&] {
    points.DrainAll();
    logs.DrainAll();
  });
  if (absl::Status s = grpc_server.Start(); !s.ok()) server::Fail("cannot start", s);
  server::GrpcServer::WaitForTerminationSignal();
  grpc_server.Shutdown();
  listener.Stop();
  executor.Shutdown();
  TM_LOG(Info, "bye");
  return 0;
}
