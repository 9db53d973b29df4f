#include "services/common/config.h"

#include <map>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, config_test_port, 50051, "a port");
ABSL_FLAG(std::string, config_test_dsn, "postgresql:///x", "a dsn");

namespace trainmesh::config {
namespace {

using ::testing::HasSubstr;

const char* Lookup(const std::map<std::string, std::string>& env, const char* name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : it->second.c_str();
}

TEST(ConfigTest, EnvNames) {
  EXPECT_EQ(EnvNameForFlag("listen_port"), "TRAINMESH_LISTEN_PORT");
}

TEST(ConfigTest, EnvironmentOverridesDefaultAndCommandLineOverridesEnvironment) {
  std::map<std::string, std::string> env = {
      {"TRAINMESH_CONFIG_TEST_PORT", "7000"},
      {"TRAINMESH_CONFIG_TEST_DSN", "postgresql://env"}};
  ASSERT_TRUE(ApplyEnvironment([&](const char* n) { return Lookup(env, n); }).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_config_test_port), 7000);
  EXPECT_EQ(absl::GetFlag(FLAGS_config_test_dsn), "postgresql://env");

  char arg0[] = "prog";
  char arg1[] = "--config_test_port=8000";
  char* argv[] = {arg0, arg1};
  absl::ParseCommandLine(2, argv);
  EXPECT_EQ(absl::GetFlag(FLAGS_config_test_port), 8000);
  EXPECT_EQ(absl::GetFlag(FLAGS_config_test_dsn), "postgresql://env");
}

TEST(ConfigTest, BadEnvironmentValueNamesTheVariable) {
  std::map<std::string, std::string> env = {{"TRAINMESH_CONFIG_TEST_PORT", "seven"}};
  absl::Status s = ApplyEnvironment([&](const char* n) { return Lookup(env, n); });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("TRAINMESH_CONFIG_TEST_PORT"));
}

}  // namespace
}  // namespace trainmesh::config
