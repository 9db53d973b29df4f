#include "libs/pg/errors.h"

#include <stdexcept>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/pg/testing/test_cluster.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

using ::testing::HasSubstr;

// Runs `sql` on a fresh database and returns the status its exception maps to.
absl::Status StatusOfSql(const std::string& setup, const std::string& sql) {
  static const std::string dsn = testing::TestCluster::Get().NewDatabase();
  pqxx::connection conn(dsn);
  if (!setup.empty()) pqxx::nontransaction(conn).exec(setup);
  try {
    pqxx::work tx(conn);
    tx.exec(sql);
    tx.commit();
    return absl::OkStatus();
  } catch (...) {
    return StatusFromCurrentException();
  }
}

TEST(ErrorsTest, UniqueViolationIsAlreadyExists) {
  absl::Status s = StatusOfSql("CREATE TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1)",
                               "INSERT INTO u VALUES (1)");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("duplicate key"));
}

TEST(ErrorsTest, CheckViolationIsFailedPrecondition) {
  absl::Status s = StatusOfSql("CREATE TABLE c (k int CHECK (k > 0))", "INSERT INTO c VALUES (-1)");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ErrorsTest, BadValueIsInvalidArgument) {
  EXPECT_EQ(StatusOfSql("", "SELECT 'not-a-uuid'::uuid").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ErrorsTest, SyntaxErrorIsInternal) {
  EXPECT_EQ(StatusOfSql("", "SELEC 1").code(), absl::StatusCode::kInternal);
}

TEST(ErrorsTest, StatementTimeoutIsDeadlineExceeded) {
  EXPECT_EQ(StatusOfSql("", "SET LOCAL statement_timeout = 10; SELECT pg_sleep(5)").code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(ErrorsTest, ExceptionTypesMap) {
  EXPECT_EQ(StatusFromException(pqxx::broken_connection("gone")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromException(pqxx::serialization_failure("x")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(StatusFromException(pqxx::deadlock_detected("x")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(StatusFromException(pqxx::in_doubt_error("x")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromException(std::runtime_error("x")).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace trainmesh::pg
