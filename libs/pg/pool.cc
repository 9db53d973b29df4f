#include "libs/pg/pool.h"

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {

PooledConnection::~PooledConnection() {
  if (conn_ != nullptr) pool_->Release(std::move(conn_));
}

ConnectionPool::ConnectionPool(PoolOptions options) : options_(std::move(options)) {}

ConnectionPool::~ConnectionPool() {
  absl::MutexLock lock(&mu_);
  idle_.clear();
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectionPool::Open() {
  try {
    auto conn = std::make_unique<pqxx::connection>(options_.dsn);
    for (const auto& [name, sql] : options_.prepared) conn->prepare(name, sql);
    return conn;
  } catch (...) {
    return StatusFromCurrentException();
  }
}

absl::StatusOr<PooledConnection> ConnectionPool::Acquire() {
  while (true) {
    std::unique_ptr<pqxx::connection> idle;
    {
      absl::MutexLock lock(&mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < options_.size;
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&available), options_.acquire_timeout)) {
        return absl::UnavailableError(absl::StrCat(
            "no database connection free within ", absl::FormatDuration(options_.acquire_timeout)));
      }
      if (idle_.empty()) {
        ++open_;  // reserve a slot, then connect without holding the lock
        break;
      }
      idle = std::move(idle_.back());
      idle_.pop_back();
    }
    // A server that restarted or killed the backend has closed the socket:
    // reading it (no round trip) tells, so a dead connection is never handed out.
    try {
      idle->get_notifs();
      if (idle->is_open()) return PooledConnection(this, std::move(idle));
    } catch (...) {
    }
    absl::MutexLock lock(&mu_);
    --open_;
  }
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Open();
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return conn.status();
  }
  return PooledConnection(this, *std::move(conn));
}

void ConnectionPool::Release(std::unique_ptr<pqxx::connection> conn) {
  const bool healthy = conn->is_open();
  absl::MutexLock lock(&mu_);
  if (healthy) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

absl::Status ConnectionPool::Ping() {
  absl::StatusOr<PooledConnection> conn = Acquire();
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    tx.exec("SELECT 1");
    return absl::OkStatus();
  } catch (...) {
    return StatusFromCurrentException();
  }
}

}  // namespace trainmesh::pg
