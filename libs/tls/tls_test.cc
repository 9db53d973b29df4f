// TLS between a real gRPC server (as every service runs it) and real channels
// on port 0, with certificates made by tools/certs (what tools/up runs with).
#include "libs/tls/tls.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/server/grpc_server.h"

namespace trainmesh::tls {
namespace {

using ::testing::HasSubstr;

std::string MakeCa(const std::string& name) {
  const char* src = std::getenv("TRAINMESH_SOURCE_DIR");
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/tls-test-", name, "-", getpid());
  std::filesystem::remove_all(dir);
  const std::string command = absl::StrCat(src != nullptr ? src : ".", "/tools/certs ", dir);
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  return dir;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeCa("mesh");
    // The server as every service runs it: the process's files, then start.
    ASSERT_TRUE(Configure({.cert_file = dir_ + "/server.pem", .key_file = dir_ + "/server.key"}).ok());
    server_ = std::make_unique<server::GrpcServer>(server::ServerOptions{.address = "127.0.0.1:0"});
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
    ASSERT_TRUE(Configure({}).ok());
  }
  void TearDown() override {
    server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  grpc::Status Check(const std::shared_ptr<grpc::ChannelCredentials>& creds) {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), creds);
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    return health->Check(&ctx, request, &response);
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<server::GrpcServer> server_;
};

TEST_F(TlsTest, AChannelTrustingTheMeshCaConnects) {
  auto creds = ChannelCredentials({.ca_file = dir_ + "/ca.pem"});
  ASSERT_TRUE(creds.ok()) << creds.status();
  grpc::Status s = Check(*creds);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(TlsTest, PlaintextAndOtherCasAreRefused) {
  EXPECT_EQ(Check(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
  const std::string other = MakeCa("other");
  auto creds = ChannelCredentials({.ca_file = other + "/ca.pem"});
  ASSERT_TRUE(creds.ok());
  EXPECT_EQ(Check(*creds).error_code(), grpc::StatusCode::UNAVAILABLE);
  std::filesystem::remove_all(other);
}

TEST_F(TlsTest, TheProcessWideSettingIsUsedByChannels) {
  ASSERT_TRUE(Configure({.ca_file = dir_ + "/ca.pem"}).ok());
  auto health = grpc::health::v1::Health::NewStub(Channel(absl::StrCat("localhost:", port_)));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_TRUE(health->Check(&ctx, request, &response).ok());
  ASSERT_TRUE(Configure({}).ok());
}

TEST(TlsFilesTest, BadFilesAreClearErrors) {
  auto missing = ServerCredentials({.cert_file = "/nonexistent/cert.pem", .key_file = "/nonexistent/key.pem"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/cert.pem"));
  auto half = ServerCredentials({.cert_file = "/etc/hostname"});
  EXPECT_THAT(half.status().message(), HasSubstr("--tls_key"));
  auto not_pem = ChannelCredentials({.ca_file = "/etc/hostname"});
  EXPECT_THAT(not_pem.status().message(), HasSubstr("not PEM"));
  EXPECT_EQ(Configure({.ca_file = "/etc/hostname"}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace trainmesh::tls
