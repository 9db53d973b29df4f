// rpc::Call against a real gRPC server on port 0.
#include "libs/rpc/call.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainmesh/v1/auth.grpc.pb.h"

namespace trainmesh::rpc {
namespace {

using ::testing::HasSubstr;

// GetUser answers "alice" and NOT_FOUND for anyone else, and remembers the
// authorization it was called with; "slow" is answered only when released.
class Users final : public trainmesh::v1::AuthService::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetUser(grpc::CallbackServerContext* context,
                                    const trainmesh::v1::GetUserRequest* request,
                                    trainmesh::v1::User* user) override {
    auto* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    auto it = context->client_metadata().find("authorization");
    authorization_ = it == context->client_metadata().end()
                         ? "(none)"
                         : std::string(it->second.data(), it->second.size());
    if (request->id() == "slow") {
      held_ = reactor;
      return reactor;
    }
    if (request->id() != "alice") {
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "no such user"));
      return reactor;
    }
    user->set_id("alice");
    user->set_max_running_jobs(3);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    if (held_ != nullptr) held_->Finish(grpc::Status::CANCELLED);
    held_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  std::string authorization_ ABSL_GUARDED_BY(mu_);
  grpc::ServerUnaryReactor* held_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class CallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&users_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = trainmesh::v1::AuthService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    users_.Release();
    server_->Shutdown();
  }
  absl::StatusOr<trainmesh::v1::User> GetUser(const std::string& id, const std::string& credential,
                                              absl::Duration timeout,
                                              std::initializer_list<grpc::StatusCode> keep = {}) {
    trainmesh::v1::GetUserRequest request;
    request.set_id(id);
    return Call("auth service", *stub_, &trainmesh::v1::AuthService::Stub::GetUser, request,
                credential, timeout, keep);
  }

  Users users_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<trainmesh::v1::AuthService::Stub> stub_;
};

TEST_F(CallTest, CarriesTheCredentialAndReturnsTheResponse) {
  auto user = GetUser("alice", "tm_key_1", absl::Seconds(10));
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->max_running_jobs(), 3);
  EXPECT_EQ(users_.authorization(), "Bearer tm_key_1");
  ASSERT_TRUE(GetUser("alice", "", absl::Seconds(10)).ok());
  EXPECT_EQ(users_.authorization(), "(none)");
}

TEST_F(CallTest, FailuresAreUnavailableUnlessTheCallerKeepsTheCode) {
  auto missing = GetUser("bob", "k", absl::Seconds(10));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(missing.status().message(), "auth service: no such user");
  auto kept = GetUser("bob", "k", absl::Seconds(10), {grpc::StatusCode::NOT_FOUND});
  EXPECT_EQ(kept.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(kept.status().message(), "no such user");
}

TEST_F(CallTest, TheDeadlineEndsASlowCall) {
  auto slow = GetUser("slow", "k", absl::Milliseconds(200));
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(slow.status().message(), HasSubstr("auth service: "));
  EXPECT_THAT(slow.status().message(), HasSubstr("Deadline Exceeded"));
}

}  // namespace
}  // namespace trainmesh::rpc
