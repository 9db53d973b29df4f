#include "libs/pg/migrations.h"

#include <algorithm>
#include <cstdint>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/pg/errors.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

// FNV-1a: a stable fingerprint of a migration's text (std::hash is not stable).
std::string Fingerprint(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return absl::StrCat(absl::Hex(h, absl::kZeroPad16));
}

absl::Status MigrateLocked(pqxx::connection& conn, const std::string& schema,
                           std::vector<Migration> migrations) {
  const std::string table = absl::StrCat(conn.quote_name(schema), ".schema_migrations");
  {
    pqxx::work tx(conn);
    tx.exec(absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", conn.quote_name(schema)));
    tx.exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", table,
                         " (version integer PRIMARY KEY, name text NOT NULL,"
                         " fingerprint text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())"));
    tx.commit();
  }
  std::map<int, std::string> applied;
  {
    pqxx::nontransaction tx(conn);
    for (const auto& row : tx.exec(absl::StrCat("SELECT version, fingerprint FROM ", table))) {
      applied[row[0].as<int>()] = row[1].as<std::string>();
    }
  }
  std::sort(migrations.begin(), migrations.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 1; i < migrations.size(); ++i) {
    if (migrations[i].version == migrations[i - 1].version) {
      return absl::InternalError(absl::StrCat("two migrations numbered ", migrations[i].version));
    }
  }
  for (const Migration& m : migrations) {
    const std::string fingerprint = Fingerprint(m.sql);
    auto it = applied.find(m.version);
    if (it != applied.end()) {
      if (it->second != fingerprint) {
        return absl::FailedPreconditionError(
            absl::StrCat("migration ", m.name, " of schema ", schema,
                         " was changed after it was applied; add a new migration instead"));
      }
      continue;
    }
    pqxx::work tx(conn);
    tx.exec(absl::StrCat("SET LOCAL search_path TO ", conn.quote_name(schema)));
    tx.exec(m.sql);
    tx.exec_params(absl::StrCat("INSERT INTO ", table,
                                " (version, name, fingerprint) VALUES ($1, $2, $3)"),
                   m.version, m.name, fingerprint);
    tx.commit();
    TM_LOG(Info, "migration applied").With("schema", schema).With("migration", m.name);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Migrate(const std::string& dsn, const std::string& schema,
                     const std::vector<Migration>& migrations) {
  try {
    pqxx::connection conn(dsn);
    const std::string lock_key = absl::StrCat("trainmesh.migrate.", schema);
    {
      pqxx::nontransaction tx(conn);
      tx.exec_params("SELECT pg_advisory_lock(hashtext($1))", lock_key);
    }
    absl::Status status;
    try {
      status = MigrateLocked(conn, schema, migrations);
    } catch (...) {
      status = StatusFromCurrentException();
    }
    if (conn.is_open()) {
      pqxx::nontransaction tx(conn);
      tx.exec_params("SELECT pg_advisory_unlock(hashtext($1))", lock_key);
    }
    return status;
  } catch (...) {
    return StatusFromCurrentException();
  }
}

absl::Status MigrateWhenReachable(const std::string& dsn, const std::string& schema,
                                  const std::vector<Migration>& migrations,
                                  absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  for (absl::Duration backoff = absl::Milliseconds(100);;
       backoff = std::min(backoff * 2, absl::Seconds(3))) {
    absl::Status status = Migrate(dsn, schema, migrations);
    if (status.ok() || status.code() != absl::StatusCode::kUnavailable ||
        absl::Now() + backoff > give_up) {
      return status;
    }
    TM_LOG(Warning, "database not reachable yet").With("error", status);
    absl::SleepFor(backoff);
  }
}

}  // namespace trainmesh::pg
