#include "libs/pg/pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/pg/testing/test_cluster.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

using ::testing::HasSubstr;

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = testing::TestCluster::Get().NewDatabase();
    pqxx::connection conn(dsn_);
    pqxx::nontransaction(conn).exec("CREATE TABLE t (k int PRIMARY KEY, v text)");
  }
  int64_t Count(ConnectionPool& pool) {
    return *pool.InTransaction([](pqxx::work& tx) -> absl::StatusOr<int64_t> {
      return tx.exec("SELECT count(*) FROM t")[0][0].as<int64_t>();
    });
  }
  std::string dsn_;
};

TEST_F(PoolTest, CommitsOnOkAndRollsBackOnError) {
  ConnectionPool pool({.dsn = dsn_, .size = 2});
  ASSERT_TRUE(pool.InTransaction([](pqxx::work& tx) {
                    tx.exec("INSERT INTO t VALUES (1, 'a')");
                    return absl::OkStatus();
                  }).ok());
  absl::Status s = pool.InTransaction([](pqxx::work& tx) {
    tx.exec("INSERT INTO t VALUES (2, 'b')");
    return absl::NotFoundError("changed my mind");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count(pool), 1);
}

TEST_F(PoolTest, ExceptionsBecomeStatuses) {
  ConnectionPool pool({.dsn = dsn_, .size = 1});
  auto insert = [](pqxx::work& tx) {
    tx.exec("INSERT INTO t VALUES (7, 'x')");
    return absl::OkStatus();
  };
  ASSERT_TRUE(pool.InTransaction(insert).ok());
  EXPECT_EQ(pool.InTransaction(insert).code(), absl::StatusCode::kAlreadyExists);
  // The pool's only connection is still usable after the failure.
  EXPECT_EQ(Count(pool), 1);
}

TEST_F(PoolTest, PreparedStatementsOnEveryConnection) {
  ConnectionPool pool(
      {.dsn = dsn_, .size = 2, .prepared = {{"insert_t", "INSERT INTO t VALUES ($1, $2)"}}});
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(pool.InTransaction([i](pqxx::work& tx) {
                      tx.exec_prepared("insert_t", i, "v");
                      return absl::OkStatus();
                    }).ok());
  }
  EXPECT_EQ(Count(pool), 4);
}

TEST_F(PoolTest, RetriesOnAConnectionKilledBeforeTheBody) {
  ConnectionPool pool({.dsn = dsn_, .size = 1});
  ASSERT_TRUE(pool.Ping().ok());
  // Kill the pooled connection's backend from outside, as a failover would.
  {
    pqxx::connection admin(dsn_);
    pqxx::nontransaction(admin).exec(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  }
  std::atomic<int> runs{0};
  absl::Status s = pool.InTransaction([&](pqxx::work& tx) {
    ++runs;
    tx.exec("INSERT INTO t VALUES (1, 'after failover')");
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  // The dead connection is noticed when it leaves the pool, before any SQL.
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(Count(pool), 1);
}

TEST_F(PoolTest, AutocommitCommitsEachStatement) {
  ConnectionPool pool({.dsn = dsn_, .size = 1});
  absl::Status s = pool.Autocommit([](pqxx::nontransaction& tx) {
    tx.exec("INSERT INTO t VALUES (1, 'a')");
    tx.exec("INSERT INTO t VALUES (1, 'dup')");  // fails; the first stays
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Count(pool), 1);
}

TEST_F(PoolTest, AcquireTimesOutWhenExhausted) {
  ConnectionPool pool({.dsn = dsn_, .size = 1, .acquire_timeout = absl::Milliseconds(50)});
  absl::StatusOr<PooledConnection> held = pool.Acquire();
  ASSERT_TRUE(held.ok());
  absl::StatusOr<PooledConnection> second = pool.Acquire();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("no database connection free"));
}

TEST_F(PoolTest, UnreachableDatabaseIsUnavailable) {
  ConnectionPool pool({.dsn = "postgresql://postgres@/nope?host=/nonexistent&port=1", .size = 1});
  EXPECT_EQ(pool.Ping().code(), absl::StatusCode::kUnavailable);
}

TEST_F(PoolTest, ConcurrentUseNeverExceedsSize) {
  ConnectionPool pool({.dsn = dsn_, .size = 3});
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        absl::Status s = pool.InTransaction([&](pqxx::work& tx) {
          tx.exec_params("INSERT INTO t VALUES ($1, 'c')", t * 100 + i);
          return absl::OkStatus();
        });
        if (!s.ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Count(pool), 200);
  pqxx::connection admin(dsn_);
  const int backends =
      pqxx::nontransaction(admin)
          .exec("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")[0][0]
          .as<int>();
  EXPECT_LE(backends, 3);
}

}  // namespace
}  // namespace trainmesh::pg
