#include "libs/identity/authenticator.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::identity {
namespace {

using ::testing::HasSubstr;

JwtConfig Config() {
  JwtConfig config;
  config.hs256_secret = std::string(40, 's');
  return config;
}

std::string Bearer(const std::vector<std::string>& scopes) {
  return "Bearer " + *MintToken(Config(), "alice", scopes, absl::Hours(1));
}

TEST(AuthenticatorTest, MethodScopesComeFromTheProtoOptions) {
  Authenticator auth(Config());
  const auto& create = MethodOf("trainmesh.v1.JobService", "CreateJob");
  const auto& get = MethodOf("trainmesh.v1.JobService", "GetJob");
  EXPECT_TRUE(auth.AuthorizeCredential(Bearer({"jobs:write"}), create).ok());
  absl::Status denied = auth.AuthorizeCredential(Bearer({"jobs:read"}), create).status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("jobs:write"));
  // GetJob accepts either read or write.
  EXPECT_TRUE(auth.AuthorizeCredential(Bearer({"jobs:read"}), get).ok());
  EXPECT_TRUE(auth.AuthorizeCredential(Bearer({"jobs:write"}), get).ok());
  EXPECT_EQ(auth.AuthorizeCredential(Bearer({"agent"}), get).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AuthenticatorTest, MissingOrMalformedCredentialIsUnauthenticated) {
  Authenticator auth(Config());
  const auto& get = MethodOf("trainmesh.v1.JobService", "GetJob");
  absl::Status none = auth.AuthorizeCredential("", get).status();
  EXPECT_EQ(none.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.message(), HasSubstr("missing credential"));
  EXPECT_EQ(auth.AuthorizeCredential("Basic abc", get).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.AuthorizeCredential("Bearer not.a.token", get).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthenticatorTest, RememberedTokensStillExpire) {
  Authenticator auth(Config());
  const auto& get = MethodOf("trainmesh.v1.JobService", "GetJob");
  JwtConfig config = Config();
  config.clock_skew = absl::ZeroDuration();
  Authenticator strict(config);
  // Valid for one more second: accepted (and remembered), then refused.
  const std::string token =
      *MintToken(Config(), "alice", {"jobs:read"}, absl::Seconds(61), absl::Now() - absl::Minutes(1));
  ASSERT_TRUE(strict.AuthorizeCredential("Bearer " + token, get).ok());
  ASSERT_TRUE(strict.AuthorizeCredential("Bearer " + token, get).ok());
  const absl::Time until = absl::Now() + absl::Seconds(3);
  absl::Status status;
  while (absl::Now() < until) {
    status = strict.AuthorizeCredential("Bearer " + token, get).status();
    if (!status.ok()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  // A remembered token does not bypass the scope check.
  const std::string reader = *MintToken(Config(), "bob", {"jobs:read"}, absl::Hours(1));
  ASSERT_TRUE(auth.AuthorizeCredential("Bearer " + reader, get).ok());
  EXPECT_EQ(auth.AuthorizeCredential("Bearer " + reader,
                                     MethodOf("trainmesh.v1.JobService", "CreateJob"))
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AuthenticatorTest, PublicMethodsNeedNoCredential) {
  Authenticator auth(Config());
  const auto& login = MethodOf("trainmesh.v1.AuthService", "Login");
  EXPECT_TRUE(auth.AuthorizeCredential("", login).ok());
}

}  // namespace
}  // namespace trainmesh::identity
