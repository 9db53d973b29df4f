#include "libs/identity/rate_limiter.h"

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"

namespace trainmesh::identity {
namespace {

using ::testing::HasSubstr;

TEST(RateLimiterTest, BurstThenRetryInfoThenRefill) {
  RateLimiter limiter({{"write", {2, 3}}});
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take("write", "alice", t0).ok());
  absl::Status limited = limiter.Take("write", "alice", t0);
  EXPECT_EQ(limited.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(limited.message(), HasSubstr("write"));
  auto payload = limited.GetPayload("type.googleapis.com/google.rpc.RetryInfo");
  ASSERT_TRUE(payload.has_value());
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(retry.ParseFromString(std::string(*payload)));
  EXPECT_EQ(retry.retry_delay().seconds(), 0);
  EXPECT_EQ(retry.retry_delay().nanos(), 500000000);  // one token at 2/s
  // Another caller has a bucket of their own.
  EXPECT_TRUE(limiter.Take("write", "bob", t0).ok());
  // Half a second later one token is back.
  EXPECT_TRUE(limiter.Take("write", "alice", t0 + absl::Milliseconds(500)).ok());
  EXPECT_FALSE(limiter.Take("write", "alice", t0 + absl::Milliseconds(500)).ok());
}

TEST(RateLimiterTest, UnlimitedAndUnknownClassesPass) {
  RateLimiter limiter({{"poll", {0, 1}}});
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(limiter.Take("poll", "a").ok());
    EXPECT_TRUE(limiter.Take("other", "a").ok());
  }
}

}  // namespace
}  // namespace trainmesh::identity
