#include "libs/pg/listener.h"

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/pg/testing/test_cluster.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

using ::testing::ElementsAre;

class Recorder {
 public:
  void Notify(const std::string& channel, const std::string& payload) {
    absl::MutexLock lock(&mu_);
    got_.push_back(channel + ":" + payload);
  }
  void Connected() {
    absl::MutexLock lock(&mu_);
    ++connects_;
  }
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return got_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
  }
  bool WaitForConnects(int n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return connects_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
  }
  std::vector<std::string> got() {
    absl::MutexLock lock(&mu_);
    return got_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> got_ ABSL_GUARDED_BY(mu_);
  int connects_ ABSL_GUARDED_BY(mu_) = 0;
};

void Notify(const std::string& dsn, const std::string& channel, const std::string& payload) {
  pqxx::connection conn(dsn);
  pqxx::nontransaction(conn).exec_params("SELECT pg_notify($1, $2)", channel, payload);
}

TEST(ListenerTest, DeliversNotificationsOfItsChannels) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  Recorder recorder;
  Listener listener(
      dsn, {"a", "b"},
      [&](const std::string& c, const std::string& p) { recorder.Notify(c, p); },
      [&] { recorder.Connected(); });
  listener.Start();
  ASSERT_TRUE(listener.WaitUntilListening(absl::Seconds(20)));
  Notify(dsn, "a", "1");
  Notify(dsn, "other", "ignored");
  Notify(dsn, "b", "2");
  ASSERT_TRUE(recorder.WaitFor(2));
  EXPECT_THAT(recorder.got(), ElementsAre("a:1", "b:2"));
}

TEST(ListenerTest, ReconnectsAndSignalsAfterLosingItsConnection) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  Recorder recorder;
  Listener listener(
      dsn, {"a"}, [&](const std::string& c, const std::string& p) { recorder.Notify(c, p); },
      [&] { recorder.Connected(); });
  listener.Start();
  ASSERT_TRUE(recorder.WaitForConnects(1));
  {
    pqxx::connection admin(dsn);
    pqxx::nontransaction(admin).exec(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  }
  ASSERT_TRUE(recorder.WaitForConnects(2));
  Notify(dsn, "a", "after");
  ASSERT_TRUE(recorder.WaitFor(1));
  EXPECT_THAT(recorder.got(), ElementsAre("a:after"));
}

TEST(ListenerTest, StopsPromptly) {
  const std::string dsn = testing::TestCluster::Get().NewDatabase();
  Listener listener(dsn, {"a"}, [](const std::string&, const std::string&) {}, nullptr);
  listener.Start();
  ASSERT_TRUE(listener.WaitUntilListening(absl::Seconds(20)));
  listener.Stop();
  EXPECT_FALSE(listener.WaitUntilListening(absl::ZeroDuration()));
}

}  // namespace
}  // namespace trainmesh::pg
