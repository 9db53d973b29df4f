// The reporter against a real gRPC server on port 0 that stores batches the
// way the metrics service does (deduplicated by batch_seq) and can break
// streams, refuse, or be down (testing/fake_metrics.h).
#include "services/trainer/metrics_reporter.h"

#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/trainer/testing/fake_metrics.h"

namespace trainmesh::trainer {
namespace {

using testing::FakeMetrics;
using testing::Server;

std::shared_ptr<trainmesh::v1::MetricsService::Stub> Stub(int port) {
  return trainmesh::v1::MetricsService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

std::vector<trainmesh::v1::MetricPoint> Points(int from, int to) {
  std::vector<trainmesh::v1::MetricPoint> out;
  for (int s = from; s < to; ++s) {
    trainmesh::v1::MetricPoint p;
    p.set_name("train_loss");
    p.set_step(s);
    p.set_value(1.0 / (s + 1));
    out.push_back(p);
  }
  return out;
}

ReporterOptions Fast() {
  ReporterOptions o;
  o.flush_interval = absl::Milliseconds(20);
  o.max_backoff = absl::Milliseconds(200);
  o.max_batch_points = 100;
  return o;
}

TEST(MetricsReporterTest, DeliversEverythingOnceInOrderWithTheJobToken) {
  FakeMetrics fake;
  Server server(&fake);
  MetricsReporter reporter(Stub(server.port()), "job-1", 2, [] { return "tok-1"; }, Fast());
  reporter.Points(Points(0, 250));
  reporter.Log(trainmesh::v1::LogLine::SYSTEM, "hello");
  reporter.AddDeviceSeconds(1.5);
  reporter.Points(Points(250, 300));
  reporter.AddDeviceSeconds(2.5);
  ASSERT_TRUE(reporter.Finish(absl::Seconds(20)));
  std::lock_guard<std::mutex> l(fake.mu);
  ASSERT_EQ(fake.points.size(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(fake.points[i], absl::StrCat("train_loss@", i));
  EXPECT_EQ(fake.logs, std::vector<std::string>{"hello"});
  EXPECT_DOUBLE_EQ(fake.device_seconds, 4.0);
  EXPECT_EQ(fake.finals, 1);
  EXPECT_EQ(fake.authorization, "Bearer tok-1");
  EXPECT_EQ(fake.streams, 1);  // one long-lived stream
}

TEST(MetricsReporterTest, ABrokenStreamResendsTheBatchWhichIsStoredOnce) {
  FakeMetrics fake;
  fake.break_after_storing = 2;
  Server server(&fake);
  MetricsReporter reporter(Stub(server.port()), "job-1", 1, [] { return "tok"; }, Fast());
  reporter.Points(Points(0, 500));
  ASSERT_TRUE(reporter.Finish(absl::Seconds(20)));
  std::lock_guard<std::mutex> l(fake.mu);
  EXPECT_EQ(fake.points.size(), 500u);
  EXPECT_EQ(fake.duplicates, 2);
  EXPECT_EQ(fake.streams, 3);
}

TEST(MetricsReporterTest, BuffersThroughAnOutageThenDelivers) {
  FakeMetrics fake;
  int port;
  {
    Server probe(&fake);
    port = probe.port();
  }  // down
  MetricsReporter reporter(Stub(port), "job-1", 1, [] { return "tok"; }, Fast());
  reporter.Points(Points(0, 120));
  // Until the reporter has met the outage.
  while (reporter.failed_deliveries() == 0) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(reporter.acked_batches(), 0);
  reporter.Points(Points(120, 200));
  Server back(&fake, port);
  ASSERT_EQ(back.port(), port);
  ASSERT_TRUE(reporter.Finish(absl::Seconds(20)));
  std::lock_guard<std::mutex> l(fake.mu);
  EXPECT_EQ(fake.points.size(), 200u);
  EXPECT_EQ(reporter.dropped(), 0);
}

TEST(MetricsReporterTest, TheBufferIsBoundedAndDropsTheOldest) {
  FakeMetrics fake;
  int port;
  {
    Server probe(&fake);
    port = probe.port();
  }
  ReporterOptions o = Fast();
  o.max_buffered = 100;
  o.max_batch_points = 1000;
  o.flush_interval = absl::Seconds(30);  // nothing leaves before Finish
  MetricsReporter reporter(Stub(port), "job-1", 1, [] { return "tok"; }, o);
  reporter.Points(Points(0, 250));
  EXPECT_EQ(reporter.dropped(), 150);
  Server back(&fake, port);
  ASSERT_TRUE(reporter.Finish(absl::Seconds(20)));
  std::lock_guard<std::mutex> l(fake.mu);
  ASSERT_EQ(fake.points.size(), 100u);
  EXPECT_EQ(fake.points.front(), "train_loss@150");
}

TEST(MetricsReporterTest, ARefusedAttemptStopsReporting) {
  FakeMetrics fake;
  fake.refuse = true;
  Server server(&fake);
  MetricsReporter reporter(Stub(server.port()), "job-1", 1, [] { return "stale"; }, Fast());
  reporter.Points(Points(0, 10));
  EXPECT_FALSE(reporter.Finish(absl::Seconds(20)));
  EXPECT_TRUE(reporter.refused());
  std::lock_guard<std::mutex> l(fake.mu);
  EXPECT_TRUE(fake.points.empty());
}

}  // namespace
}  // namespace trainmesh::trainer
