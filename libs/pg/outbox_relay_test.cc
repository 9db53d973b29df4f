#include "libs/pg/outbox_relay.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/pg/testing/test_cluster.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

class Receiver {
 public:
  OutboxRelay::Delivery Take(const std::string& payload) {
    absl::MutexLock lock(&mu_);
    if (down_) return OutboxRelay::Delivery::kRetryLater;
    got_.push_back(payload);
    return OutboxRelay::Delivery::kDone;
  }
  void SetDown(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return got_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
  }
  std::vector<std::string> got() {
    absl::MutexLock lock(&mu_);
    return got_;
  }

 private:
  absl::Mutex mu_;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> got_ ABSL_GUARDED_BY(mu_);
};

void Add(const std::string& dsn, const std::string& payload) {
  pqxx::connection conn(dsn);
  pqxx::nontransaction(conn).exec_params(
      "INSERT INTO outbox (kind, payload) VALUES ('k', $1::text::bytea)", payload);
}

std::string NewOutbox() {
  std::string dsn = testing::TestCluster::Get().NewDatabase();
  pqxx::connection conn(dsn);
  pqxx::nontransaction(conn).exec(
      "CREATE TABLE outbox (id bigserial PRIMARY KEY, kind text NOT NULL, payload bytea NOT NULL, "
      "created_at timestamptz NOT NULL DEFAULT now())");
  return dsn;
}

TEST(OutboxRelayTest, DeliversInOrderAndDeletes) {
  const std::string dsn = NewOutbox();
  for (int i = 0; i < 250; ++i) Add(dsn, "m" + std::to_string(i));
  Receiver receiver;
  OutboxRelay relay({.dsn = dsn, .table = "outbox", .batch = 100},
                    [&](int64_t, const std::string&, const std::string& p) { return receiver.Take(p); });
  relay.Start();
  ASSERT_TRUE(receiver.WaitFor(250));
  std::vector<std::string> want;
  for (int i = 0; i < 250; ++i) want.push_back("m" + std::to_string(i));
  EXPECT_EQ(receiver.got(), want);
  relay.Stop();
  pqxx::connection conn(dsn);
  EXPECT_EQ(pqxx::nontransaction(conn).exec("SELECT count(*) FROM outbox")[0][0].as<int>(), 0);
}

TEST(OutboxRelayTest, AnUnavailableReceiverDelaysButLosesNothing) {
  const std::string dsn = NewOutbox();
  Receiver receiver;
  receiver.SetDown(true);
  OutboxRelay relay({.dsn = dsn, .table = "outbox", .poll = absl::Milliseconds(20)},
                    [&](int64_t, const std::string&, const std::string& p) { return receiver.Take(p); });
  relay.Start();
  Add(dsn, "a");
  Add(dsn, "b");
  relay.Wake();
  receiver.SetDown(false);
  ASSERT_TRUE(receiver.WaitFor(2));
  EXPECT_THAT(receiver.got(), ::testing::ElementsAre("a", "b"));
}

TEST(OutboxRelayTest, OnlyOneReplicaDelivers) {
  const std::string dsn = NewOutbox();
  Receiver receiver;
  auto deliver = [&](int64_t, const std::string&, const std::string& p) { return receiver.Take(p); };
  OutboxRelay a({.dsn = dsn, .table = "outbox", .poll = absl::Milliseconds(20)}, deliver);
  OutboxRelay b({.dsn = dsn, .table = "outbox", .poll = absl::Milliseconds(20)}, deliver);
  a.Start();
  b.Start();
  for (int i = 0; i < 50; ++i) Add(dsn, std::to_string(i));
  ASSERT_TRUE(receiver.WaitFor(50));
  std::vector<std::string> got = receiver.got();
  EXPECT_EQ(got.size(), 50u);  // none twice
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[i], std::to_string(i));
  EXPECT_TRUE(a.delivered() == 0 || b.delivered() == 0);
}

}  // namespace
}  // namespace trainmesh::pg
