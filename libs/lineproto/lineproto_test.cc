#include "libs/lineproto/lineproto.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::lineproto {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(LineProtoTest, MetricLines) {
  Line line = ParseLine(R"({"step": 3, "metrics": {"train_loss": 0.5, "acc": 0.9}, "run": "xgb"})" "\n");
  ASSERT_TRUE(std::holds_alternative<MetricLine>(line));
  const auto& m = std::get<MetricLine>(line);
  EXPECT_EQ(m.step, 3);
  EXPECT_EQ(m.run, "xgb");
  EXPECT_THAT(m.metrics, ElementsAre(Pair("acc", 0.9), Pair("train_loss", 0.5)));
}

TEST(LineProtoTest, NonFiniteValuesAsPythonWritesThem) {
  Line line = ParseLine(R"({"step": 7, "metrics": {"loss": NaN, "grad": Infinity}})");
  ASSERT_TRUE(std::holds_alternative<MetricLine>(line));
  const auto& m = std::get<MetricLine>(line);
  EXPECT_TRUE(std::isinf(m.metrics[0].second));
  EXPECT_TRUE(std::isnan(m.metrics[1].second));
}

TEST(LineProtoTest, ChartLines) {
  Line line = ParseLine(R"({"chart": {"title": "Loss", "metrics": ["train_loss", "val_loss"]}})");
  ASSERT_TRUE(std::holds_alternative<ChartLine>(line));
  const auto& c = std::get<ChartLine>(line);
  EXPECT_EQ(c.title, "Loss");
  EXPECT_EQ(c.type, "line");
  EXPECT_THAT(c.metrics, ElementsAre("train_loss", "val_loss"));
}

TEST(LineProtoTest, EverythingElseIsALogLine) {
  for (const char* text : {"epoch 3: loss 0.5", "", "{not json", R"({"step": 1})",
                           R"({"step": -1, "metrics": {"a": 1}})", R"({"step": 1.5, "metrics": {"a": 1}})",
                           R"({"step": 1, "metrics": {"a": "high"}})", R"({"step": 1, "metrics": {}})",
                           R"({"step": 1, "metrics": {"": 1}})", R"({"chart": {"title": "x"}})",
                           R"({"chart": {"title": "x", "metrics": ["a"], "type": "pie"}})",
                           R"([1, 2, 3])", R"({"step": NaN, "metrics": {"a": 1}})"}) {
    Line line = ParseLine(text);
    ASSERT_TRUE(std::holds_alternative<LogLine>(line)) << text;
    EXPECT_EQ(std::get<LogLine>(line).text, text);
  }
  EXPECT_EQ(std::get<LogLine>(ParseLine("hello\r\n")).text, "hello");
}

}  // namespace
}  // namespace trainmesh::lineproto
