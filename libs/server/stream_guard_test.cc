#include "libs/server/stream_guard.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::server {
namespace {

using ::testing::HasSubstr;

trainmesh::v1::Principal Caller(const std::string& subject, absl::Time expires = absl::InfiniteFuture()) {
  trainmesh::v1::Principal p;
  p.set_subject(subject);
  if (expires != absl::InfiniteFuture()) p.mutable_expire_time()->set_seconds(absl::ToUnixSeconds(expires));
  return p;
}

absl::Status Ok() { return absl::OkStatus(); }

TEST(StreamGuardsTest, EachUserHasACapOfTheirOwn) {
  StreamGuards guards({.max_per_user = 2});
  std::vector<std::unique_ptr<StreamGuards::Guard>> held;
  for (int i = 0; i < 2; ++i) {
    auto g = guards.Open(Caller("ada"), Ok, [](absl::Status) {});
    ASSERT_TRUE(g.ok()) << g.status();
    held.push_back(*std::move(g));
  }
  auto third = guards.Open(Caller("ada"), Ok, [](absl::Status) {});
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(third.status().GetPayload("type.googleapis.com/google.rpc.RetryInfo").has_value());
  EXPECT_TRUE(guards.Open(Caller("bob"), Ok, [](absl::Status) {}).ok());  // bob's own
  EXPECT_EQ(guards.open("ada"), 2);
  held.pop_back();  // a stream ends: its slot is free again
  EXPECT_EQ(guards.open("ada"), 1);
  EXPECT_TRUE(guards.Open(Caller("ada"), Ok, [](absl::Status) {}).ok());
}

TEST(StreamGuardsTest, AStreamEndsWhenItsCredentialExpires) {
  StreamGuards guards({.recheck = absl::Hours(1)});
  absl::Notification ended;
  absl::Status why;
  auto g = guards.Open(Caller("ada", absl::Now() + absl::Seconds(1)), Ok, [&](absl::Status s) {
    why = s;
    ended.Notify();
  });
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(why.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(why.message(), HasSubstr("expired"));
}

TEST(StreamGuardsTest, AStreamEndsAtTheFirstRecheckThatRefusesIt) {
  StreamGuards guards({.recheck = absl::Milliseconds(20)});
  std::atomic<bool> revoked{false};
  std::atomic<int> checks{0};
  absl::Notification ended;
  absl::Status why;
  auto g = guards.Open(
      Caller("ada"),
      [&] {
        ++checks;
        return revoked ? absl::UnauthenticatedError("API key revoked") : absl::OkStatus();
      },
      [&](absl::Status s) {
        why = s;
        ended.Notify();
      });
  ASSERT_TRUE(g.ok());
  // Still valid: checked again and again, not ended.
  while (checks.load() < 3) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_FALSE(ended.HasBeenNotified());
  revoked = true;
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(why.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(why.message(), HasSubstr("revoked"));
}

TEST(StreamGuardsTest, AClosedStreamIsNeverCheckedOrEnded) {
  StreamGuards guards({.recheck = absl::Milliseconds(1)});
  std::atomic<int> calls{0};
  for (int i = 0; i < 200; ++i) {
    auto g = guards.Open(
        Caller("ada", absl::Now()), [&] { return ++calls, absl::OkStatus(); }, [&](absl::Status) { ++calls; });
    ASSERT_TRUE(g.ok());
    // Destroyed at once; any check racing with it waits for it or sees it closed.
  }
  EXPECT_EQ(guards.open("ada"), 0);
  const int after = calls.load();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(calls.load(), after);  // nothing runs for closed streams
}

}  // namespace
}  // namespace trainmesh::server
