#include "services/common/database.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/log/log.h"
#include "libs/server/grpc_server.h"

ABSL_FLAG(std::string, database_url, "", "PostgreSQL connection string (libpq URI or key=value).");
ABSL_FLAG(absl::Duration, startup_timeout, absl::Seconds(60), "How long to wait for the database at start-up.");
ABSL_FLAG(bool, migrate_only, false,
          "Apply this service's schema migrations and exit (the Kubernetes migration Job).");

namespace trainmesh::service {

std::string MigrateDatabase(const std::string& schema, const std::vector<pg::Migration>& migrations) {
  const std::string dsn = absl::GetFlag(FLAGS_database_url);
  if (dsn.empty()) server::Fail("bad configuration", absl::InvalidArgumentError("--database_url is required"));
  const absl::Status migrated =
      pg::MigrateWhenReachable(dsn, schema, migrations, absl::GetFlag(FLAGS_startup_timeout));
  if (!migrated.ok()) server::Fail("migrations failed", migrated);
  if (absl::GetFlag(FLAGS_migrate_only)) {
    TM_LOG(Info, "migrated; exiting (--migrate_only)").With("schema", schema);
    std::exit(0);
  }
  return dsn;
}

}  // namespace trainmesh::service
