#include "tools/cli/progress.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::cli {
namespace {

TEST(ProgressLineTest, ShowsBarPercentStepLossRateAndEta) {
  ProgressView v;
  v.state = "RUNNING";
  v.step = 400;
  v.total_steps = 1000;
  v.fraction = 0.4;
  v.train_loss = 0.12345;
  v.samples_per_second = 2150;
  v.eta = absl::Seconds(72);
  EXPECT_EQ(ProgressLine(v, 0),
            "RUNNING [##########--------------]  40%  step 400/1000  loss 0.1235  2.1k samples/s  ETA 1m12s");
  // Cut to the terminal's width.
  EXPECT_EQ(ProgressLine(v, 20).size(), 20u);
}

TEST(ProgressLineTest, DerivesTheFractionAndLeavesOutWhatIsUnknown) {
  ProgressView v;
  v.state = "RUNNING";
  v.step = 5;
  v.total_steps = 10;
  EXPECT_EQ(ProgressLine(v, 0), "RUNNING [############------------]  50%  step 5/10");
  v.total_steps = 0;
  v.step = 0;
  v.fraction = 7;  // nonsense from a script job is clamped
  EXPECT_EQ(ProgressLine(v, 0), "RUNNING [########################] 100%");
}

TEST(ShortDurationTest, Formats) {
  EXPECT_EQ(ShortDuration(absl::Seconds(45)), "45s");
  EXPECT_EQ(ShortDuration(absl::Seconds(125)), "2m05s");
  EXPECT_EQ(ShortDuration(absl::Hours(2) + absl::Minutes(3)), "2h03m");
  EXPECT_EQ(ShortDuration(-absl::Seconds(3)), "0s");
}

}  // namespace
}  // namespace trainmesh::cli
