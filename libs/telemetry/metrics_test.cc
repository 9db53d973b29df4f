#include "libs/telemetry/metrics.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::telemetry {
namespace {

using ::testing::HasSubstr;

TEST(Metrics, CountersAndGaugesRenderPerLabelValues) {
  Registry r;
  auto& calls = r.AddCounter("calls_total", "Calls made.", {"method", "code"});
  calls.With({"Get", "OK"}).Add();
  calls.With({"Get", "OK"}).Add(2);
  calls.With({"Put", "NotFound"}).Add();
  r.AddGauge("depth", "Queue depth.", {}).With({}).Set(7.5);
  // Adding the family again returns the same one.
  r.AddCounter("calls_total", "Calls made.", {"method", "code"}).With({"Get", "OK"}).Add();

  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("# HELP calls_total Calls made.\n# TYPE calls_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE depth gauge\ndepth 7.5\n"));
  const auto samples = ParseExposition(text);
  EXPECT_EQ(samples.at("calls_total{method=\"Get\",code=\"OK\"}"), 4);
  EXPECT_EQ(samples.at("calls_total{method=\"Put\",code=\"NotFound\"}"), 1);
  EXPECT_EQ(samples.size(), 3u);
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry r;
  auto& h = r.AddHistogram("latency_seconds", "Latency.", {"route"}, {0.1, 1});
  h.With({"/a"}).Observe(0.05);
  h.With({"/a"}).Observe(0.1);  // on the bound: counts in it
  h.With({"/a"}).Observe(0.5);
  h.With({"/a"}).Observe(3);
  const auto s = ParseExposition(r.Render());
  EXPECT_EQ(s.at("latency_seconds_bucket{route=\"/a\",le=\"0.1\"}"), 2);
  EXPECT_EQ(s.at("latency_seconds_bucket{route=\"/a\",le=\"1\"}"), 3);
  EXPECT_EQ(s.at("latency_seconds_bucket{route=\"/a\",le=\"+Inf\"}"), 4);
  EXPECT_EQ(s.at("latency_seconds_count{route=\"/a\"}"), 4);
  EXPECT_DOUBLE_EQ(s.at("latency_seconds_sum{route=\"/a\"}"), 3.65);
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  Registry r;
  r.AddCounter("odd_total", "Line one\nback\\slash", {"v"}).With({"a\"b\\c\nd"}).Add();
  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("# HELP odd_total Line one\\nback\\\\slash\n"));
  EXPECT_THAT(text, HasSubstr("odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(Metrics, ValuesKeepTheirPrecision) {
  EXPECT_EQ(FormatValue(1234567891), "1234567891");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
}

TEST(Metrics, CollectorsRunAtScrapeUntilTheirRegistrationEnds) {
  Registry r;
  int scrapes = 0;
  {
    Registry::Registration reg = r.AddCollector([&scrapes](Exposition& out) {
      ++scrapes;
      out.Family("rows", "Rows in a table.", "gauge");
      out.Sample("rows", {{"table", "queue"}}, scrapes * 10);
    });
    EXPECT_EQ(ParseExposition(r.Render()).at("rows{table=\"queue\"}"), 10);
    EXPECT_EQ(ParseExposition(r.Render()).at("rows{table=\"queue\"}"), 20);
  }
  EXPECT_THAT(r.Render(), ::testing::Not(HasSubstr("rows")));
  EXPECT_EQ(scrapes, 2);
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  auto& c = r.AddCounter("n_total", "n", {"k"});
  auto& h = r.AddHistogram("h_seconds", "h", {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        c.With({t % 2 == 0 ? "even" : "odd"}).Add();
        h.With({}).Observe(0.001 * (i % 7));
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto s = ParseExposition(r.Render());
  EXPECT_EQ(s.at("n_total{k=\"even\"}") + s.at("n_total{k=\"odd\"}"), 40000);
  EXPECT_EQ(s.at("h_seconds_count"), 40000);
  EXPECT_EQ(s.at("h_seconds_bucket{le=\"+Inf\"}"), 40000);
}

TEST(Metrics, TheDefaultRegistryDescribesTheProcess) {
  const auto s = ParseExposition(Registry::Default().Render());
  EXPECT_GT(s.at("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(s.at("process_open_fds"), 2);
  EXPECT_GT(s.at("process_start_time_seconds"), 1.6e9);
  EXPECT_GE(s.at("process_cpu_seconds_total"), 0);
}

}  // namespace
}  // namespace trainmesh::telemetry
