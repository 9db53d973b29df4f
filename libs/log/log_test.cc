#include "libs/log/log.h"

#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::log {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetSinkForTesting([this](absl::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override { SetSinkForTesting(nullptr); }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, WritesOneJsonObjectPerLine) {
  Init("jobs");
  TM_LOG(Info, "job created").With("job_id", "j-1").With("attempt", 2).With("ok", true);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], StartsWith("{\"ts\":\""));
  EXPECT_THAT(lines_[0], HasSubstr("\"level\":\"info\",\"service\":\"jobs\",\"msg\":\"job created\""));
  EXPECT_THAT(lines_[0], HasSubstr("\"job_id\":\"j-1\",\"attempt\":2,\"ok\":true}\n"));
}

TEST_F(LogTest, EscapesStringsAndNonFiniteNumbers) {
  TM_LOG(Warning, "quote \" and\nnewline")
      .With("loss", std::numeric_limits<double>::quiet_NaN())
      .With("ctl", std::string("\x01"));
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr("\"msg\":\"quote \\\" and\\nnewline\""));
  EXPECT_THAT(lines_[0], HasSubstr("\"loss\":\"NaN\""));
  EXPECT_THAT(lines_[0], HasSubstr("\"ctl\":\"\\u0001\""));
}

TEST_F(LogTest, DebugIsFilteredAtInfo) {
  Init("jobs");
  TM_LOG(Debug, "noise").With("x", 1);
  EXPECT_TRUE(lines_.empty());
  EXPECT_FALSE(Enabled(Level::kDebug));
  EXPECT_TRUE(Enabled(Level::kError));
}

}  // namespace
}  // namespace trainmesh::log
