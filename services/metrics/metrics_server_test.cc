// gRPC integration tests of the metrics service: real servers on port 0, a
// real Postgres, real job tokens.
#include "services/metrics/metrics_server.h"

#include <cmath>
#include <limits>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "libs/telemetry/metrics.h"
#include "libs/identity/testing/test_keys.h"
#include "libs/pg/listener.h"
#include "libs/pg/migrations.h"
#include "libs/pg/testing/test_cluster.h"
#include "libs/server/grpc_server.h"
#include "libs/status/field_violations.h"
#include "libs/status/grpc_status.h"
#include "pqxx/pqxx"
#include "trainmesh/v1/metrics.grpc.pb.h"

namespace trainmesh::metrics {
const std::vector<pg::Migration>& Migrations();
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using trainmesh::v1::MetricPoint;

constexpr char kJob[] = "11111111-1111-1111-1111-111111111111";
constexpr char kOtherJob[] = "22222222-2222-2222-2222-222222222222";

const identity::testing::TestIssuer& Issuer() {
  static const auto* issuer = new identity::testing::TestIssuer();
  return *issuer;
}

std::string JobToken(const std::string& job, int attempt, const std::string& owner = "alice") {
  return Issuer().TokenWith(identity::JobClaims(owner, job, attempt, "agent-1"));
}

// One metrics replica: service, feeds, listener and server.
struct Replica {
  Replica(const std::string& dsn, StreamLimits limits, const std::string& prices = "cpu=3.6") {
    pool = std::make_unique<pg::ConnectionPool>(pg::PoolOptions{
        .dsn = dsn, .size = 8, .prepared = MetricsStore::PreparedStatements()});
    store = std::make_unique<MetricsStore>(pool.get());
    service = std::make_unique<MetricsService>(
        store.get(), MetricsOptions{.prices = *PriceTable::Parse(prices, "USD")});
    executor = std::make_unique<server::Executor>(8);
    points = std::make_unique<PointFeed>(
        [this](const std::string& j, int64_t a, int64_t u, int l) { return store->Points(j, a, u, l); },
        executor.get());
    logs = std::make_unique<LogFeed>(
        [this](const std::string& j, int64_t a, int64_t u, int l) { return store->Logs(j, a, u, l); },
        executor.get());
    listener = std::make_unique<pg::Listener>(
        dsn, std::vector<std::string>{MetricsStore::kChannel},
        [this](const std::string&, const std::string& payload) {
          std::vector<std::string> f = absl::StrSplit(payload, ' ');
          points->Announce(f[0], std::stoll(f[1]), std::stoll(f[2]));
          logs->Announce(f[0], std::stoll(f[3]), std::stoll(f[4]));
        },
        [this] {
          points->ResyncAll();
          logs->ResyncAll();
        });
    listener->Start();
    listener->WaitUntilListening(absl::Seconds(30));
    auth = identity::testing::AuthenticatorFor(Issuer());
    server = std::make_unique<MetricsServer>(service.get(), executor.get(), auth.get(),
                                             points.get(), logs.get(), limits);
    grpc = std::make_unique<server::GrpcServer>(
        server::ServerOptions{.address = "127.0.0.1:0", .drain_timeout = absl::Seconds(5)});
    grpc->AddService(server.get(), "trainmesh.v1.MetricsService");
    grpc->OnDrain([this] {
      points->DrainAll();
      logs->DrainAll();
    });
    if (!grpc->Start().ok()) std::abort();
    stub = trainmesh::v1::MetricsService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc->port()),
                                                       grpc::InsecureChannelCredentials()));
  }
  ~Replica() {
    grpc->Shutdown();
    listener->Stop();
    executor->Shutdown();
  }

  std::unique_ptr<pg::ConnectionPool> pool;
  std::unique_ptr<MetricsStore> store;
  std::unique_ptr<MetricsService> service;
  std::unique_ptr<server::Executor> executor;
  std::unique_ptr<PointFeed> points;
  std::unique_ptr<LogFeed> logs;
  std::unique_ptr<pg::Listener> listener;
  std::unique_ptr<identity::Authenticator> auth;
  std::unique_ptr<MetricsServer> server;
  std::unique_ptr<server::GrpcServer> grpc;
  std::unique_ptr<trainmesh::v1::MetricsService::Stub> stub;
};

std::unique_ptr<grpc::ClientContext> With(const std::string& credential, int seconds = 60) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", "Bearer " + credential);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

trainmesh::v1::ReportMetricsRequest Batch(const std::string& job, int64_t batch_seq,
                                          int64_t first_step, int n,
                                          const std::string& name = "train_loss") {
  trainmesh::v1::ReportMetricsRequest b;
  b.set_job_id(job);
  b.set_batch_seq(batch_seq);
  for (int i = 0; i < n; ++i) {
    MetricPoint* p = b.add_points();
    p->set_name(name);
    p->set_step(first_step + i);
    p->set_value(1.0 / (first_step + i + 1));
  }
  return b;
}

// A server stream with the context that keeps it open.
template <typename Item>
struct Stream {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReader<Item>> reader;
};

class MetricsServerTest : public ::testing::Test {
 protected:
  using Stub = trainmesh::v1::MetricsService::Stub;

  // StreamMetrics or StreamLogs (`rpc`) as `user`, on `request`'s job or
  // kJob when it names none, through `replica` (default: replica_).
  template <typename Request, typename Item>
  Stream<Item> Open(std::unique_ptr<grpc::ClientReader<Item>> (Stub::*rpc)(grpc::ClientContext*,
                                                                           const Request&),
                    const std::string& user, Request request = Request(),
                    Replica* replica = nullptr) {
    if (request.job_id().empty()) request.set_job_id(kJob);
    Stream<Item> stream;
    stream.ctx = With(Issuer().Token(user));
    stream.reader = ((replica != nullptr ? replica : replica_.get())->stub.get()->*rpc)(
        stream.ctx.get(), request);
    return stream;
  }

  void SetUp() override {
    dsn_ = pg::testing::TestCluster::Get().NewDatabase();
    ASSERT_TRUE(pg::Migrate(dsn_, "metrics", Migrations()).ok());
    replica_ = std::make_unique<Replica>(dsn_, StreamLimits{});
  }

  // Sends batches over one ReportMetrics stream; returns the acks.
  std::vector<trainmesh::v1::ReportMetricsResponse> Report(
      const std::string& token, const std::vector<trainmesh::v1::ReportMetricsRequest>& batches,
      grpc::Status* status = nullptr, Replica* replica = nullptr) {
    replica = replica != nullptr ? replica : replica_.get();
    auto ctx = With(token);
    auto stream = replica->stub->ReportMetrics(ctx.get());
    std::vector<trainmesh::v1::ReportMetricsResponse> acks;
    for (const auto& b : batches) {
      if (!stream->Write(b)) break;
      trainmesh::v1::ReportMetricsResponse ack;
      if (!stream->Read(&ack)) break;
      acks.push_back(ack);
    }
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    if (status != nullptr) *status = s;
    return acks;
  }

  trainmesh::v1::QueryMetricsResponse Query(const std::string& credential,
                                            trainmesh::v1::QueryMetricsRequest request,
                                            grpc::Status* status = nullptr) {
    trainmesh::v1::QueryMetricsResponse response;
    grpc::Status s = replica_->stub->QueryMetrics(With(credential).get(), request, &response);
    if (status != nullptr) *status = s;
    return response;
  }

  std::string dsn_;
  std::unique_ptr<Replica> replica_;
};

TEST_F(MetricsServerTest, IngestThenQueryIsExactNonFiniteValuesIncluded) {
  trainmesh::v1::ReportMetricsRequest b;
  b.set_job_id(kJob);
  b.set_batch_seq(1);
  const double values[] = {0.5, std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity(), 1e-300, 0.1 + 0.2};
  for (int i = 0; i < 6; ++i) {
    MetricPoint* p = b.add_points();
    p->set_name("loss");
    p->set_step(i * 10);
    p->set_value(values[i]);
    p->set_run(i % 2 == 0 ? "" : "");
    p->mutable_wall_time()->set_seconds(1700000000 + i);
    p->mutable_wall_time()->set_nanos(123456000);
  }
  b.add_logs()->set_text("epoch 1 done");
  auto* chart = b.add_charts();
  chart->set_title("Loss");
  chart->add_metrics("loss");
  grpc::Status status;
  auto acks = Report(JobToken(kJob, 1), {b}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].points_stored(), 6);
  EXPECT_EQ(acks[0].last_point_seq(), 6);

  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  auto response = Query(Issuer().Token("alice"), q);
  ASSERT_EQ(response.series_size(), 1);
  const auto& series = response.series(0);
  EXPECT_FALSE(series.downsampled());
  ASSERT_EQ(series.points_size(), 6);
  for (int i = 0; i < 6; ++i) {
    const MetricPoint& p = series.points(i);
    EXPECT_EQ(p.step(), i * 10);
    EXPECT_EQ(p.seq(), i + 1);
    EXPECT_EQ(p.wall_time().seconds(), 1700000000 + i);
    EXPECT_EQ(p.wall_time().nanos(), 123456000);
    if (std::isnan(values[i])) {
      EXPECT_TRUE(std::isnan(p.value()));
    } else {
      EXPECT_EQ(p.value(), values[i]) << i;  // bit-exact
    }
  }
  trainmesh::v1::ListMetricNamesRequest names;
  names.set_job_id(kJob);
  trainmesh::v1::ListMetricNamesResponse listed;
  ASSERT_TRUE(replica_->stub->ListMetricNames(With(Issuer().Token("alice")).get(), names, &listed).ok());
  ASSERT_EQ(listed.metrics_size(), 1);
  EXPECT_EQ(listed.metrics(0).count(), 6);
  EXPECT_EQ(listed.metrics(0).min(), 1e-300);  // finite values only
  EXPECT_EQ(listed.metrics(0).max(), 0.5);
  EXPECT_EQ(listed.metrics(0).last(), 0.1 + 0.2);
  EXPECT_EQ(listed.metrics(0).last_step(), 50);
  ASSERT_EQ(listed.charts_size(), 1);
  EXPECT_THAT(listed.charts(0).metrics(), ElementsAre("loss"));
  trainmesh::v1::GetLogsRequest logs;
  logs.set_job_id(kJob);
  trainmesh::v1::GetLogsResponse lines;
  ASSERT_TRUE(replica_->stub->GetLogs(With(Issuer().Token("alice")).get(), logs, &lines).ok());
  ASSERT_EQ(lines.lines_size(), 1);
  EXPECT_EQ(lines.lines(0).text(), "epoch 1 done");
  EXPECT_EQ(lines.lines(0).seq(), 1);
}

TEST_F(MetricsServerTest, AQueryReturnsABoundedNumberOfSeries) {
  trainmesh::v1::ReportMetricsRequest b;
  b.set_job_id(kJob);
  b.set_batch_seq(1);
  for (int i = 0; i < 80; ++i) {
    MetricPoint* p = b.add_points();
    p->set_name(absl::StrCat("m", 100 + i));
    p->set_step(1);
    p->set_value(i);
  }
  grpc::Status status;
  Report(JobToken(kJob, 1), {b}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  auto all = Query(Issuer().Token("alice"), q, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(all.series_size(), 64);  // the first 64 by name
  EXPECT_EQ(all.series(0).name(), "m100");
  EXPECT_EQ(all.series(63).name(), "m163");
  // The rest are reachable by name; asking for more than 64 at once is refused.
  q.add_names("m179");
  auto last = Query(Issuer().Token("alice"), q, &status);
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(last.series_size(), 1);
  EXPECT_EQ(last.series(0).points(0).value(), 79);
  for (int i = 0; i < 64; ++i) q.add_names(absl::StrCat("m", 100 + i));
  Query(Issuer().Token("alice"), q, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("names"));
}

// One sample of the process's Prometheus metrics (0 when absent).
double Sample(const std::string& key) {
  const auto samples = telemetry::ParseExposition(telemetry::Registry::Default().Render());
  auto it = samples.find(key);
  return it == samples.end() ? 0 : it->second;
}

TEST_F(MetricsServerTest, ARetriedBatchIsStoredOnce) {
  const std::string token = JobToken(kJob, 1);
  const double points = Sample("trainmesh_ingest_points_total");
  const double stored = Sample("trainmesh_ingest_batches_total{result=\"stored\"}");
  const double duplicate = Sample("trainmesh_ingest_batches_total{result=\"duplicate\"}");
  const std::string report_labels =
      "grpc_type=\"bidi_stream\",grpc_service=\"trainmesh.v1.MetricsService\",grpc_method=\"ReportMetrics\"";
  const double received = Sample("grpc_server_msg_received_total{" + report_labels + "}");
  auto first = Report(token, {Batch(kJob, 7, 0, 100)});
  auto again = Report(token, {Batch(kJob, 7, 0, 100)});
  // Ingest shows in the metrics: 100 points once, one batch stored, one resend.
  EXPECT_EQ(Sample("trainmesh_ingest_points_total") - points, 100);
  EXPECT_EQ(Sample("trainmesh_ingest_batches_total{result=\"stored\"}") - stored, 1);
  EXPECT_EQ(Sample("trainmesh_ingest_batches_total{result=\"duplicate\"}") - duplicate, 1);
  EXPECT_EQ(Sample("grpc_server_msg_received_total{" + report_labels + "}") - received, 2);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_FALSE(first[0].duplicate());
  EXPECT_TRUE(again[0].duplicate());
  EXPECT_EQ(again[0].points_stored(), 0);
  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  EXPECT_EQ(Query(Issuer().Token("alice"), q).series(0).total_points(), 100);
}

TEST_F(MetricsServerTest, OnlyTheCurrentAttemptsTokenMayReport) {
  ASSERT_EQ(Report(JobToken(kJob, 2), {Batch(kJob, 1, 0, 5)}).size(), 1u);
  grpc::Status status;
  Report(JobToken(kJob, 1), {Batch(kJob, 1, 0, 5)}, &status);  // a zombie of attempt 1
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("stale"));
  Report(JobToken(kOtherJob, 2), {Batch(kJob, 2, 0, 5)}, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  Report(Issuer().Token("alice", {"jobs:write"}), {Batch(kJob, 3, 0, 5)}, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  Report("garbage", {Batch(kJob, 4, 0, 5)}, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  EXPECT_EQ(Query(Issuer().Token("alice"), q).series(0).total_points(), 5);
}

TEST_F(MetricsServerTest, MalformedBatchesAreRefusedWholeWithFieldViolations) {
  auto b = Batch(kJob, 1, 0, 3);
  b.mutable_points(1)->set_name("");
  b.mutable_points(2)->set_step(-4);
  grpc::Status status;
  Report(JobToken(kJob, 1), {b}, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::vector<std::string> fields;
  for (const auto& v : status::FieldViolationsOf(status::FromGrpcStatus(status))) {
    fields.push_back(v.field);
  }
  EXPECT_THAT(fields, ElementsAre("points[1].name", "points[2].step"));
  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  EXPECT_EQ(Query(Issuer().Token("alice"), q).series_size(), 0);
}

TEST_F(MetricsServerTest, DownsamplingKeepsTheExtremesAndBoundsTheCount) {
  std::vector<trainmesh::v1::ReportMetricsRequest> batches;
  for (int b = 0; b < 4; ++b) {
    auto batch = Batch(kJob, b, b * 5000, 5000);
    for (auto& p : *batch.mutable_points()) p.set_value(std::sin(p.step() / 100.0));
    batches.push_back(batch);
  }
  batches[2].mutable_points(2345)->set_value(1000);   // step 12345
  batches[3].mutable_points(10)->set_value(-1000);    // step 15010
  Report(JobToken(kJob, 1), batches);
  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  q.set_max_points(200);
  auto response = Query(Issuer().Token("alice"), q);
  ASSERT_EQ(response.series_size(), 1);
  const auto& s = response.series(0);
  EXPECT_TRUE(s.downsampled());
  EXPECT_EQ(s.total_points(), 20000);
  EXPECT_LE(s.points_size(), 200);
  EXPECT_GE(s.points_size(), 150);
  double lo = 0, hi = 0;
  int64_t prev = -1;
  for (const auto& p : s.points()) {
    lo = std::min(lo, p.value());
    hi = std::max(hi, p.value());
    EXPECT_GE(p.step(), prev);  // in step order
    prev = p.step();
  }
  EXPECT_EQ(hi, 1000);
  EXPECT_EQ(lo, -1000);
  // A step range narrow enough comes back whole.
  q.set_min_step(12340);
  q.set_max_step(12349);
  auto narrow = Query(Issuer().Token("alice"), q);
  EXPECT_FALSE(narrow.series(0).downsampled());
  EXPECT_EQ(narrow.series(0).points_size(), 10);
}

// Reads a metrics stream until `want` points arrived; returns their seqs.
std::vector<int64_t> ReadPoints(grpc::ClientReader<trainmesh::v1::MetricsStreamItem>* reader,
                                size_t want, int64_t* last_seq, bool* lagged = nullptr) {
  std::vector<int64_t> seqs;
  trainmesh::v1::MetricsStreamItem item;
  while (seqs.size() < want && reader->Read(&item)) {
    for (const auto& p : item.points()) seqs.push_back(p.seq());
    *last_seq = item.seq();
    if (lagged != nullptr && item.lagged()) *lagged = true;
  }
  return seqs;
}

TEST_F(MetricsServerTest, StreamReplaysFollowsAndResumesWithoutGapsOrRepeats) {
  const std::string token = JobToken(kJob, 1);
  Report(token, {Batch(kJob, 1, 0, 50), Batch(kJob, 2, 50, 50)});
  trainmesh::v1::StreamMetricsRequest request;
  request.set_job_id(kJob);
  std::vector<int64_t> seen;
  int64_t last = 0;
  {
    auto ctx = With(Issuer().Token("alice"));
    auto reader = replica_->stub->StreamMetrics(ctx.get(), request);
    auto got = ReadPoints(reader.get(), 100, &last);  // the backlog
    seen.insert(seen.end(), got.begin(), got.end());
    Report(token, {Batch(kJob, 3, 100, 30)});  // live
    got = ReadPoints(reader.get(), 30, &last);
    seen.insert(seen.end(), got.begin(), got.end());
    ctx->TryCancel();  // the connection drops
  }
  Report(token, {Batch(kJob, 4, 130, 20)});  // while disconnected
  request.set_after_seq(last);
  auto ctx = With(Issuer().Token("alice"));
  auto reader = replica_->stub->StreamMetrics(ctx.get(), request);
  auto got = ReadPoints(reader.get(), 20, &last);
  seen.insert(seen.end(), got.begin(), got.end());
  std::vector<int64_t> expected(150);
  for (int i = 0; i < 150; ++i) expected[i] = i + 1;
  EXPECT_EQ(seen, expected);
  ctx->TryCancel();
}

TEST_F(MetricsServerTest, NamesFilterTheStream) {
  const std::string token = JobToken(kJob, 1);
  auto b = Batch(kJob, 1, 0, 10, "train_loss");
  auto val = Batch(kJob, 2, 0, 10, "val_loss");
  Report(token, {b, val});
  trainmesh::v1::StreamMetricsRequest request;
  request.set_job_id(kJob);
  request.add_names("val_loss");
  auto ctx = With(Issuer().Token("alice"));
  auto reader = replica_->stub->StreamMetrics(ctx.get(), request);
  trainmesh::v1::MetricsStreamItem item;
  ASSERT_TRUE(reader->Read(&item));
  ASSERT_EQ(item.points_size(), 10);
  for (const auto& p : item.points()) EXPECT_EQ(p.name(), "val_loss");
  EXPECT_EQ(item.seq(), 20);
  ctx->TryCancel();
}

TEST_F(MetricsServerTest, ASlowSubscriberNeitherSlowsIngestNorLosesPoints) {
  replica_.reset();
  replica_ = std::make_unique<Replica>(dsn_, StreamLimits{.max_queued_items = 200, .read_batch = 500});
  const std::string token = JobToken(kJob, 1);
  Report(token, {Batch(kJob, 0, 0, 10)});
  auto [ctx, reader] = Open(&Stub::StreamMetrics, "alice");
  int64_t last = 0;
  ASSERT_EQ(ReadPoints(reader.get(), 10, &last).size(), 10u);  // subscribed, then stops reading
  // Ingest goes on at full speed while the subscriber reads nothing.
  std::vector<trainmesh::v1::ReportMetricsRequest> batches;
  for (int b = 1; b <= 40; ++b) batches.push_back(Batch(kJob, b, b * 1000, 1000));
  auto acks = Report(token, batches);
  ASSERT_EQ(acks.size(), 40u);
  EXPECT_EQ(acks.back().last_point_seq(), 40010);
  // The subscriber then receives every point once, in order, told it lagged.
  bool lagged = false;
  std::vector<int64_t> seqs = ReadPoints(reader.get(), 40000, &last, &lagged);
  ASSERT_EQ(seqs.size(), 40000u);
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], static_cast<int64_t>(i) + 11);
  EXPECT_TRUE(lagged);
  ctx->TryCancel();
}

TEST_F(MetricsServerTest, PointsReachSubscribersOfAnotherReplica) {
  Replica other(dsn_, StreamLimits{});
  auto [ctx, reader] = Open(&Stub::StreamMetrics, "alice", {}, &other);
  // Subscribed on `other` (the stream is open once it reads the empty backlog),
  // written through `replica_`.
  while (other.points->subscribers() == 0) std::this_thread::yield();
  Report(JobToken(kJob, 1), {Batch(kJob, 1, 0, 25)});
  int64_t last = 0;
  EXPECT_EQ(ReadPoints(reader.get(), 25, &last).size(), 25u);
  ctx->TryCancel();
}

TEST_F(MetricsServerTest, OtherUsersSeeNothing) {
  Report(JobToken(kJob, 1, "alice"), {Batch(kJob, 1, 0, 5)});
  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  grpc::Status status;
  Query(Issuer().Token("bob"), q, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  auto [ctx, reader] = Open(&Stub::StreamMetrics, "bob");
  trainmesh::v1::MetricsStreamItem item;
  EXPECT_FALSE(reader->Read(&item));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  // Bob's job token for Alice's job does not let him write either.
  Report(JobToken(kJob, 1, "bob"), {Batch(kJob, 2, 5, 5)}, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Services with the internal scope read any job (the jobs service's GetJob).
  trainmesh::v1::GetRecentMetricsRequest recent;
  recent.set_job_id(kJob);
  trainmesh::v1::GetRecentMetricsResponse got;
  ASSERT_TRUE(replica_->stub
                  ->GetRecentMetrics(With(Issuer().Token("jobs-service", {"internal"})).get(),
                                     recent, &got)
                  .ok());
  EXPECT_EQ(got.points_size(), 5);
  EXPECT_EQ(replica_->stub->GetRecentMetrics(With(Issuer().Token("bob")).get(), recent, &got)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(MetricsServerTest, CostAccruesAndTheFinalBatchRecordsIt) {
  const std::string token = JobToken(kJob, 1);
  auto b1 = Batch(kJob, 1, 0, 1);
  b1.set_device_type("cpu");
  b1.set_device_seconds(10);  // 3.6 per hour -> 0.01
  auto b2 = Batch(kJob, 2, 1, 1);
  b2.set_device_type("cpu");
  b2.set_device_seconds(20);
  b2.set_final(true);
  Report(token, {b1, b2});
  trainmesh::v1::GetCostRequest request;
  request.set_job_id(kJob);
  trainmesh::v1::Cost cost;
  ASSERT_TRUE(replica_->stub->GetCost(With(Issuer().Token("alice")).get(), request, &cost).ok());
  EXPECT_NEAR(cost.amount(), 0.03, 1e-12);
  EXPECT_EQ(cost.device_seconds(), 30);
  EXPECT_EQ(cost.currency(), "USD");
  EXPECT_EQ(cost.device_type(), "cpu");
  pqxx::connection conn(dsn_);
  pqxx::result r = pqxx::nontransaction(conn).exec(
      "SELECT attempt, amount, device_seconds FROM metrics.cost_records");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<int>(), 1);
  EXPECT_NEAR(r[0][1].as<double>(), 0.03, 1e-12);
  trainmesh::v1::GetRecentMetricsRequest recent;
  recent.set_job_id(kJob);
  trainmesh::v1::GetRecentMetricsResponse got;
  ASSERT_TRUE(replica_->stub->GetRecentMetrics(With(Issuer().Token("svc", {"internal"})).get(),
                                               recent, &got).ok());
  EXPECT_EQ(got.points_size(), 2);
  EXPECT_NEAR(got.cost().amount(), 0.03, 1e-12);
}

TEST_F(MetricsServerTest, LogsStreamAndRestAgentsReportWithATokenInTheBody) {
  trainmesh::v1::ReportMetricsBatchRequest rest;
  rest.set_job_id(kJob);
  auto* b = rest.add_batches();
  b->set_job_token(JobToken(kJob, 1));
  b->set_batch_seq(1);
  for (int i = 0; i < 3; ++i) b->add_logs()->set_text(absl::StrCat("line ", i));
  grpc::ClientContext plain;  // no authorization header at all
  trainmesh::v1::ReportMetricsBatchResponse acks;
  grpc::Status s = replica_->stub->ReportMetricsBatch(&plain, rest, &acks);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(acks.acks(0).logs_stored(), 3);
  auto [ctx, reader] = Open(&Stub::StreamLogs, "alice");
  trainmesh::v1::LogStreamItem item;
  ASSERT_TRUE(reader->Read(&item));
  ASSERT_EQ(item.lines_size(), 3);
  EXPECT_EQ(item.lines(2).text(), "line 2");
  EXPECT_EQ(item.seq(), 3);
  ctx->TryCancel();
}

TEST_F(MetricsServerTest, AJobThatReportedNothingReadsEmptyAndStreamsOnceItDoes) {
  trainmesh::v1::QueryMetricsRequest q;
  q.set_job_id(kJob);
  grpc::Status status;
  EXPECT_EQ(Query(Issuer().Token("alice"), q, &status).series_size(), 0);
  EXPECT_TRUE(status.ok());
  auto [ctx, reader] = Open(&Stub::StreamMetrics, "alice");
  while (replica_->points->subscribers() == 0) std::this_thread::yield();
  Report(JobToken(kJob, 1), {Batch(kJob, 1, 0, 3)});
  int64_t last = 0;
  EXPECT_EQ(ReadPoints(reader.get(), 3, &last).size(), 3u);
  ctx->TryCancel();
}

TEST_F(MetricsServerTest, ShutdownEndsStreamsWithAResumeHint) {
  Report(JobToken(kJob, 1), {Batch(kJob, 1, 0, 3)});
  auto [ctx, reader] = Open(&Stub::StreamMetrics, "alice");
  int64_t last = 0;
  ASSERT_EQ(ReadPoints(reader.get(), 3, &last).size(), 3u);
  replica_->grpc->Shutdown();
  trainmesh::v1::MetricsStreamItem item;
  EXPECT_FALSE(reader->Read(&item));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("after_seq"));
}

}  // namespace
}  // namespace trainmesh::metrics
