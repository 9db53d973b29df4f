#include "libs/identity/api_keys.h"

#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::identity {
namespace {

using ::testing::MatchesRegex;

TEST(ApiKeysTest, FormatPrefixAndHash) {
  NewApiKey key = GenerateApiKey();
  EXPECT_THAT(key.secret, MatchesRegex("tm_[a-zA-Z0-9]{8}_[a-zA-Z0-9]{40}"));
  EXPECT_EQ(ApiKeyPrefix(key.secret), key.prefix);
  EXPECT_EQ(key.hash, HashApiKey(key.secret));
  EXPECT_EQ(key.hash.size(), 64u);
  EXPECT_NE(GenerateApiKey().secret, key.secret);
  EXPECT_EQ(ApiKeyPrefix("tm_short"), "");
  EXPECT_EQ(ApiKeyPrefix("eyJhbGciOi.x.y"), "");
}

struct FakeAuthService {
  std::atomic<int> calls{0};
  std::atomic<bool> revoked{false};
  std::atomic<bool> down{false};
  absl::StatusOr<trainmesh::v1::Principal> Fetch(absl::string_view) {
    ++calls;
    if (down) return absl::UnavailableError("auth service down");
    if (revoked) return absl::UnauthenticatedError("API key revoked");
    trainmesh::v1::Principal p;
    p.set_subject("alice");
    p.set_kind(trainmesh::v1::Principal::API_KEY);
    return p;
  }
};

TEST(CachingApiKeyResolverTest, RevocationTakesEffectWithinTheTtl) {
  FakeAuthService auth;
  CachingApiKeyResolver resolver([&](absl::string_view k) { return auth.Fetch(k); },
                                 absl::Seconds(10));
  const std::string key = GenerateApiKey().secret;
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(resolver.Resolve(key, t0).ok());
  ASSERT_TRUE(resolver.Resolve(key, t0 + absl::Seconds(5)).ok());
  EXPECT_EQ(auth.calls.load(), 1);
  auth.revoked = true;
  // Still remembered inside the TTL…
  EXPECT_TRUE(resolver.Resolve(key, t0 + absl::Seconds(9)).ok());
  // …refused once it has passed.
  EXPECT_EQ(resolver.Resolve(key, t0 + absl::Seconds(11)).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.calls.load(), 2);
}

TEST(CachingApiKeyResolverTest, RefusalsAreRememberedBrieflyOutagesNot) {
  FakeAuthService auth;
  auth.revoked = true;
  CachingApiKeyResolver resolver([&](absl::string_view k) { return auth.Fetch(k); },
                                 absl::Seconds(10));
  const std::string key = GenerateApiKey().secret;
  const absl::Time t0 = absl::Now();
  EXPECT_FALSE(resolver.Resolve(key, t0).ok());
  EXPECT_FALSE(resolver.Resolve(key, t0 + absl::Seconds(1)).ok());
  EXPECT_EQ(auth.calls.load(), 1);
  EXPECT_FALSE(resolver.Resolve(key, t0 + absl::Seconds(3)).ok());
  EXPECT_EQ(auth.calls.load(), 2);

  auth.revoked = false;
  auth.down = true;
  const std::string other = GenerateApiKey().secret;
  EXPECT_EQ(resolver.Resolve(other, t0).status().code(), absl::StatusCode::kUnavailable);
  auth.down = false;
  EXPECT_TRUE(resolver.Resolve(other, t0).ok());  // asked again at once
}

TEST(CachingApiKeyResolverTest, NeverPastTheKeysExpiry) {
  std::atomic<int> calls{0};
  const absl::Time t0 = absl::Now();
  CachingApiKeyResolver resolver(
      [&](absl::string_view) -> absl::StatusOr<trainmesh::v1::Principal> {
        ++calls;
        trainmesh::v1::Principal p;
        p.set_subject("alice");
        p.mutable_expire_time()->set_seconds(absl::ToUnixSeconds(t0 + absl::Seconds(3)));
        return p;
      },
      absl::Seconds(60));
  const std::string key = GenerateApiKey().secret;
  ASSERT_TRUE(resolver.Resolve(key, t0).ok());
  ASSERT_TRUE(resolver.Resolve(key, t0 + absl::Seconds(5)).ok());
  EXPECT_EQ(calls.load(), 2);
}

}  // namespace
}  // namespace trainmesh::identity
