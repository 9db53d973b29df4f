#include "libs/server/grpc_server.h"

#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "libs/http/http_get.h"
#include "libs/server/executor.h"
#include "libs/server/unary.h"
#include "trainmesh/v1/jobs.grpc.pb.h"

namespace trainmesh::server {
namespace {

using ::testing::HasSubstr;

// ListRecipes blocks until released, so a test can hold a call in flight.
class SlowService : public trainmesh::v1::JobService::CallbackService {
 public:
  explicit SlowService(Executor& executor) : executor_(executor) {}
  grpc::ServerUnaryReactor* ListRecipes(grpc::CallbackServerContext* context,
                                        const trainmesh::v1::ListRecipesRequest*,
                                        trainmesh::v1::ListRecipesResponse* response) override {
    return RunUnary(context, executor_, [this, response] {
      if (!started.HasBeenNotified()) started.Notify();
      release.WaitForNotification();
      response->add_recipes()->set_name("slow");
      return absl::OkStatus();
    });
  }
  absl::Notification started, release;

  // Sends one event, then stays open until the client leaves.
  grpc::ServerWriteReactor<trainmesh::v1::JobEvent>* WatchJob(grpc::CallbackServerContext*,
                                                              const trainmesh::v1::WatchJobRequest*) override {
    class Reactor : public grpc::ServerWriteReactor<trainmesh::v1::JobEvent> {
     public:
      Reactor() {
        event_.set_seq(1);
        StartWrite(&event_);
      }
      void OnWriteDone(bool) override {}
      void OnCancel() override { Finish(grpc::Status::CANCELLED); }
      void OnDone() override { delete this; }

     private:
      trainmesh::v1::JobEvent event_;
    };
    return new Reactor();
  }

 private:
  Executor& executor_;
};

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<GrpcServer>(ServerOptions{.address = "127.0.0.1:0"});
    server_->AddService(&service_, "trainmesh.v1.JobService");
    ASSERT_TRUE(server_->Start().ok());
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  Executor executor_{2};
  SlowService service_{executor_};
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcServerTest, ReportsHealthPerService) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string name : {"", "trainmesh.v1.JobService"}) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << name;
  }
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("trainmesh.v1.NoSuchService");
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_EQ(health->Check(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServerTest, ServesReflection) {
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                               &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_THAT(bytes, HasSubstr("trainmesh.v1.JobService"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(GrpcServerTest, ShutdownLetsInFlightCallsFinishAndRefusesNewOnes) {
  auto stub = trainmesh::v1::JobService::NewStub(channel_);
  grpc::Status in_flight_status;
  trainmesh::v1::ListRecipesResponse in_flight_response;
  std::thread caller([&] {
    grpc::ClientContext ctx;
    in_flight_status = stub->ListRecipes(&ctx, {}, &in_flight_response);
  });
  service_.started.WaitForNotification();
  std::thread stopper([&] { server_->Shutdown(); });
  // Wait until the server refuses new calls (shutdown has begun), then let the
  // in-flight call finish: the drain must wait for it rather than cut it off.
  auto health = grpc::health::v1::Health::NewStub(channel_);
  const auto give_up = std::chrono::system_clock::now() + std::chrono::seconds(30);
  while (std::chrono::system_clock::now() < give_up) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, {}, &resp);
    if (!s.ok() || resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) break;
  }
  service_.release.Notify();
  stopper.join();
  caller.join();
  EXPECT_TRUE(in_flight_status.ok()) << in_flight_status.error_message();
  ASSERT_EQ(in_flight_response.recipes_size(), 1);

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  trainmesh::v1::ListRecipesResponse after;
  grpc::Status status = stub->ListRecipes(&ctx, {}, &after);
  EXPECT_FALSE(status.ok());
}

// Scrapes /metrics until `done(samples)` holds (30 s at most).
std::map<std::string, double> ScrapeUntil(int port,
                                          const std::function<bool(const std::map<std::string, double>&)>& done) {
  std::map<std::string, double> samples;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  do {
    absl::StatusOr<httpd::GetResult> got = httpd::Get("127.0.0.1", port, "/metrics");
    if (got.ok() && got->status == 200) samples = telemetry::ParseExposition(got->body);
    if (done(samples)) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < give_up);
  return samples;
}

double At(const std::map<std::string, double>& samples, const std::string& key) {
  auto it = samples.find(key);
  return it == samples.end() ? -1 : it->second;
}

TEST(GrpcServerMetrics, CountsTimesAndServesEveryRpcByMethodAndCode) {
  telemetry::Registry registry;
  Executor executor{2};
  SlowService service{executor};
  service.release.Notify();
  GrpcServer server(ServerOptions{.address = "127.0.0.1:0", .metrics_address = "127.0.0.1:0", .registry = &registry});
  server.AddService(&service, "trainmesh.v1.JobService");
  ASSERT_TRUE(server.Start().ok());
  ASSERT_GT(server.metrics_port(), 0);
  auto stub = trainmesh::v1::JobService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    trainmesh::v1::ListRecipesResponse response;
    ASSERT_TRUE(stub->ListRecipes(&ctx, {}, &response).ok());
  }
  {
    grpc::ClientContext ctx;
    trainmesh::v1::Job job;
    EXPECT_EQ(stub->GetJob(&ctx, {}, &job).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  const std::string list = "grpc_type=\"unary\",grpc_service=\"trainmesh.v1.JobService\",grpc_method=\"ListRecipes\"";
  const std::string watch =
      "grpc_type=\"server_stream\",grpc_service=\"trainmesh.v1.JobService\",grpc_method=\"WatchJob\"";

  // A stream held open shows as one open stream and one message sent.
  grpc::ClientContext watch_ctx;
  auto reader = stub->WatchJob(&watch_ctx, {});
  trainmesh::v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  auto samples = ScrapeUntil(server.metrics_port(), [&](const auto& s) {
    return At(s, "trainmesh_grpc_server_open_streams{" + watch + "}") == 1;
  });
  EXPECT_EQ(At(samples, "trainmesh_grpc_server_open_streams{" + watch + "}"), 1);
  EXPECT_EQ(At(samples, "grpc_server_msg_sent_total{" + watch + "}"), 1);
  EXPECT_EQ(At(samples, "grpc_server_started_total{" + list + "}"), 3);
  EXPECT_EQ(At(samples, "grpc_server_handled_total{" + list + ",grpc_code=\"OK\"}"), 3);
  EXPECT_EQ(At(samples, "grpc_server_msg_received_total{" + list + "}"), 3);
  EXPECT_EQ(At(samples, "grpc_server_handling_seconds_count{" + list + "}"), 3);
  EXPECT_EQ(At(samples, "grpc_server_handling_seconds_bucket{" + list + ",le=\"+Inf\"}"), 3);
  EXPECT_EQ(At(samples,
               "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"trainmesh.v1.JobService\","
               "grpc_method=\"GetJob\",grpc_code=\"Unimplemented\"}"),
            1);

  // The client leaves: the stream closes as Canceled.
  watch_ctx.TryCancel();
  EXPECT_FALSE(reader->Read(&event));
  reader->Finish();
  // One scrape is not a snapshot across families (handled_total is rendered
  // before open_streams), so wait for both.
  samples = ScrapeUntil(server.metrics_port(), [&](const auto& s) {
    return At(s, "trainmesh_grpc_server_open_streams{" + watch + "}") == 0 &&
           At(s, "grpc_server_handled_total{" + watch + ",grpc_code=\"Canceled\"}") >= 0;
  });
  EXPECT_EQ(At(samples, "trainmesh_grpc_server_open_streams{" + watch + "}"), 0);
  EXPECT_EQ(At(samples, "grpc_server_handled_total{" + watch + ",grpc_code=\"Canceled\"}"), 1);
  // The server's own registry is served (the process's has these).
  EXPECT_EQ(At(samples, "process_resident_memory_bytes"), -1);

  absl::StatusOr<httpd::GetResult> other = httpd::Get("127.0.0.1", server.metrics_port(), "/other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->status, 404);
  absl::StatusOr<httpd::GetResult> metrics = httpd::Get("127.0.0.1", server.metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->content_type, HasSubstr("text/plain; version=0.0.4"));
  server.Shutdown();
  EXPECT_FALSE(httpd::Get("127.0.0.1", server.metrics_port(), "/metrics").ok());
}

TEST(GrpcServerMetrics, HealthzFollowsTheServingStatusForPlaintextProbes) {
  telemetry::Registry registry;
  GrpcServer server(ServerOptions{.address = "127.0.0.1:0", .metrics_address = "127.0.0.1:0", .registry = &registry});
  int during_drain = 0;
  server.OnDrain([&] {
    absl::StatusOr<httpd::GetResult> got = httpd::Get("127.0.0.1", server.metrics_port(), "/healthz");
    during_drain = got.ok() ? got->status : -1;
  });
  ASSERT_TRUE(server.Start().ok());
  absl::StatusOr<httpd::GetResult> up = httpd::Get("127.0.0.1", server.metrics_port(), "/healthz");
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->status, 200);
  EXPECT_EQ(up->body, "SERVING\n");
  server.Shutdown();
  EXPECT_EQ(during_drain, 503);
}

}  // namespace
}  // namespace trainmesh::server
