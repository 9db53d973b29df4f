// Per-service schema migrations: versioned SQL files compiled into the binary
// (see trainmesh_embed_migrations in cmake/) and applied at start-up.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace trainmesh::pg {

struct Migration {
  int version;       // from the file name NNNN_description.sql
  std::string name;  // the file name without .sql
  std::string sql;
};

// Applies, in version order, each migration not yet recorded in
// <schema>.schema_migrations, each in its own transaction together with its
// record. Idempotent, and safe when several replicas start at once: they
// serialise on a per-schema advisory lock. FAILED_PRECONDITION when an applied
// migration's text changed since (or the database is ahead of this binary:
// that is allowed, newer migrations must stay compatible with older code);
// UNAVAILABLE when the database cannot be reached; INTERNAL for bad SQL.
absl::Status Migrate(const std::string& dsn, const std::string& schema,
                     const std::vector<Migration>& migrations);

// Migrate, retried with backoff while the database is UNAVAILABLE (it may
// still be starting: a pod beside it, a cluster restart), for up to `timeout`.
absl::Status MigrateWhenReachable(const std::string& dsn, const std::string& schema,
                                  const std::vector<Migration>& migrations,
                                  absl::Duration timeout);

}  // namespace trainmesh::pg
