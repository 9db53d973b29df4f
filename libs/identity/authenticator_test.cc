#include "libs/identity/authenticator.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/identity/api_keys.h"
#include "libs/identity/testing/test_keys.h"
#include "protos/registry.h"
#include "trainmesh/v1/options.pb.h"

namespace trainmesh::identity {
namespace {

using ::testing::HasSubstr;
using testing::TestIssuer;
using trainmesh::v1::Principal;

std::unique_ptr<Authenticator> Make(const TestIssuer& issuer,
                                    std::shared_ptr<RateLimiter> limiter = nullptr) {
  AuthenticatorOptions options;
  options.tokens = std::make_shared<TokenVerifier>(std::vector<IssuerConfig>{issuer.Config()});
  options.api_keys = [](absl::string_view key) -> absl::StatusOr<Principal> {
    if (key != "tm_abcdefgh_0123456789012345678901234567890123456789") {
      return absl::UnauthenticatedError("unknown API key");
    }
    Principal p;
    p.set_subject("alice");
    p.set_kind(Principal::API_KEY);
    p.add_scopes("agent");
    return p;
  };
  options.limiter = std::move(limiter);
  return std::make_unique<Authenticator>(std::move(options));
}

TEST(AuthenticatorTest, EveryScopeIsEnforcedFromTheProtoOptions) {
  TestIssuer issuer;
  auto auth = Make(issuer);
  // For every method of every service: a token holding exactly one of the
  // required scopes passes; a token holding every other scope is refused.
  const std::vector<std::string> all = {"jobs:read", "jobs:write", "agent",
                                        "admin",     "internal",   "job:report"};
  int checked = 0;
  for (const auto* service : proto::Services()) {
    for (int i = 0; i < service->method_count(); ++i) {
      const auto& method = *service->method(i);
      const auto& rule = method.options().GetExtension(trainmesh::v1::auth);
      ASSERT_TRUE(method.options().HasExtension(trainmesh::v1::auth)) << method.full_name();
      if (rule.public_() || rule.scopes().empty()) continue;
      for (const std::string& needed : rule.scopes()) {
        EXPECT_TRUE(auth->AuthorizeCredential("Bearer " + issuer.Token("u", {needed}), method).ok())
            << method.full_name() << " with " << needed;
      }
      std::vector<std::string> others;
      for (const auto& s : all) {
        if (std::find(rule.scopes().begin(), rule.scopes().end(), s) == rule.scopes().end()) {
          others.push_back(s);
        }
      }
      absl::Status denied =
          auth->AuthorizeCredential("Bearer " + issuer.Token("u", others), method).status();
      EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied) << method.full_name();
      EXPECT_THAT(denied.message(), HasSubstr("needs scope"));
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST(AuthenticatorTest, CredentialsOfBothKinds) {
  TestIssuer issuer;
  auto auth = Make(issuer);
  const auto& acquire = MethodOf("trainmesh.v1.SchedulerService", "AcquireJob");
  absl::StatusOr<Principal> key = auth->AuthorizeCredential(
      "Bearer tm_abcdefgh_0123456789012345678901234567890123456789", acquire);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->kind(), Principal::API_KEY);
  EXPECT_EQ(auth->AuthorizeCredential("Bearer tm_abcdefgh_9999999999999999999999999999999999999999",
                                      acquire)
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(auth->AuthorizeCredential("Bearer tm_short", acquire).status().message(),
              HasSubstr("malformed API key"));
  EXPECT_THAT(auth->AuthorizeCredential("Bearer hunter2", acquire).status().message(),
              HasSubstr("unrecognised credential"));
  EXPECT_THAT(auth->AuthorizeCredential("", acquire).status().message(),
              HasSubstr("missing credential"));
  EXPECT_THAT(auth->AuthorizeCredential("Basic abc", acquire).status().message(),
              HasSubstr("Bearer"));
  // The secret never appears in an error.
  absl::Status bad = auth->AuthorizeCredential("Bearer x.y.z", acquire).status();
  EXPECT_THAT(std::string(bad.message()), ::testing::Not(HasSubstr("x.y.z")));
}

TEST(AuthenticatorTest, PublicAndAnyAuthenticatedMethods) {
  TestIssuer issuer;
  auto auth = Make(issuer);
  EXPECT_TRUE(auth->AuthorizeCredential("", MethodOf("trainmesh.v1.AuthService", "Login")).ok());
  const auto& whoami = MethodOf("trainmesh.v1.AuthService", "WhoAmI");
  EXPECT_EQ(auth->AuthorizeCredential("", whoami).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(auth->AuthorizeCredential("Bearer " + issuer.Token("u", {}), whoami).ok());
}

TEST(AuthenticatorTest, WritesAreRateLimitedPerCaller) {
  TestIssuer issuer;
  auto auth = Make(issuer, std::make_shared<RateLimiter>(
                               std::map<std::string, RateLimit>{{"write", {1, 2}}}));
  const auto& create = MethodOf("trainmesh.v1.JobService", "CreateJob");
  const auto& get = MethodOf("trainmesh.v1.JobService", "GetJob");
  const std::string alice = "Bearer " + issuer.Token("alice");
  EXPECT_TRUE(auth->AuthorizeCredential(alice, create).ok());
  EXPECT_TRUE(auth->AuthorizeCredential(alice, create).ok());
  absl::Status limited = auth->AuthorizeCredential(alice, create).status();
  EXPECT_EQ(limited.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(limited.GetPayload("type.googleapis.com/google.rpc.RetryInfo").has_value());
  EXPECT_TRUE(auth->AuthorizeCredential(alice, get).ok());  // reads are not limited
  EXPECT_TRUE(auth->AuthorizeCredential("Bearer " + issuer.Token("bob"), create).ok());
}

TEST(AuthenticatorTest, JobTokensAreBoundToJobAndAttempt) {
  Principal job;
  job.set_kind(Principal::JOB);
  job.set_job_id("j1");
  job.set_attempt(2);
  EXPECT_TRUE(CheckJobToken(job, "j1", 2).ok());
  absl::Status other_job = CheckJobToken(job, "j2", 2);
  EXPECT_EQ(other_job.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other_job.message(), HasSubstr("not j2"));
  EXPECT_THAT(CheckJobToken(job, "j1", 3).message(), HasSubstr("attempt 2"));
  Principal user;
  user.set_kind(Principal::USER);
  EXPECT_EQ(CheckJobToken(user, "j1", 2).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CheckJobToken(user, "j1", 2, /*allow_other_kinds=*/true).ok());
}

// A signed URL's token opens the one method its path routes to, only when
// the gateway says it came in that URL; nothing else rides in a URL.
TEST(AuthenticatorTest, SignedUrlTokensOpenTheirOwnPathOnly) {
  TestIssuer issuer;
  auto auth = Make(issuer);
  const auto& watch = MethodOf("trainmesh.v1.JobService", "WatchJob");
  const auto& logs = MethodOf("trainmesh.v1.MetricsService", "StreamLogs");
  const auto& get = MethodOf("trainmesh.v1.JobService", "GetJob");
  const std::string path = "/v1/jobs/0f8fad5b-d9cb-469f-a165-70867728950e:watch";
  Claims claims;
  claims.kind = "url";
  claims.subject = "alice";
  claims.scopes = {"jobs:read"};
  claims.url = path;
  const std::string url_token = "Bearer " + issuer.TokenWith(claims, absl::Minutes(5));
  absl::StatusOr<Principal> opened = auth->AuthorizeCredential(url_token, watch, path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->kind(), Principal::URL);
  EXPECT_EQ(opened->subject(), "alice");
  EXPECT_EQ(opened->url(), path);
  auto refused = [&](absl::string_view header, const google::protobuf::MethodDescriptor& method,
                     absl::string_view url) {
    absl::Status s = auth->AuthorizeCredential(header, method, url).status();
    EXPECT_TRUE(absl::IsUnauthenticated(s)) << method.full_name() << " " << url << ": " << s;
    return std::string(s.message());
  };
  EXPECT_THAT(refused(url_token, watch, ""), HasSubstr("signed for"));  // as a bearer
  EXPECT_THAT(refused(url_token, get, ""), HasSubstr("signed for"));
  EXPECT_THAT(refused(url_token, watch, path + "x"), HasSubstr("another path"));
  // The gateway's path and the token agree, but the method is another's.
  EXPECT_THAT(refused(url_token, logs, path), HasSubstr("another path"));
  // A login token in a URL.
  EXPECT_THAT(refused("Bearer " + issuer.Token("alice"), watch, path), HasSubstr("only a signed URL"));
  // Only read streams and downloads are signable.
  EXPECT_TRUE(SignableMethod("/v1/jobs/x/artifact?name=model.pt").ok());
  EXPECT_TRUE(SignableMethod("/v1/jobs:watch").ok());
  EXPECT_FALSE(SignableMethod("/v1/jobs").ok());
  EXPECT_FALSE(SignableMethod("/v1/jobs/x").ok());
  EXPECT_FALSE(SignableMethod("/v1/agents/x:acquire").ok());
}

TEST(AuthenticatorTest, InsecureModeIsAFixedSubject) {
  AuthenticatorOptions options;
  options.insecure_fixed_subject = "bench";
  Authenticator auth(std::move(options));
  absl::StatusOr<Principal> p =
      auth.AuthorizeCredential("", MethodOf("trainmesh.v1.JobService", "CreateJob"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->subject(), "bench");
}

}  // namespace
}  // namespace trainmesh::identity
