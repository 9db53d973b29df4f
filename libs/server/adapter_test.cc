// A generated adapter (SchedulerServiceAdapter) over a real gRPC server on
// port 0, with real tokens: how it binds RPCs to an implementation's methods
// and whom it lets through.
#include "libs/server/adapter.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "libs/identity/jwt.h"
#include "libs/identity/testing/test_keys.h"
#include "libs/server/executor.h"
#include "libs/server/grpc_server.h"
#include "trainmesh/v1/scheduler.adapter.h"

namespace trainmesh::server {
namespace {

using ::testing::HasSubstr;
using trainmesh::v1::Principal;

// Methods of each shape the adapter binds; no Enqueue (nor anything for
// CancelAssignment, GetAgent, ...), which must then be UNIMPLEMENTED.
class FakeScheduler {
 public:
  // (caller, request)
  absl::StatusOr<trainmesh::v1::Agent> RegisterAgent(const Principal& caller,
                                                     const trainmesh::v1::RegisterAgentRequest& r) {
    trainmesh::v1::Agent agent;
    agent.set_name(absl::StrCat(caller.subject(), "/", r.agent().name()));
    return agent;
  }
  // (request)
  absl::StatusOr<trainmesh::v1::ListAgentsResponse> ListAgents(
      const trainmesh::v1::ListAgentsRequest& r) {
    if (r.page_size() < 0) return absl::InvalidArgumentError("page_size must be >= 0");
    trainmesh::v1::ListAgentsResponse response;
    response.add_agents()->set_name(r.include_offline() ? "all" : "online");
    return response;
  }
  // ()
  absl::StatusOr<trainmesh::v1::QueuePosition> GetQueuePosition() {
    trainmesh::v1::QueuePosition position;
    position.set_position(7);
    return position;
  }
  // A report: who the adapter says sent it.
  absl::StatusOr<trainmesh::v1::HeartbeatResponse> Heartbeat(
      const Principal& caller, const trainmesh::v1::HeartbeatRequest&) {
    absl::MutexLock lock(&mu);
    last_caller = caller;
    return trainmesh::v1::HeartbeatResponse();
  }

  absl::Mutex mu;
  Principal last_caller ABSL_GUARDED_BY(mu);
};

class AdapterTest : public ::testing::Test {
 protected:
  using Stub = trainmesh::v1::SchedulerService::Stub;

  void SetUp() override {
    server_.AddService(&adapter_, "trainmesh.v1.SchedulerService");
    ASSERT_TRUE(server_.Start().ok());
    stub_ = trainmesh::v1::SchedulerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_.port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_.Shutdown(); }

  static const identity::testing::TestIssuer& Issuer() {
    static const auto* issuer = new identity::testing::TestIssuer();
    return *issuer;
  }

  static std::unique_ptr<grpc::ClientContext> With(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  FakeScheduler impl_;
  Executor executor_{2};
  std::unique_ptr<identity::Authenticator> auth_ = identity::testing::AuthenticatorFor(Issuer());
  trainmesh::v1::SchedulerServiceAdapter<FakeScheduler> adapter_{&impl_, &executor_, auth_.get()};
  GrpcServer server_{ServerOptions{.address = "127.0.0.1:0", .drain_timeout = absl::Seconds(5)}};
  std::unique_ptr<Stub> stub_;
};

TEST_F(AdapterTest, EachRpcReachesTheMethodOfItsNameWithWhatThatMethodTakes) {
  const std::string agent = Issuer().Token("ada", {"agent"});
  trainmesh::v1::RegisterAgentRequest register_request;
  register_request.mutable_agent()->set_name("gpu-1");
  trainmesh::v1::Agent registered;
  grpc::Status s = stub_->RegisterAgent(With(agent).get(), register_request, &registered);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(registered.name(), "ada/gpu-1");

  trainmesh::v1::ListAgentsRequest list_request;
  list_request.set_include_offline(true);
  trainmesh::v1::ListAgentsResponse agents;
  s = stub_->ListAgents(With(agent).get(), list_request, &agents);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).name(), "all");
  // The method's error is the call's status.
  list_request.set_page_size(-1);
  s = stub_->ListAgents(With(agent).get(), list_request, &agents);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_size"));

  trainmesh::v1::QueuePosition position;
  s = stub_->GetQueuePosition(With(Issuer().Token("ada")).get(), {}, &position);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(position.position(), 7);
}

TEST_F(AdapterTest, TheMethodsScopesAreCheckedBeforeItRuns) {
  trainmesh::v1::RegisterAgentRequest request;
  trainmesh::v1::Agent agent;
  // A user token without the "agent" scope, and no credential at all.
  EXPECT_EQ(stub_->RegisterAgent(With(Issuer().Token("ada")).get(), request, &agent).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stub_->RegisterAgent(With("").get(), request, &agent).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AdapterTest, AnRpcWithoutAMethodOfItsNameIsUnimplemented) {
  trainmesh::v1::EnqueueResponse response;
  grpc::Status s = stub_->Enqueue(With(Issuer().Token("svc", {"internal"})).get(), {}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s.error_message(), HasSubstr("trainmesh.v1.SchedulerService.Enqueue"));
}

// An agent's header holds its own credential; the job token in the body is
// what authorises the report, and the method sees the job's principal.
TEST_F(AdapterTest, AReportIsAuthorisedByTheJobTokenInItsBody) {
  const std::string agent = Issuer().Token("ada", {"agent"});
  const std::string job_token =
      Issuer().TokenWith(identity::JobClaims("bob", "job-1", 2, "agent-1"));
  trainmesh::v1::HeartbeatRequest request;
  request.set_job_id("job-1");
  request.set_job_token(job_token);
  trainmesh::v1::HeartbeatResponse response;
  grpc::Status s = stub_->Heartbeat(With(agent).get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  {
    absl::MutexLock lock(&impl_.mu);
    EXPECT_EQ(impl_.last_caller.kind(), Principal::JOB);
    EXPECT_EQ(impl_.last_caller.subject(), "bob");
    EXPECT_EQ(impl_.last_caller.job_id(), "job-1");
  }
  // A forged body token is refused even with a good header.
  request.set_job_token(job_token + "x");
  EXPECT_EQ(stub_->Heartbeat(With(agent).get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Without one, the header's credential is the caller.
  request.clear_job_token();
  ASSERT_TRUE(stub_->Heartbeat(With(agent).get(), request, &response).ok());
  absl::MutexLock lock(&impl_.mu);
  EXPECT_EQ(impl_.last_caller.subject(), "ada");
}

}  // namespace
}  // namespace trainmesh::server
