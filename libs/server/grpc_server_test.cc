#include "libs/server/grpc_server.h"

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
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
      started.Notify();
      release.WaitForNotification();
      response->add_recipes()->set_name("slow");
      return absl::OkStatus();
    });
  }
  absl::Notification started, release;

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

}  // namespace
}  // namespace trainmesh::server
