#include "libs/pg/testing/test_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "pqxx/pqxx"

namespace trainmesh::pg::testing {

std::string SourcePath(const std::string& relative) {
  const char* root = std::getenv("TRAINMESH_SOURCE_DIR");
  return absl::StrCat(root != nullptr ? root : TRAINMESH_SOURCE_DIR, "/", relative);
}

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  FILE* pipe = popen(absl::StrCat(command, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run ", command));
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int rc = pclose(pipe);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat(command, " failed (", rc, "): ", out));
  }
  return out;
}

TestCluster& TestCluster::Get() {
  static TestCluster* cluster = [] {
    auto* c = new TestCluster();
    std::atexit([] { delete cluster; });
    return c;
  }();
  return *cluster;
}

TestCluster::TestCluster() {
  const char* base = std::getenv("TRAINMESH_TEST_TMPDIR");
  std::string templ = absl::StrCat(base != nullptr ? base : "/tmp", "/tm-pg-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = templ;
  absl::StatusOr<std::string> dsn =
      RunCommand(absl::StrCat(SourcePath("tools/pg"), " start ", dir_, "/cluster --fast"));
  if (!dsn.ok()) throw std::runtime_error(std::string(dsn.status().message()));
  admin_dsn_ = std::string(absl::StripAsciiWhitespace(*dsn));
}

TestCluster::~TestCluster() {
  (void)RunCommand(absl::StrCat(SourcePath("tools/pg"), " stop ", dir_, "/cluster --immediate"));
  (void)RunCommand(absl::StrCat("rm -rf ", dir_));
}

std::string TestCluster::NewDatabase() {
  const std::string name = absl::StrCat("t", getpid(), "_", ++databases_);
  pqxx::connection conn(admin_dsn_);
  pqxx::nontransaction(conn).exec(absl::StrCat("CREATE DATABASE ", name));
  std::string dsn = admin_dsn_;
  const std::string from = "@/postgres?";
  dsn.replace(dsn.find(from), from.size(), absl::StrCat("@/", name, "?"));
  return dsn;
}

absl::Status TestCluster::Stop(bool immediate) {
  return RunCommand(absl::StrCat(SourcePath("tools/pg"), " stop ", dir_, "/cluster",
                                 immediate ? " --immediate" : ""))
      .status();
}

absl::Status TestCluster::Start() {
  return RunCommand(absl::StrCat(SourcePath("tools/pg"), " start ", dir_, "/cluster --fast"))
      .status();
}

}  // namespace trainmesh::pg::testing
