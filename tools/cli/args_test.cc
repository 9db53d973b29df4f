#include "tools/cli/args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::cli {
namespace {

using ::testing::ElementsAre;

TEST(ArgsTest, CommandPositionalsAndFlags) {
  auto args = Parse({"submit", "--model", "tabular", "-p", "steps=10", "--param=lr=0.1",
                     "--wait", "-o", "json", "extra"},
                    {"model", "param", "output"}, {"wait"}, {{"p", "param"}, {"o", "output"}});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->command, "submit");
  EXPECT_EQ(args->Get("model"), "tabular");
  EXPECT_THAT(args->All("param"), ElementsAre("steps=10", "lr=0.1"));
  EXPECT_TRUE(args->Has("wait"));
  EXPECT_EQ(args->Get("output"), "json");
  EXPECT_THAT(args->positional, ElementsAre("extra"));
  EXPECT_EQ(args->Get("missing", "dflt"), "dflt");
}

TEST(ArgsTest, Errors) {
  EXPECT_EQ(Parse({"get", "--bogus"}, {}, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"get", "--model"}, {"model"}, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ArgsTest, DoubleDashEndsFlags) {
  auto args = Parse({"get", "--", "--not-a-flag"}, {}, {}, {});
  ASSERT_TRUE(args.ok());
  EXPECT_THAT(args->positional, ElementsAre("--not-a-flag"));
}

TEST(ArgsTest, EnvFile) {
  auto env = ParseEnvFile(
      "# written by tools/up\nTRAINMESH_ENDPOINT=127.0.0.1:7001\nexport "
      "TRAINMESH_TOKEN='abc.def'\n\nBROKEN\n");
  EXPECT_EQ(env["TRAINMESH_ENDPOINT"], "127.0.0.1:7001");
  EXPECT_EQ(env["TRAINMESH_TOKEN"], "abc.def");
  EXPECT_EQ(env.count("BROKEN"), 0u);
}

}  // namespace
}  // namespace trainmesh::cli
