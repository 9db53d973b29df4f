#include "libs/server/executor.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace trainmesh::server {
namespace {

TEST(ExecutorTest, RunsEverythingQueuedBeforeShutdown) {
  std::atomic<int> ran{0};
  {
    Executor executor(2);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(executor.Submit([&] { ++ran; }));
    executor.Shutdown();
    EXPECT_FALSE(executor.Submit([&] { ++ran; }));
  }
  EXPECT_EQ(ran.load(), 100);
}

TEST(ExecutorTest, RunsTasksConcurrently) {
  Executor executor(2);
  absl::Notification first_started, second_done;
  executor.Submit([&] {
    first_started.Notify();
    // Only completes if the other worker runs the second task meanwhile.
    second_done.WaitForNotification();
  });
  first_started.WaitForNotification();
  executor.Submit([&] { second_done.Notify(); });
  EXPECT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

}  // namespace
}  // namespace trainmesh::server
