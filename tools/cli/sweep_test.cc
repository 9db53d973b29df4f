#include "tools/cli/sweep.h"

#include <cmath>
#include <set>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(SweepTest, GridValuesSplitOutsideBracketsAndQuotes) {
  auto grid = ParseGridFlag(R"(hidden_sizes=[64,64],[128],{"a":[1,2]},"x,y",0.1)");
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->first, "hidden_sizes");
  EXPECT_THAT(grid->second, ElementsAre("[64,64]", "[128]", R"({"a":[1,2]})", R"("x,y")", "0.1"));
  EXPECT_THAT(ParseGridFlag(R"(s="a\",b",c)")->second, ElementsAre(R"("a\",b")", "c"));
  for (const char* bad : {"lr", "=1,2", "lr=", "lr=1,,2", "lr=[1,2", "lr=1]", "lr=\"open"}) {
    EXPECT_EQ(ParseGridFlag(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(SweepTest, RangesAndTheirErrors) {
  auto r = ParseRangeFlag("learning_rate=1e-4:1e-1:log");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->key, "learning_rate");
  EXPECT_DOUBLE_EQ(r->low, 1e-4);
  EXPECT_DOUBLE_EQ(r->high, 0.1);
  EXPECT_TRUE(r->log);
  EXPECT_TRUE(ParseRangeFlag("batch_size=16:128:int")->integer);
  EXPECT_THAT(ParseRangeFlag("lr=0:1:log").status().message(), HasSubstr("above 0"));
  EXPECT_THAT(ParseRangeFlag("lr=2:1").status().message(), HasSubstr("LOW is above HIGH"));
  EXPECT_THAT(ParseRangeFlag("b=1.5:3:int").status().message(), HasSubstr("whole-number"));
  for (const char* bad : {"lr=1", "lr=a:b", "lr=1:2:cubic", "lr=1:2:log:x", "lr=nan:1", "lr"}) {
    EXPECT_EQ(ParseRangeFlag(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(SweepTest, GridIsTheProductWithTheLastKeyFastest) {
  SweepSpec spec;
  spec.grid = {{"lr", {"0.1", "0.01"}}, {"hidden", {"[64]", "[128]", "[256]"}}};
  auto points = ExpandSweep(spec, 100);
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 6u);
  EXPECT_THAT((*points)[0], ElementsAre(Pair("lr", "0.1"), Pair("hidden", "[64]")));
  EXPECT_THAT((*points)[1], ElementsAre(Pair("lr", "0.1"), Pair("hidden", "[128]")));
  EXPECT_THAT((*points)[3], ElementsAre(Pair("lr", "0.01"), Pair("hidden", "[64]")));
  EXPECT_THAT((*points)[5], ElementsAre(Pair("lr", "0.01"), Pair("hidden", "[256]")));
}

TEST(SweepTest, RandomDrawsStayInRangeAndRepeatWithTheSeed) {
  SweepSpec spec;
  spec.grid = {{"activation", {"relu", "tanh"}}};
  spec.random = {{.key = "lr", .low = 1e-4, .high = 1e-1, .log = true},
                 {.key = "batch", .low = 16, .high = 18, .integer = true},
                 {.key = "dropout", .low = 0, .high = 0.5}};
  spec.trials = 50;
  spec.seed = 7;
  auto points = ExpandSweep(spec, 1000);
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 100u);
  std::set<std::string> batches;
  int small_lr = 0;
  for (const SweepPoint& p : *points) {
    ASSERT_EQ(p.size(), 4u);
    double lr, batch, dropout;
    ASSERT_TRUE(absl::SimpleAtod(p[1].second, &lr));
    ASSERT_TRUE(absl::SimpleAtod(p[2].second, &batch));
    ASSERT_TRUE(absl::SimpleAtod(p[3].second, &dropout));
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-1);
    EXPECT_EQ(batch, std::floor(batch)) << p[2].second;  // printed as a whole number
    EXPECT_GE(batch, 16);
    EXPECT_LE(batch, 18);
    EXPECT_GE(dropout, 0);
    EXPECT_LE(dropout, 0.5);
    batches.insert(p[2].second);
    if (lr < 1e-2) ++small_lr;
  }
  EXPECT_EQ(batches, (std::set<std::string>{"16", "17", "18"}));  // both ends drawn
  // Log-uniform: two of the three decades lie below 1e-2 (a uniform draw
  // would put about 9 % there).
  EXPECT_GT(small_lr, 40);
  EXPECT_EQ((*points)[0][0].second, "relu");
  EXPECT_EQ((*points)[50][0].second, "tanh");
  auto again = ExpandSweep(spec, 1000);
  EXPECT_EQ(*again, *points);
  spec.seed = 8;
  EXPECT_NE(*ExpandSweep(spec, 1000), *points);
}

TEST(SweepTest, DrawsArePrintedInsideTheirRange) {
  // Six significant digits would round every draw here to 0.123457, past HIGH.
  SweepSpec spec;
  spec.random = {{.key = "x", .low = 0.1234567, .high = 0.1234568}};
  spec.trials = 20;
  auto points = ExpandSweep(spec, 100);
  ASSERT_TRUE(points.ok()) << points.status();
  for (const SweepPoint& p : *points) {
    double v;
    ASSERT_TRUE(absl::SimpleAtod(p[0].second, &v)) << p[0].second;
    EXPECT_GE(v, 0.1234567) << p[0].second;
    EXPECT_LE(v, 0.1234568) << p[0].second;
  }
}

TEST(SweepTest, LimitsAndRepeatedKeys) {
  SweepSpec spec;
  spec.grid = {{"a", {"1", "2", "3", "4"}}, {"b", {"1", "2", "3", "4"}}};
  EXPECT_TRUE(ExpandSweep(spec, 16).ok());
  EXPECT_THAT(ExpandSweep(spec, 15).status().message(), HasSubstr("more than 15 jobs"));
  // A product that would overflow size_t is refused, not wrapped around.
  SweepSpec huge;
  for (int i = 0; i < 40; ++i)
    huge.grid.push_back({"k" + std::to_string(i), std::vector<std::string>(10, "1")});
  EXPECT_EQ(ExpandSweep(huge, 256).status().code(), absl::StatusCode::kInvalidArgument);
  spec.random = {{.key = "a", .low = 0, .high = 1}};
  EXPECT_THAT(ExpandSweep(spec, 100).status().message(), HasSubstr("a is swept twice"));
  SweepSpec trials;
  trials.random = {{.key = "x", .low = 0, .high = 1}};
  trials.trials = 0;
  EXPECT_EQ(ExpandSweep(trials, 100).status().code(), absl::StatusCode::kInvalidArgument);
  // No range: --trials does not multiply the grid.
  SweepSpec only_grid;
  only_grid.grid = {{"a", {"1", "2"}}};
  only_grid.trials = 5;
  EXPECT_EQ(ExpandSweep(only_grid, 100)->size(), 2u);
}

}  // namespace
}  // namespace trainmesh::cli
