// The start of every service that owns a schema (auth, jobs, scheduler,
// metrics): the --database_url, --startup_timeout and --migrate_only flags.
#pragma once

#include <string>
#include <vector>

#include "libs/pg/migrations.h"

namespace trainmesh::service {

// Takes --database_url (required), waits up to --startup_timeout for the
// database and applies `schema`'s migrations. With --migrate_only it exits 0
// right after them (the Kubernetes migration Job). A missing URL or failed
// migrations are logged and exit 1. Returns the URL.
std::string MigrateDatabase(const std::string& schema, const std::vector<pg::Migration>& migrations);

}  // namespace trainmesh::service
