#include "libs/datasets/frames.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::datasets {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TestData(const std::string& name) {
  const char* src = std::getenv("TRAINMESH_SOURCE_DIR");
  return absl::StrCat(src != nullptr ? src : ".", "/libs/datasets/testdata/", name);
}

std::string Write(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), name);
  std::ofstream(path) << text;
  return path;
}

Source Synthetic(const std::string& url) {
  auto ref = recipes::ParseDatasetUrl(url);
  EXPECT_TRUE(ref.ok()) << ref.status();
  auto s = Resolve(*ref, {});
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(FramesTest, NumpySavezArchivesRead) {
  auto arrays = ReadNpz(TestData("demos.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  const Matrix& obs = arrays->at("obs");
  EXPECT_EQ(obs.rows, 4);
  EXPECT_EQ(obs.cols, 3);
  EXPECT_EQ(obs.data[5], 5.0f);
  EXPECT_THAT(arrays->at("act").data, ElementsAre(0.5f, 1.5f, 2.5f, 3.5f));
  EXPECT_THAT(arrays->at("steps").data, ElementsAre(0, 1, 2, 3));
  auto demos = ReadDemonstrations(TestData("demos.npz"));
  ASSERT_TRUE(demos.ok()) << demos.status();
  EXPECT_EQ(demos->act.cols, 1);
  auto compressed = ReadNpz(TestData("compressed.npz"));
  EXPECT_THAT(std::string(compressed.status().message()), HasSubstr("numpy.savez"));
}

TEST(FramesTest, CsvDemonstrationsNeedObsAndActColumns) {
  auto ok = ReadDemonstrations(Write("d.csv", "obs_0,obs_1,act_0\n1,2,3\n4,5,6\n"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(ok->obs.data, ElementsAre(1, 2, 4, 5));
  auto wrong = ReadDemonstrations(Write("w.csv", "a,b\n1,2\n3,4\n"));
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("obs_*"));
  auto missing = ReadDemonstrations(Write("m.csv", "obs_0,act_0\n1,\n3,4\n"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("row 1"));
}

TEST(FramesTest, TablesTellNumbersFromText) {
  Table t{{"n", "s", "gap"}, {{"1.5", "a", ""}, {"2", "b", "3"}}};
  Frame f = FromTable(t);
  EXPECT_TRUE(f.Find("n")->numeric);
  EXPECT_FALSE(f.Find("s")->numeric);
  EXPECT_TRUE(std::isnan(f.Find("gap")->numbers[0]));
  EXPECT_EQ(f.Find("nope"), nullptr);
}

TEST(FramesTest, ReachDemonstrationsFollowTheExpert) {
  auto d = SyntheticDemonstrations(Synthetic("synthetic://reach?samples=500&obs_dim=10&noise=0"));
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->obs.cols, 10);
  ASSERT_EQ(d->act.cols, 2);
  // The expert's step reduces the distance to the target (first-order check).
  int closer = 0;
  for (int64_t i = 0; i < d->obs.rows; ++i) {
    const float* o = &d->obs.data[i * 10];
    const float* a = &d->act.data[i * 2];
    const double q1 = std::atan2(o[3], o[2]), q2 = std::atan2(o[5], o[4]);
    auto ee = [&](double p1, double p2) {
      return std::pair{std::cos(p1) + 0.8 * std::cos(p1 + p2), std::sin(p1) + 0.8 * std::sin(p1 + p2)};
    };
    auto [ex, ey] = ee(q1, q2);
    auto [nx, ny] = ee(q1 + a[0], q2 + a[1]);
    const double before = std::hypot(o[6] - ex, o[7] - ey), after = std::hypot(o[6] - nx, o[7] - ny);
    closer += after < before;
  }
  EXPECT_GT(closer, d->obs.rows * 95 / 100);
  // Same URL, same data; another seed, other data.
  auto again = SyntheticDemonstrations(Synthetic("synthetic://reach?samples=500&obs_dim=10&noise=0"));
  EXPECT_EQ(again->act.data, d->act.data);
  auto other = SyntheticDemonstrations(Synthetic("synthetic://reach?samples=500&obs_dim=10&seed=3"));
  EXPECT_NE(other->act.data, d->act.data);
  EXPECT_FALSE(SyntheticDemonstrations(Synthetic("synthetic://reach?obs_dim=2")).ok());
  EXPECT_FALSE(SyntheticDemonstrations(Synthetic("synthetic://reach?samples=many")).ok());
}

TEST(FramesTest, PendulumBlobsFriedmanText) {
  auto p = SyntheticDemonstrations(Synthetic("synthetic://pendulum?samples=100"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->obs.cols, 3);
  auto blobs = SyntheticFrame(Synthetic("synthetic://blobs?rows=300&features=3&classes=5"));
  ASSERT_TRUE(blobs.ok());
  std::set<std::string> labels(blobs->Find("label")->texts.begin(), blobs->Find("label")->texts.end());
  EXPECT_EQ(labels.size(), 5u);
  auto friedman = SyntheticFrame(Synthetic("synthetic://friedman?rows=50"));
  ASSERT_TRUE(friedman.ok());
  EXPECT_EQ(friedman->columns.size(), 11u);
  EXPECT_TRUE(friedman->Find("y")->numeric);
  auto text = SyntheticText(Synthetic("synthetic://text?bytes=5000"));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->size(), 5000u);
  EXPECT_THAT(*text, HasSubstr(" the "));
  EXPECT_EQ(SyntheticText(Synthetic("synthetic://words")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace trainmesh::datasets
