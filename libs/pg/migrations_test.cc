#include "libs/pg/migrations.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/pg/testing/test_cluster.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

using ::testing::HasSubstr;

std::vector<Migration> TwoMigrations() {
  return {{1, "0001_init", "CREATE TABLE widgets (id int PRIMARY KEY);"},
          {2, "0002_name", "ALTER TABLE widgets ADD COLUMN name text;"}};
}

int Applied(const std::string& dsn) {
  pqxx::connection conn(dsn);
  return pqxx::nontransaction(conn)
      .exec("SELECT count(*) FROM shop.schema_migrations")[0][0]
      .as<int>();
}

TEST(MigrationsTest, AppliesInOrderIntoTheSchemaAndIsIdempotent) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  std::swap(migrations[0], migrations[1]);  // order comes from versions
  ASSERT_TRUE(Migrate(dsn, "shop", migrations).ok());
  ASSERT_TRUE(Migrate(dsn, "shop", migrations).ok());
  EXPECT_EQ(Applied(dsn), 2);
  pqxx::connection conn(dsn);
  pqxx::nontransaction(conn).exec("INSERT INTO shop.widgets (id, name) VALUES (1, 'a')");
}

TEST(MigrationsTest, NewMigrationsApplyOnTopOfOld) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  ASSERT_TRUE(Migrate(dsn, "shop", {migrations[0]}).ok());
  EXPECT_EQ(Applied(dsn), 1);
  ASSERT_TRUE(Migrate(dsn, "shop", migrations).ok());
  EXPECT_EQ(Applied(dsn), 2);
}

TEST(MigrationsTest, ChangedMigrationIsRefused) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  ASSERT_TRUE(Migrate(dsn, "shop", migrations).ok());
  migrations[0].sql = "CREATE TABLE widgets (id bigint PRIMARY KEY);";
  absl::Status s = Migrate(dsn, "shop", migrations);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("0001_init"));
}

TEST(MigrationsTest, FailedMigrationLeavesNothingHalfDone) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  std::vector<Migration> migrations = TwoMigrations();
  migrations.push_back({3, "0003_bad", "CREATE TABLE gadgets (id int); SELEC 1;"});
  absl::Status s = Migrate(dsn, "shop", migrations);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Applied(dsn), 2);
  pqxx::connection conn(dsn);
  EXPECT_EQ(pqxx::nontransaction(conn)
                .exec("SELECT count(*) FROM pg_tables WHERE tablename = 'gadgets'")[0][0]
                .as<int>(),
            0);
}

TEST(MigrationsTest, ConcurrentStartsApplyEachMigrationOnce) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  std::vector<std::thread> replicas;
  std::vector<absl::Status> results(6);
  for (int i = 0; i < 6; ++i) {
    replicas.emplace_back([&, i] { results[i] = Migrate(dsn, "shop", TwoMigrations()); });
  }
  for (auto& t : replicas) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(Applied(dsn), 2);
}

}  // namespace
}  // namespace trainmesh::pg
