// A fixed-size pool of libpqxx connections and the transaction runner that
// every repository uses. Connections are opened on demand, prepared statements
// are registered on each new connection, and a connection that broke is dropped
// instead of being handed out again.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/pg/errors.h"
#include "pqxx/connection"
#include "pqxx/nontransaction"
#include "pqxx/transaction"

namespace trainmesh::pg {

struct PoolOptions {
  // libpq connection string or URI.
  std::string dsn;
  int size = 8;
  // How long Acquire waits for a free connection before UNAVAILABLE.
  absl::Duration acquire_timeout = absl::Seconds(10);
  // (name, sql) pairs prepared on every connection.
  std::vector<std::pair<std::string, std::string>> prepared;
};

class ConnectionPool;

// A checked-out connection; goes back to the pool when destroyed.
class PooledConnection {
 public:
  PooledConnection(ConnectionPool* pool, std::unique_ptr<pqxx::connection> conn)
      : pool_(pool), conn_(std::move(conn)) {}
  PooledConnection(PooledConnection&&) = default;
  PooledConnection& operator=(PooledConnection&&) = delete;
  ~PooledConnection();

  pqxx::connection& operator*() { return *conn_; }
  pqxx::connection* operator->() { return conn_.get(); }

 private:
  ConnectionPool* pool_;
  std::unique_ptr<pqxx::connection> conn_;
};

namespace internal {
inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

class ConnectionPool {
 public:
  explicit ConnectionPool(PoolOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // A connection, opened if none is idle. UNAVAILABLE when the database cannot
  // be reached or none frees up within acquire_timeout.
  absl::StatusOr<PooledConnection> Acquire();

  // Runs `fn(pqxx::work&)`, which returns absl::Status or absl::StatusOr<T>, in
  // a READ COMMITTED transaction; commits when it returns OK and rolls back
  // otherwise. Exceptions become statuses (see errors.h). The body is run again
  // (it must be safe to) after a serialization failure or deadlock, and after a
  // connection that broke before the commit was sent.
  template <typename Fn>
  auto InTransaction(Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::work&>;

  // Runs `fn(pqxx::nontransaction&)` in autocommit mode: each statement commits
  // on its own, so a single (CTE) statement costs one round trip. Run again
  // only after a serialization failure or deadlock (nothing was committed);
  // a connection lost mid-statement is UNAVAILABLE, as its outcome is unknown.
  template <typename Fn>
  auto Autocommit(Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::nontransaction&>;

  // SELECT 1 on a pooled connection: OK when the database answers.
  absl::Status Ping();

  const PoolOptions& options() const { return options_; }

 private:
  friend class PooledConnection;
  static constexpr int kMaxAttempts = 3;

  template <typename Tx, typename Fn>
  auto Run(Fn& fn) -> std::invoke_result_t<Fn&, Tx&>;
  void Release(std::unique_ptr<pqxx::connection> conn);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Open();

  const PoolOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + checked out + being opened
};

template <typename Tx, typename Fn>
auto ConnectionPool::Run(Fn& fn) -> std::invoke_result_t<Fn&, Tx&> {
  using Result = std::invoke_result_t<Fn&, Tx&>;
  constexpr bool kTransaction = std::is_same_v<Tx, pqxx::work>;
  absl::Status error;
  for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
    absl::StatusOr<PooledConnection> conn = Acquire();
    if (!conn.ok()) return Result(conn.status());
    // Once a statement may have committed (autocommit) or COMMIT was sent, a
    // lost connection leaves the outcome unknown: no retry then.
    bool maybe_committed = !kTransaction;
    try {
      Tx tx(**conn);
      Result result = fn(tx);
      if constexpr (kTransaction) {
        if (!internal::StatusOf(result).ok()) {
          tx.abort();
          return result;
        }
        maybe_committed = true;
        tx.commit();
      }
      return result;
    } catch (...) {
      error = StatusFromCurrentException();
    }
    const bool broken = !(*conn)->is_open();
    const bool retry = error.code() == absl::StatusCode::kAborted ||
                       (broken && !maybe_committed && error.code() == absl::StatusCode::kUnavailable);
    if (!retry) break;
  }
  return Result(error);
}

template <typename Fn>
auto ConnectionPool::InTransaction(Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::work&> {
  return Run<pqxx::work>(fn);
}

template <typename Fn>
auto ConnectionPool::Autocommit(Fn&& fn) -> std::invoke_result_t<Fn&, pqxx::nontransaction&> {
  return Run<pqxx::nontransaction>(fn);
}

}  // namespace trainmesh::pg
