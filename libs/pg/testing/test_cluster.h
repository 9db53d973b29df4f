// A real, throwaway PostgreSQL cluster for tests (started with tools/pg in a
// temp directory, unix socket only, fsync off), one per test process, and a
// fresh database per test. Never a mock of SQL.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace trainmesh::pg::testing {

class TestCluster {
 public:
  // The process-wide cluster, started on first use and stopped at exit.
  static TestCluster& Get();

  // DSN of the `postgres` database (superuser).
  const std::string& admin_dsn() const { return admin_dsn_; }

  // Creates an empty database with a unique name; returns its DSN.
  std::string NewDatabase();

  // Stops the cluster (immediate = as if the machine lost power) / starts it.
  absl::Status Stop(bool immediate);
  absl::Status Start();

  ~TestCluster();

 private:
  TestCluster();
  std::string dir_;
  std::string admin_dsn_;
  int databases_ = 0;
};

// Runs a shell command, returning its stdout; INTERNAL with the output when it
// exits non-zero.
absl::StatusOr<std::string> RunCommand(const std::string& command);

// Path of a file in the source tree.
std::string SourcePath(const std::string& relative);

}  // namespace trainmesh::pg::testing
