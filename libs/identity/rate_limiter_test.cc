#include "libs/identity/rate_limiter.h"

#include "absl/strings/str_cat.h"
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

int64_t RetrySeconds(const absl::Status& s) {
  auto payload = s.GetPayload("type.googleapis.com/google.rpc.RetryInfo");
  google::rpc::RetryInfo retry;
  if (!payload.has_value() || !retry.ParseFromString(std::string(*payload))) return -1;
  return retry.retry_delay().seconds();
}

TEST(FailureThrottleTest, FiveFreeFailuresThenAGrowingRefusal) {
  FailureThrottle throttle({.free_failures = 5, .window = absl::Minutes(1), .max_backoff = absl::Minutes(4)});
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(throttle.Check("ada", "user name", t0 + absl::Seconds(i)).ok()) << i;
    throttle.Failure("ada", t0 + absl::Seconds(i));
  }
  // The 6th attempt within the minute is refused, with when to come back.
  absl::Status refused = throttle.Check("ada", "user name", t0 + absl::Seconds(10));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("user name"));
  EXPECT_EQ(RetrySeconds(refused), 54);  // a minute after the 5th failure (at 4 s)
  // Another key is untouched.
  EXPECT_TRUE(throttle.Check("bob", "user name", t0 + absl::Seconds(10)).ok());
  // After the minute one more try; failing it doubles the refusal.
  const absl::Time t1 = t0 + absl::Seconds(65);
  ASSERT_TRUE(throttle.Check("ada", "user name", t1).ok());
  throttle.Failure("ada", t1);
  EXPECT_EQ(RetrySeconds(throttle.Check("ada", "user name", t1)), 120);
  const absl::Time t2 = t1 + absl::Minutes(2);
  throttle.Failure("ada", t2);
  EXPECT_EQ(RetrySeconds(throttle.Check("ada", "user name", t2)), 240);
  const absl::Time t3 = t2 + absl::Minutes(4);
  throttle.Failure("ada", t3);
  EXPECT_EQ(RetrySeconds(throttle.Check("ada", "user name", t3)), 240);  // capped
  // A success clears it.
  throttle.Success("ada");
  EXPECT_TRUE(throttle.Check("ada", "user name", t3).ok());
}

TEST(FailureThrottleTest, FailuresSpreadOverMoreThanAWindowCostNothing) {
  FailureThrottle throttle({.free_failures = 2, .window = absl::Minutes(1)});
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < 10; ++i) {
    const absl::Time t = t0 + absl::Seconds(61) * i;
    EXPECT_TRUE(throttle.Check("ada", "user name", t).ok()) << i;
    throttle.Failure("ada", t);
  }
}

TEST(FailureThrottleTest, MemoryIsBoundedAndRefusedKeysAreKeptLongest) {
  FailureThrottle throttle({.free_failures = 1, .window = absl::Minutes(1), .max_keys = 100});
  const absl::Time t0 = absl::Now();
  throttle.Failure("target", t0);
  ASSERT_FALSE(throttle.Check("target", "user name", t0).ok());
  for (int i = 0; i < 10000; ++i) throttle.Failure(absl::StrCat("spray-", i), t0);
  EXPECT_FALSE(throttle.Check("target", "user name", t0).ok());
}

}  // namespace
}  // namespace trainmesh::identity
