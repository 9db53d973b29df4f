#include "services/jobs/job_store.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/pg/ids.h"
#include "libs/pg/migrations.h"
#include "libs/pg/testing/test_cluster.h"
#include "pqxx/pqxx"
#include "services/jobs/state_machine.h"

namespace trainmesh::jobs {
const std::vector<pg::Migration>& Migrations();
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using trainmesh::v1::Job;
using trainmesh::v1::JobEvent;

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = pg::testing::TestCluster::Get().NewDatabase();
    ASSERT_TRUE(pg::Migrate(dsn_, "jobs", Migrations()).ok());
    pool_ = std::make_unique<pg::ConnectionPool>(
        pg::PoolOptions{.dsn = dsn_, .size = 4, .prepared = JobStore::PreparedStatements()});
    store_ = std::make_unique<JobStore>(pool_.get());
  }

  Job NewJob(const std::string& owner, const std::string& request_id = "") {
    Job job;
    job.set_owner(owner);
    job.set_model("tabular");
    job.set_dataset_url("synthetic://blobs");
    (*job.mutable_hyperparameters()->mutable_fields())["steps"].set_number_value(10);
    job.set_priority(5);
    job.set_max_attempts(3);
    (*job.mutable_labels())["team"] = "robotics";
    job.mutable_queue_timeout()->set_seconds(60);
    job.set_request_id(request_id);
    return job;
  }

  Job Create(const std::string& owner, const std::string& request_id = "") {
    auto created = store_->Create(NewJob(owner, request_id));
    EXPECT_TRUE(created.ok()) << created.status();
    return created->first;
  }

  // Moves a job to `to` the way every writer does.
  absl::StatusOr<Job> MoveTo(const std::string& id, Job::State to) {
    return store_->Update(std::nullopt, id, [to](const StoredJob& current) {
      Mutation m{current.job, current.last_report_seq};
      m.job.set_state(to);
      m.event = JobEvent::STATE_CHANGED;
      return absl::StatusOr<Mutation>(m);
    });
  }

  std::string dsn_;
  std::unique_ptr<pg::ConnectionPool> pool_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobStoreTest, CreateStoresEveryFieldAndTheCreatedEvent) {
  Job job = Create("alice");
  EXPECT_TRUE(pg::IsUuid(job.id())) << job.id();
  EXPECT_EQ(job.owner(), "alice");
  EXPECT_EQ(job.state(), Job::PENDING);
  EXPECT_EQ(job.hyperparameters().fields().at("steps").number_value(), 10);
  EXPECT_EQ(job.labels().at("team"), "robotics");
  EXPECT_EQ(job.priority(), 5);
  EXPECT_EQ(job.queue_timeout().seconds(), 60);
  EXPECT_EQ(job.last_event_seq(), 1);
  EXPECT_GT(job.create_time().seconds(), 1700000000);
  EXPECT_FALSE(job.has_start_time());
  EXPECT_FALSE(job.has_progress());

  auto stored = store_->Get(std::string("alice"), job.id());
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->job.DebugString(), job.DebugString());

  auto page = store_->Events(std::string("alice"), job.id(), 0, 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].seq(), 1);
  EXPECT_EQ(page->events[0].type(), JobEvent::CREATED);
  EXPECT_EQ(page->events[0].state(), Job::PENDING);
}

TEST_F(JobStoreTest, RequestIdMakesCreateIdempotentPerOwner) {
  Job first = Create("alice", "req-1");
  auto again = store_->Create(NewJob("alice", "req-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->second);
  EXPECT_EQ(again->first.id(), first.id());
  // Another owner may use the same key.
  Job bobs = Create("bob", "req-1");
  EXPECT_NE(bobs.id(), first.id());
  // No key, no deduplication.
  EXPECT_NE(Create("alice").id(), Create("alice").id());
}

TEST_F(JobStoreTest, ConcurrentCreatesWithOneRequestIdMakeOneJob) {
  std::vector<std::thread> threads;
  std::vector<std::string> ids(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = store_->Create(NewJob("alice", "same-key"));
      if (r.ok()) ids[i] = r->first.id();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
  pqxx::connection conn(dsn_);
  EXPECT_EQ(pqxx::nontransaction(conn).exec("SELECT count(*) FROM jobs.jobs")[0][0].as<int>(), 1);
}

TEST_F(JobStoreTest, OtherOwnersJobIsNotFound) {
  Job job = Create("alice");
  EXPECT_EQ(store_->Get(std::string("bob"), job.id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Events(std::string("bob"), job.id(), 0, 10).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Get(std::nullopt, job.id()).ok());
  EXPECT_EQ(store_->Get(std::string("alice"), "00000000-0000-0000-0000-000000000000").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, UpdateEnforcesTheStateMachineAndRecordsEvents) {
  Job job = Create("alice");
  ASSERT_TRUE(MoveTo(job.id(), Job::QUEUED).ok());
  absl::Status illegal = MoveTo(job.id(), Job::COMPLETED).status();
  EXPECT_EQ(illegal.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(illegal.message(), HasSubstr("QUEUED to COMPLETED"));
  auto running = MoveTo(job.id(), Job::RUNNING);
  ASSERT_TRUE(running.ok());
  EXPECT_TRUE(running->has_start_time());
  auto done = MoveTo(job.id(), Job::COMPLETED);
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->has_complete_time());
  EXPECT_EQ(done->last_event_seq(), 4);
  EXPECT_EQ(MoveTo(job.id(), Job::CANCELLED).status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto page = store_->Events(std::nullopt, job.id(), 1, 10);
  ASSERT_TRUE(page.ok());
  std::vector<int64_t> seqs;
  std::vector<Job::State> states;
  for (const auto& e : page->events) {
    seqs.push_back(e.seq());
    states.push_back(e.state());
  }
  EXPECT_THAT(seqs, ElementsAre(2, 3, 4));
  EXPECT_THAT(states, ElementsAre(Job::QUEUED, Job::RUNNING, Job::COMPLETED));
  EXPECT_EQ(page->events[2].previous_state(), Job::RUNNING);
  EXPECT_TRUE(page->events[2].terminal());
  EXPECT_FALSE(page->events[1].terminal());
  EXPECT_EQ(page->state, Job::COMPLETED);
  EXPECT_EQ(page->last_event_seq, 4);
}

TEST_F(JobStoreTest, EventsAreAppendOnly) {
  Job job = Create("alice");
  pqxx::connection conn(dsn_);
  EXPECT_THROW(pqxx::nontransaction(conn).exec("UPDATE jobs.job_events SET message = 'x'"),
               pqxx::sql_error);
  EXPECT_THROW(pqxx::nontransaction(conn).exec("DELETE FROM jobs.job_events"), pqxx::sql_error);
}

TEST_F(JobStoreTest, RacingUpdatesSerialiseOnTheRowLock) {
  Job job = Create("alice");
  ASSERT_TRUE(MoveTo(job.id(), Job::QUEUED).ok());
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      absl::Status s = MoveTo(job.id(), Job::CANCELLED).status();
      if (s.ok()) ++ok;
      if (s.code() == absl::StatusCode::kFailedPrecondition) ++refused;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(refused.load(), 5);
  auto page = store_->Events(std::nullopt, job.id(), 0, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->events.size(), 3u);  // CREATED, QUEUED, CANCELLED: exactly one cancel
}

TEST_F(JobStoreTest, ListIsNewestFirstWithKeysetCursorAndFilters) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Create("alice").id());
  Create("bob");
  ASSERT_TRUE(MoveTo(ids[1], Job::QUEUED).ok());

  ListQuery query{.owner = "alice", .limit = 3};
  auto first = store_->List(query);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].id(), ids[4]);
  EXPECT_EQ((*first)[2].id(), ids[2]);
  const Job& last = first->back();
  query.after = std::make_pair(last.create_time().seconds() * 1000000 +
                                   last.create_time().nanos() / 1000,
                               last.id());
  auto second = store_->List(query);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 2u);
  EXPECT_EQ((*second)[0].id(), ids[1]);
  EXPECT_EQ((*second)[1].id(), ids[0]);

  auto queued = store_->List({.owner = "alice", .states = {Job::QUEUED}, .limit = 10});
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 1u);
  EXPECT_EQ((*queued)[0].id(), ids[1]);
  auto labelled = store_->List({.owner = "alice", .labels = {{"team", "robotics"}}, .limit = 10});
  EXPECT_EQ(labelled->size(), 5u);
  auto other_label = store_->List({.owner = "alice", .labels = {{"team", "nlp"}}, .limit = 10});
  EXPECT_EQ(other_label->size(), 0u);
}

// Moves a job through `to` with `message` and, when given, an error log.
absl::StatusOr<Job> Move(JobStore& store, const std::string& id, Job::State to,
                         const std::string& message, const std::string& error_log = "") {
  return store.Update(std::nullopt, id, [&](const StoredJob& current) {
    Mutation m{current.job, current.last_report_seq};
    m.job.set_state(to);
    if (!error_log.empty()) m.job.set_error_log(error_log);
    m.event = JobEvent::STATE_CHANGED;
    m.message = message;
    return absl::StatusOr<Mutation>(m);
  });
}

std::vector<std::string> Kinds(const NotificationsPage& page) {
  std::vector<std::string> kinds;
  for (const auto& n : page.notifications) {
    kinds.push_back(trainmesh::v1::Notification::Kind_Name(n.kind()));
  }
  return kinds;
}

TEST_F(JobStoreTest, TransitionsFillTheOwnersInboxInTheirTransaction) {
  Job a = Create("alice");
  Job b = Create("alice");
  Job other = Create("bob");
  // Created, queued, initializing: nothing a user is told about.
  ASSERT_TRUE(Move(*store_, a.id(), Job::QUEUED, "queued").ok());
  ASSERT_TRUE(Move(*store_, a.id(), Job::INITIALIZING, "claimed").ok());
  auto page = store_->ListNotifications({.owner = "alice"});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->notifications.empty());
  EXPECT_EQ(page->unread_count, 0);

  ASSERT_TRUE(Move(*store_, a.id(), Job::RUNNING, "running on agent one").ok());
  // A lost agent: back to the queue, then a second attempt that fails.
  ASSERT_TRUE(Move(*store_, a.id(), Job::QUEUED, "lease expired").ok());
  ASSERT_TRUE(Move(*store_, a.id(), Job::RUNNING, "running on agent two").ok());
  const std::string long_line(600, 'x');
  ASSERT_TRUE(Move(*store_, a.id(), Job::FAILED, "failed",
                   "ValueError: bad column " + long_line + "\ntraceback line")
                  .ok());
  ASSERT_TRUE(Move(*store_, b.id(), Job::CANCELLED, "Cancelled by alice while PENDING: typo").ok());
  ASSERT_TRUE(Move(*store_, other.id(), Job::CANCELLED, "Cancelled by bob").ok());
  // A refused transition leaves no notification behind.
  EXPECT_FALSE(Move(*store_, b.id(), Job::RUNNING, "too late").ok());

  page = store_->ListNotifications({.owner = "alice"});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Kinds(*page), ElementsAre("CANCELLED", "FAILED", "STARTED", "REQUEUED", "STARTED"));
  EXPECT_EQ(page->unread_count, 5);
  const auto& failed = page->notifications[1];
  EXPECT_EQ(failed.job_id(), a.id());
  EXPECT_EQ(failed.model(), "tabular");
  // The error log's first line, cut short on a character boundary.
  EXPECT_THAT(failed.message(), ::testing::StartsWith("ValueError: bad column xxx"));
  EXPECT_LE(failed.message().size(), 510u);
  EXPECT_THAT(failed.message(), ::testing::Not(HasSubstr("traceback")));
  EXPECT_EQ(page->notifications[0].message(), "Cancelled by alice while PENDING: typo");
  EXPECT_EQ(page->notifications[3].message(), "lease expired");
  EXPECT_FALSE(failed.read());
  for (size_t i = 1; i < page->notifications.size(); ++i) {
    EXPECT_LT(page->notifications[i].id(), page->notifications[i - 1].id());  // newest first
  }
  auto bobs = store_->ListNotifications({.owner = "bob"});
  EXPECT_THAT(Kinds(*bobs), ElementsAre("CANCELLED"));
}

TEST_F(JobStoreTest, NotificationMessagesAreCutOnACharacterBoundary) {
  Job job = Create("alice");
  // "é" takes bytes 499 and 500: the cut at 500 bytes backs up before it.
  const std::string log = std::string(499, 'x') + "\xC3\xA9" + std::string(20, 'y');
  ASSERT_TRUE(Move(*store_, job.id(), Job::FAILED, "failed", log).ok());
  auto page = store_->ListNotifications({.owner = "alice"});
  ASSERT_EQ(page->notifications.size(), 1u);
  EXPECT_EQ(page->notifications[0].message(), std::string(499, 'x') + "\xE2\x80\xA6");  // "…"
}

TEST_F(JobStoreTest, AnOwnersNotificationsBecomeVisibleInIdOrder) {
  // Writers finish jobs of one owner at once; a reader never sees an id appear
  // below one it has already seen (which would let "mark read through the
  // newest shown" swallow an entry nobody saw).
  constexpr int kWriters = 4, kJobsEach = 10;
  std::vector<std::string> ids;
  for (int i = 0; i < kWriters * kJobsEach; ++i) ids.push_back(Create("alice").id());
  std::atomic<int> finished{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kJobsEach; ++i) {
        EXPECT_TRUE(Move(*store_, ids[w * kJobsEach + i], Job::CANCELLED, "c").ok());
      }
      finished.fetch_add(1);
    });
  }
  std::set<int64_t> seen;
  int64_t newest = 0;
  int late = 0;
  bool last_round = false;
  while (!last_round) {
    last_round = finished.load() == kWriters;
    auto page = store_->ListNotifications({.owner = "alice", .limit = 1000});
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& n : page->notifications) {
      if (seen.insert(n.id()).second && n.id() < newest) ++late;
    }
    if (!page->notifications.empty()) newest = std::max(newest, page->notifications[0].id());
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(seen.size(), static_cast<size_t>(kWriters * kJobsEach));
  EXPECT_EQ(late, 0);
}

TEST_F(JobStoreTest, NotificationsPageAndMarkReadPerOwner) {
  std::vector<int64_t> ids;  // alice's, oldest first
  for (int i = 0; i < 5; ++i) {
    Job j = Create("alice");
    ASSERT_TRUE(Move(*store_, j.id(), Job::CANCELLED, "c").ok());
  }
  Job bobs = Create("bob");
  ASSERT_TRUE(Move(*store_, bobs.id(), Job::CANCELLED, "c").ok());
  auto all = store_->ListNotifications({.owner = "alice", .limit = 10});
  for (auto it = all->notifications.rbegin(); it != all->notifications.rend(); ++it) {
    ids.push_back(it->id());
  }
  ASSERT_EQ(ids.size(), 5u);
  auto page = store_->ListNotifications({.owner = "alice", .limit = 2, .before_id = ids[3]});
  ASSERT_EQ(page->notifications.size(), 2u);
  EXPECT_EQ(page->notifications[0].id(), ids[2]);
  EXPECT_EQ(page->notifications[1].id(), ids[1]);

  // By id (bob's id among them changes nothing of bob's), then through an id.
  const int64_t bob_id = store_->ListNotifications({.owner = "bob"})->notifications[0].id();
  auto marked = store_->MarkNotificationsRead("alice", {ids[4], bob_id}, 0);
  ASSERT_TRUE(marked.ok()) << marked.status();
  EXPECT_EQ(*marked, std::make_pair(int64_t{1}, int64_t{4}));
  EXPECT_EQ(store_->ListNotifications({.owner = "bob"})->unread_count, 1);
  marked = store_->MarkNotificationsRead("alice", {}, ids[1]);
  EXPECT_EQ(*marked, std::make_pair(int64_t{2}, int64_t{2}));
  // Marking again marks nothing.
  marked = store_->MarkNotificationsRead("alice", {ids[0], ids[4]}, 0);
  EXPECT_EQ(*marked, std::make_pair(int64_t{0}, int64_t{2}));

  auto unread = store_->ListNotifications({.owner = "alice", .unread_only = true});
  ASSERT_EQ(unread->notifications.size(), 2u);
  EXPECT_EQ(unread->notifications[0].id(), ids[3]);
  EXPECT_EQ(unread->notifications[1].id(), ids[2]);
  EXPECT_EQ(unread->unread_count, 2);
  auto everything = store_->ListNotifications({.owner = "alice"});
  EXPECT_TRUE(everything->notifications[0].read());
  EXPECT_FALSE(everything->notifications[1].read());
  // An owner with nothing: an empty page, not an error.
  auto nobody = store_->ListNotifications({.owner = "carol"});
  ASSERT_TRUE(nobody.ok());
  EXPECT_TRUE(nobody->notifications.empty());
  EXPECT_EQ(nobody->unread_count, 0);
}

TEST_F(JobStoreTest, KeysetPageUsesTheOwnerIndex) {
  // With enough rows the planner must answer a deep page from the index, not a scan.
  pqxx::connection conn(dsn_);
  pqxx::nontransaction tx(conn);
  tx.exec(
      "INSERT INTO jobs.jobs (owner, model, dataset_url, state, queue_timeout_seconds) "
      "SELECT 'u' || (i % 50), 'tabular', 'synthetic://blobs', 'COMPLETED', 60 "
      "FROM generate_series(1, 20000) i");
  tx.exec("ANALYZE jobs.jobs");
  pqxx::result plan = tx.exec(
      "EXPLAIN SELECT id FROM jobs.jobs j WHERE j.owner = 'u7' AND (j.created_at, j.id) < "
      "(now(), '00000000-0000-0000-0000-000000000000'::uuid) "
      "ORDER BY j.created_at DESC, j.id DESC LIMIT 50");
  std::string text;
  for (const auto& row : plan) text += row[0].as<std::string>() + "\n";
  EXPECT_THAT(text, HasSubstr("jobs_owner_created"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("Sort")));
}

}  // namespace
}  // namespace trainmesh::jobs
