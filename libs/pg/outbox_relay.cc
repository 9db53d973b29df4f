#include "libs/pg/outbox_relay.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/log/log.h"
#include "libs/pg/errors.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {

OutboxRelay::OutboxRelay(Options options, Deliver deliver)
    : options_(std::move(options)), deliver_(std::move(deliver)) {}

OutboxRelay::~OutboxRelay() { Stop(); }

void OutboxRelay::Start() { thread_ = std::thread([this] { Run(); }); }

void OutboxRelay::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void OutboxRelay::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

int64_t OutboxRelay::delivered() const {
  absl::MutexLock lock(&mu_);
  return delivered_;
}

bool OutboxRelay::Sleep(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || woken_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), d);
  woken_ = false;
  return !stop_;
}

bool OutboxRelay::DeliverPending(void* connection) {
  auto& conn = *static_cast<pqxx::connection*>(connection);
  while (true) {
    pqxx::result rows = pqxx::nontransaction(conn).exec_params(
        absl::StrCat("SELECT id, kind, payload FROM ", options_.table, " ORDER BY id LIMIT $1"),
        options_.batch);
    if (rows.empty()) return true;
    std::vector<int64_t> done;
    bool retry = false;
    for (const auto& row : rows) {
      const int64_t id = row[0].as<int64_t>();
      pqxx::binarystring payload(row[2]);
      if (deliver_(id, row[1].as<std::string>(), payload.str()) == Delivery::kRetryLater) {
        retry = true;
        break;
      }
      done.push_back(id);
    }
    if (!done.empty()) {
      pqxx::nontransaction(conn).exec(absl::StrCat("DELETE FROM ", options_.table,
                                                   " WHERE id IN (", absl::StrJoin(done, ","), ")"));
      absl::MutexLock lock(&mu_);
      delivered_ += static_cast<int64_t>(done.size());
    }
    if (retry) return false;
    if (static_cast<int>(rows.size()) < options_.batch) return true;
  }
}

void OutboxRelay::Run() {
  const std::string lock_key = absl::StrCat("trainmesh.outbox.", options_.table);
  absl::Duration backoff = options_.poll;
  while (true) {
    try {
      pqxx::connection conn(options_.dsn);
      // Only the replica holding the lock delivers; the others stand by.
      while (!pqxx::nontransaction(conn)
                  .exec_params("SELECT pg_try_advisory_lock(hashtext($1))", lock_key)[0][0]
                  .as<bool>()) {
        if (!Sleep(options_.poll * 4)) return;
      }
      while (true) {
        if (DeliverPending(&conn)) {
          backoff = options_.poll;
          if (!Sleep(options_.poll)) return;
        } else {
          backoff = std::min(backoff * 2, options_.max_backoff);
          if (!Sleep(backoff)) return;
        }
      }
    } catch (...) {
      TM_LOG(Warning, "outbox relay lost its database connection; reconnecting")
          .With("table", options_.table)
          .With("error", StatusFromCurrentException());
      if (!Sleep(std::min(backoff * 2, options_.max_backoff))) return;
    }
  }
}

}  // namespace trainmesh::pg
