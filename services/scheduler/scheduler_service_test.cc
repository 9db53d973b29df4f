// The scheduler's logic against a real Postgres (no gRPC): ordering, fair
// share, limits, isolation, fencing, leases and timeouts.
#include "services/scheduler/scheduler_service.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/status/field_violations.h"
#include "libs/pg/migrations.h"
#include "libs/pg/testing/test_cluster.h"
#include "libs/server/executor.h"
#include "libs/telemetry/metrics.h"
#include "pqxx/pqxx"
#include "services/scheduler/scheduler_metrics.h"
#include "services/scheduler/waiters.h"

namespace trainmesh::scheduler {
const std::vector<pg::Migration>& Migrations();
namespace {

using ::testing::HasSubstr;
using trainmesh::v1::Job;
using trainmesh::v1::Principal;

int next_job = 0;

std::string NewId() {
  return absl::StrCat("00000000-0000-4000-8000-", absl::Hex(++next_job, absl::kZeroPad12));
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = pg::testing::TestCluster::Get().NewDatabase();
    ASSERT_TRUE(pg::Migrate(dsn_, "scheduler", Migrations()).ok());
    pool_ = std::make_unique<pg::ConnectionPool>(pg::PoolOptions{.dsn = dsn_, .size = 8});
    store_ = std::make_unique<SchedulerStore>(pool_.get());
    SchedulerOptions options;
    options.max_running_per_user = 2;
    options.lease = absl::Seconds(30);
    options.mint = [](const Job& job, int attempt, const std::string& agent) {
      trainmesh::v1::JobToken t;
      t.set_token(absl::StrCat("token:", job.id(), ":", attempt, ":", agent));
      return absl::StatusOr<trainmesh::v1::JobToken>(t);
    };
    // Users' own limits as the auth service would answer (carol: 3, dave: 1;
    // anyone else has none there).
    options.user_limit = [this](const std::string& owner) -> absl::StatusOr<int> {
      ++limit_lookups_;
      if (owner == "carol") return 3;
      if (owner == "dave") return 1;
      return absl::NotFoundError("no such user");
    };
    service_ = std::make_unique<SchedulerService>(store_.get(), options);
  }

  static Principal User(const std::string& subject, std::vector<std::string> scopes = {"agent"}) {
    Principal p;
    p.set_subject(subject);
    for (auto& s : scopes) p.add_scopes(s);
    return p;
  }

  // The principal a job token for this assignment stands for.
  static Principal TokenOf(const trainmesh::v1::Assignment& a) {
    Principal p;
    p.set_kind(Principal::JOB);
    p.set_subject(a.job().owner());
    p.set_job_id(a.job().id());
    p.set_attempt(a.attempt());
    p.add_scopes("job:report");
    return p;
  }

  std::string Enqueue(const std::string& owner, int priority = 0, bool shared = false,
                      const std::string& model = "tabular", int max_attempts = 3) {
    trainmesh::v1::EnqueueRequest request;
    const std::string id = NewId();
    request.set_job_id(id);
    Job* job = request.mutable_job();
    job->set_id(id);
    job->set_owner(owner);
    job->set_model(model);
    job->set_priority(priority);
    job->set_max_attempts(max_attempts);
    job->set_allow_shared_pool(shared);
    job->mutable_queue_timeout()->set_seconds(3600);
    auto r = service_->Enqueue(User("jobs-service", {"internal"}), request);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->newly_queued());
    return id;
  }

  trainmesh::v1::Agent Register(const std::string& owner, bool shared_pool = false,
                                std::vector<std::string> recipes = {}) {
    trainmesh::v1::RegisterAgentRequest request;
    request.mutable_agent()->set_name(absl::StrCat(owner, "-agent"));
    request.mutable_agent()->set_shared_pool(shared_pool);
    request.mutable_agent()->set_allow_scripts(true);
    request.mutable_agent()->set_max_concurrent_jobs(8);
    for (auto& r : recipes) request.mutable_agent()->mutable_capabilities()->add_recipes(r);
    // Only an admin puts an agent in the shared pool.
    auto agent = service_->RegisterAgent(
        shared_pool ? User(owner, {"agent", "admin"}) : User(owner), request);
    EXPECT_TRUE(agent.ok()) << agent.status();
    return *agent;
  }

  std::optional<trainmesh::v1::Assignment> Acquire(const trainmesh::v1::Agent& agent) {
    auto got = service_->TryAcquire(agent);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::nullopt;
  }

  int OutboxCount(const std::string& state) {
    pqxx::connection conn(dsn_);
    int n = 0;
    for (const auto& row : pqxx::nontransaction(conn).exec("SELECT payload FROM scheduler.outbox")) {
      trainmesh::v1::ReportJobStatusRequest r;
      pqxx::binarystring b(row[0]);
      r.ParseFromArray(b.data(), static_cast<int>(b.size()));
      if (Job::State_Name(r.state()) == state) ++n;
    }
    return n;
  }

  void Sql(const std::string& sql) {
    pqxx::connection conn(dsn_);
    pqxx::nontransaction(conn).exec(sql);
  }

  std::atomic<int> limit_lookups_{0};
  std::string dsn_;
  std::unique_ptr<pg::ConnectionPool> pool_;
  std::unique_ptr<SchedulerStore> store_;
  std::unique_ptr<SchedulerService> service_;
};

TEST_F(SchedulerTest, EnqueueIsIdempotentAndReportsQueued) {
  const std::string id = Enqueue("alice");
  trainmesh::v1::EnqueueRequest again;
  again.set_job_id(id);
  again.mutable_job()->set_id(id);
  again.mutable_job()->set_owner("alice");
  again.mutable_job()->set_model("tabular");
  auto r = service_->Enqueue(User("jobs-service", {"internal"}), again);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->newly_queued());
  EXPECT_EQ(OutboxCount("QUEUED"), 1);
}

TEST_F(SchedulerTest, PriorityThenFairShareThenAge) {
  trainmesh::v1::Agent pool_agent = Register("ops", /*shared_pool=*/true);
  const std::string a1 = Enqueue("alice", 0, true);
  const std::string a2 = Enqueue("alice", 0, true);
  const std::string b1 = Enqueue("bob", 0, true);
  const std::string urgent = Enqueue("carol", 5, true);
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) order.push_back(Acquire(pool_agent)->job().id());
  // carol's priority first; then alice's oldest; then bob (fewest running) before alice's second.
  EXPECT_EQ(order, (std::vector<std::string>{urgent, a1, b1, a2}));
  EXPECT_EQ(OutboxCount("INITIALIZING"), 4);
}

TEST_F(SchedulerTest, AgentsTakeOnlyJobsTheirOwnerMayRun) {
  trainmesh::v1::Agent alices = Register("alice");
  trainmesh::v1::Agent bobs = Register("bob");
  const std::string bob_private = Enqueue("bob");
  EXPECT_FALSE(Acquire(alices).has_value());  // not alice's, not shared
  const std::string alice_job = Enqueue("alice");
  auto got = Acquire(alices);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->job().id(), alice_job);
  EXPECT_EQ(Acquire(bobs)->job().id(), bob_private);
  // Another user's agent cannot poll as alice's.
  trainmesh::v1::AcquireJobRequest request;
  request.set_agent_id(alices.id());
  EXPECT_EQ(service_->CheckAcquire(User("bob"), request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, ScriptsRunOnlyOnTheOwnersAgents) {
  trainmesh::v1::Agent pool_agent = Register("ops", /*shared_pool=*/true);
  Enqueue("alice", 0, /*shared=*/true, "script");
  EXPECT_FALSE(Acquire(pool_agent).has_value());
  trainmesh::v1::Agent alices = Register("alice");
  EXPECT_TRUE(Acquire(alices).has_value());
  trainmesh::v1::RegisterAgentRequest request;
  request.mutable_agent()->set_name("x");
  request.mutable_agent()->set_allow_shared_scripts(true);
  EXPECT_EQ(service_->RegisterAgent(User("ops"), request).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(SchedulerTest, OnlyAnAdminPutsAnAgentInTheSharedPool) {
  trainmesh::v1::RegisterAgentRequest request;
  request.mutable_agent()->set_name("mallory-agent");
  request.mutable_agent()->set_shared_pool(true);
  const absl::Status refused = service_->RegisterAgent(User("mallory"), request).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("shared pool"));
  // Nothing was registered: mallory has no agent to poll with.
  auto agents = service_->ListAgents(User("mallory"), trainmesh::v1::ListAgentsRequest());
  ASSERT_TRUE(agents.ok());
  for (const auto& a : agents->agents()) EXPECT_NE(a.owner(), "mallory");
  // An admin's registration works, and alice's shared job reaches it.
  trainmesh::v1::Agent pool = Register("ops", /*shared_pool=*/true);
  const std::string shared = Enqueue("alice", 0, /*shared=*/true);
  EXPECT_EQ(Acquire(pool)->job().id(), shared);
  // A key an admin granted the pool to (agent + pool:shared, no admin) joins
  // it too; the grant does not extend to other users' scripts.
  request.mutable_agent()->set_name("operator-agent");
  absl::StatusOr<trainmesh::v1::Agent> granted =
      service_->RegisterAgent(User("ops", {"agent", "pool:shared"}), request);
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_TRUE(granted->shared_pool());
  request.mutable_agent()->set_allow_shared_scripts(true);
  EXPECT_EQ(service_->RegisterAgent(User("ops", {"agent", "pool:shared"}), request).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(SchedulerTest, ReportsNameOnlyFilesOfTheirOwnJob) {
  trainmesh::v1::Agent agent = Register("mallory");
  const std::string victim = Enqueue("alice");
  const std::string id = Enqueue("mallory");
  auto a = Acquire(agent);
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->job().id(), id);
  const std::string stolen = absl::StrCat("artifact:", victim, "/model.pt");
  trainmesh::v1::HeartbeatRequest beat;
  beat.set_job_id(id);
  beat.set_state(Job::RUNNING);
  for (const std::string& uri : {stolen, std::string("artifact:") + id + "/../" + victim + "/model.pt",
                                 std::string("/etc/shadow"), std::string("artifact:") + id + "/"}) {
    SCOPED_TRACE(uri);
    beat.mutable_checkpoint()->set_uri(uri);
    const absl::Status s = service_->Heartbeat(TokenOf(*a), beat).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status::FieldViolationsOf(s), ::testing::Contains(::testing::Field(
                                                  &status::FieldViolation::field, "checkpoint.uri")));
  }
  trainmesh::v1::FailJobRequest fail;
  fail.set_job_id(id);
  fail.set_kind(trainmesh::v1::ERROR_KIND_INFRA);
  fail.mutable_checkpoint()->set_uri(stolen);
  EXPECT_EQ(service_->FailJob(TokenOf(*a), fail).status().code(), absl::StatusCode::kInvalidArgument);
  trainmesh::v1::ReleaseJobRequest release;
  release.set_job_id(id);
  release.mutable_checkpoint()->set_uri(stolen);
  EXPECT_EQ(service_->ReleaseJob(TokenOf(*a), release).status().code(), absl::StatusCode::kInvalidArgument);
  trainmesh::v1::CompleteJobRequest complete;
  complete.set_job_id(id);
  complete.mutable_artifact()->set_uri(stolen);
  EXPECT_EQ(service_->CompleteJob(TokenOf(*a), complete).status().code(), absl::StatusCode::kInvalidArgument);
  // Its own file is accepted, and the refused reports changed nothing.
  complete.mutable_artifact()->set_uri(absl::StrCat("artifact:", id, "/model.pt"));
  EXPECT_TRUE(service_->CompleteJob(TokenOf(*a), complete).ok());
}

TEST_F(SchedulerTest, RecipeCapabilitiesFilter) {
  trainmesh::v1::Agent lm_only = Register("alice", false, {"lora-lm"});
  Enqueue("alice", 0, false, "tabular");
  EXPECT_FALSE(Acquire(lm_only).has_value());
  const std::string lm = Enqueue("alice", 0, false, "lora-lm");
  EXPECT_EQ(Acquire(lm_only)->job().id(), lm);
}

TEST_F(SchedulerTest, PerUserLimitHoldsUnderConcurrentClaims) {
  std::vector<trainmesh::v1::Agent> agents;
  for (int i = 0; i < 6; ++i) agents.push_back(Register("ops", true));
  for (int i = 0; i < 6; ++i) Enqueue("alice", 0, true);
  const std::string bob = Enqueue("bob", 0, true);
  std::vector<std::thread> threads;
  std::vector<std::string> got(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto a = service_->TryAcquire(agents[i]);
      if (a.ok() && a->has_value()) got[i] = (*a)->job().owner();
    });
  }
  for (auto& t : threads) t.join();
  int alice = 0, bobs = 0;
  for (const auto& o : got) {
    alice += o == "alice";
    bobs += o == "bob";
  }
  EXPECT_EQ(alice, 2);  // the limit, never more
  EXPECT_EQ(bobs, 1);
  (void)bob;
}

TEST_F(SchedulerTest, AUsersOwnConcurrencyLimitIsHonoured) {
  std::vector<trainmesh::v1::Agent> agents;
  for (int i = 0; i < 8; ++i) agents.push_back(Register("ops", true));
  for (int i = 0; i < 4; ++i) Enqueue("carol", 0, true);  // her limit: 3, above the mesh's 2
  for (int i = 0; i < 3; ++i) Enqueue("dave", 0, true);   // his: 1
  for (int i = 0; i < 3; ++i) Enqueue("erin", 0, true);   // none: the mesh's 2
  std::map<std::string, int> running;
  for (const auto& agent : agents) {
    if (auto got = Acquire(agent)) ++running[got->job().owner()];
  }
  EXPECT_EQ(running["carol"], 3);
  EXPECT_EQ(running["dave"], 1);
  EXPECT_EQ(running["erin"], 2);
  // The queue position says why dave's next job waits, with his own limit.
  std::string waiting;
  pqxx::connection conn(dsn_);
  for (const auto& row : pqxx::nontransaction(conn).exec(
           "SELECT job_id::text FROM scheduler.queue WHERE owner = 'dave' AND state = 'QUEUED'")) {
    waiting = row[0].as<std::string>();
  }
  ASSERT_FALSE(waiting.empty());
  trainmesh::v1::GetQueuePositionRequest position;
  position.set_job_id(waiting);
  auto pos = service_->GetQueuePosition(User("dave"), position);
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_THAT(pos->reason(), HasSubstr("1 of 1"));
  // Learnt once per owner, not per job.
  EXPECT_EQ(limit_lookups_.load(), 3);
}

TEST_F(SchedulerTest, ReportsAreFencedByAttempt) {
  trainmesh::v1::Agent agent = Register("alice");
  const std::string id = Enqueue("alice");
  auto first = *Acquire(agent);
  EXPECT_EQ(first.attempt(), 1);
  EXPECT_EQ(first.job_token(), absl::StrCat("token:", id, ":1:", agent.id()));
  trainmesh::v1::HeartbeatRequest beat;
  beat.set_job_id(id);
  beat.set_state(Job::RUNNING);
  beat.mutable_progress()->set_step(10);
  beat.mutable_checkpoint()->set_uri(absl::StrCat("artifact:", id, "/checkpoint-10.pt"));
  ASSERT_TRUE(service_->Heartbeat(TokenOf(first), beat).ok());
  EXPECT_EQ(OutboxCount("RUNNING"), 1);
  // The agent is lost: infra failure, requeued; a new attempt starts from the checkpoint.
  trainmesh::v1::FailJobRequest fail;
  fail.set_job_id(id);
  fail.set_kind(trainmesh::v1::ERROR_KIND_INFRA);
  fail.set_error("node preempted");
  auto requeued = service_->FailJob(TokenOf(first), fail);
  ASSERT_TRUE(requeued.ok());
  EXPECT_TRUE(requeued->requeued());
  auto second = *Acquire(agent);
  EXPECT_EQ(second.attempt(), 2);
  EXPECT_EQ(second.resume_from().uri(), absl::StrCat("artifact:", id, "/checkpoint-10.pt"));
  // The zombie of attempt 1 is refused everywhere.
  absl::Status zombie = service_->Heartbeat(TokenOf(first), beat).status();
  EXPECT_EQ(zombie.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(zombie.message(), HasSubstr("attempt 1"));
  trainmesh::v1::CompleteJobRequest done;
  done.set_job_id(id);
  EXPECT_EQ(service_->CompleteJob(TokenOf(first), done).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A token for another job is refused before the database is asked.
  auto other = TokenOf(second);
  other.set_job_id(NewId());
  EXPECT_EQ(service_->CompleteJob(other, done).status().code(), absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(service_->CompleteJob(TokenOf(second), done).ok());
  EXPECT_EQ(OutboxCount("COMPLETED"), 1);
}

TEST_F(SchedulerTest, UserFailuresAreFinalInfraFailuresRetryUntilTheLimit) {
  trainmesh::v1::Agent agent = Register("alice");
  const std::string user_bug = Enqueue("alice");
  auto a = *Acquire(agent);
  trainmesh::v1::FailJobRequest fail;
  fail.set_job_id(user_bug);
  fail.set_kind(trainmesh::v1::ERROR_KIND_USER);
  fail.set_error("dataset has no column 'label'");
  EXPECT_FALSE(service_->FailJob(TokenOf(a), fail)->requeued());
  EXPECT_EQ(OutboxCount("FAILED"), 1);

  const std::string flaky = Enqueue("alice", 0, false, "tabular", /*max_attempts=*/2);
  fail.set_job_id(flaky);
  fail.set_kind(trainmesh::v1::ERROR_KIND_INFRA);
  auto b = *Acquire(agent);
  EXPECT_TRUE(service_->FailJob(TokenOf(b), fail)->requeued());
  auto c = *Acquire(agent);
  EXPECT_FALSE(service_->FailJob(TokenOf(c), fail)->requeued());
  EXPECT_EQ(OutboxCount("FAILED"), 2);
}

TEST_F(SchedulerTest, ExpiredLeasesAreRequeuedThenFailed) {
  trainmesh::v1::Agent agent = Register("alice");
  const std::string id = Enqueue("alice", 0, false, "tabular", /*max_attempts=*/2);
  ASSERT_TRUE(Acquire(agent).has_value());
  Sql("UPDATE scheduler.queue SET lease_expires_at = now() - INTERVAL '1 hour'");
  auto reaped = store_->Reap(absl::Seconds(30));
  ASSERT_TRUE(reaped.ok());
  EXPECT_EQ(reaped->requeued, 1);
  auto again = *Acquire(agent);
  EXPECT_EQ(again.attempt(), 2);
  Sql("UPDATE scheduler.queue SET lease_expires_at = now() - INTERVAL '1 hour'");
  EXPECT_EQ(store_->Reap(absl::Seconds(30))->failed, 1);
  EXPECT_EQ(OutboxCount("FAILED"), 1);
  // Inside the grace nothing is reaped.
  const std::string fresh = Enqueue("alice");
  ASSERT_TRUE(Acquire(agent).has_value());
  Sql(absl::StrCat("UPDATE scheduler.queue SET lease_expires_at = now() - INTERVAL '5 seconds' "
                   "WHERE job_id = '", fresh, "'"));
  EXPECT_EQ(store_->Reap(absl::Seconds(30))->requeued, 0);
}

TEST_F(SchedulerTest, UnclaimedJobsTimeOut) {
  const std::string id = Enqueue("alice");
  Sql("UPDATE scheduler.queue SET queued_at = now() - INTERVAL '2 hours'");
  EXPECT_EQ(store_->Reap(absl::Seconds(30))->timed_out, 1);
  pqxx::connection conn(dsn_);
  pqxx::binarystring b(pqxx::nontransaction(conn).exec(
      "SELECT payload FROM scheduler.outbox ORDER BY id DESC LIMIT 1")[0][0]);
  trainmesh::v1::ReportJobStatusRequest r;
  r.ParseFromArray(b.data(), static_cast<int>(b.size()));
  EXPECT_EQ(r.state(), Job::FAILED);
  EXPECT_THAT(r.error_log(), HasSubstr("no agent claimed the job within 1h"));
}

TEST_F(SchedulerTest, CancelReachesQueuedAtOnceAndRunningAtTheNextHeartbeat) {
  trainmesh::v1::Agent agent = Register("alice");
  const std::string queued = Enqueue("alice");
  trainmesh::v1::CancelAssignmentRequest cancel;
  cancel.set_job_id(queued);
  EXPECT_FALSE(service_->CancelAssignment(User("jobs", {"internal"}), cancel)->running());
  EXPECT_FALSE(Acquire(agent).has_value());

  const std::string running = Enqueue("alice");
  auto a = *Acquire(agent);
  cancel.set_job_id(running);
  EXPECT_TRUE(service_->CancelAssignment(User("jobs", {"internal"}), cancel)->running());
  trainmesh::v1::HeartbeatRequest beat;
  beat.set_job_id(running);
  EXPECT_TRUE(service_->Heartbeat(TokenOf(a), beat)->cancel_requested());
  trainmesh::v1::ReleaseJobRequest release;
  release.set_job_id(running);
  ASSERT_TRUE(service_->ReleaseJob(TokenOf(a), release).ok());
  EXPECT_FALSE(Acquire(agent).has_value());  // cancelled, not requeued
}

TEST_F(SchedulerTest, MetricsShowTheQueueAndAgents) {
  telemetry::Registry registry;
  server::Executor executor(1);
  Waiters waiters(&executor);
  QueueStatsCache stats(store_.get(), absl::Seconds(15), absl::Hours(1));
  telemetry::Registry::Registration exported = ExportMetrics(&registry, &stats, &waiters);
  // Nothing read yet: the queue's series are absent, not zero.
  EXPECT_EQ(telemetry::ParseExposition(registry.Render()).count("trainmesh_queue_oldest_wait_seconds"), 0u);
  trainmesh::v1::Agent agent = Register("alice");
  Register("bob");
  Register("carol");
  Sql("UPDATE scheduler.agents SET last_seen_at = now() - INTERVAL '1 hour' WHERE owner = 'bob'");
  // Gone for days: no longer counted.
  Sql("UPDATE scheduler.agents SET last_seen_at = now() - INTERVAL '3 days' WHERE owner = 'carol'");
  Enqueue("alice");
  Enqueue("alice");
  Enqueue("alice");
  ASSERT_TRUE(Acquire(agent).has_value());
  Sql("UPDATE scheduler.queue SET queued_at = now() - INTERVAL '90 seconds' WHERE state = 'QUEUED'");

  stats.Refresh();
  const auto s = telemetry::ParseExposition(registry.Render());
  EXPECT_EQ(s.at("trainmesh_queue_jobs{state=\"queued\"}"), 2);
  EXPECT_EQ(s.at("trainmesh_queue_jobs{state=\"running\"}"), 1);
  EXPECT_GE(s.at("trainmesh_queue_oldest_wait_seconds"), 90);
  EXPECT_LT(s.at("trainmesh_queue_oldest_wait_seconds"), 3600);
  EXPECT_EQ(s.at("trainmesh_agents{status=\"online\"}"), 1);
  EXPECT_EQ(s.at("trainmesh_agents{status=\"offline\"}"), 1);
  EXPECT_EQ(s.at("trainmesh_agent_slots_online"), 8);
  pqxx::connection conn(dsn_);
  EXPECT_EQ(s.at("trainmesh_scheduler_outbox_pending"),
            pqxx::nontransaction(conn).exec("SELECT count(*) FROM scheduler.outbox")[0][0].as<int>());
  EXPECT_GE(s.at("trainmesh_scheduler_outbox_pending"), 4);  // 3 queued, 1 running
  EXPECT_EQ(s.at("trainmesh_scheduler_waiting_polls"), 0);
  EXPECT_EQ(s.count("trainmesh_scheduler_claims_total"), 0u) << "the process's, not this registry's";

  // Nothing waits: the oldest wait is 0, not the age of a finished job.
  Sql("UPDATE scheduler.queue SET state = 'DONE'");
  stats.Refresh();
  EXPECT_EQ(telemetry::ParseExposition(registry.Render()).at("trainmesh_queue_oldest_wait_seconds"), 0);
}

TEST_F(SchedulerTest, QueuePositionSaysWhyAJobWaits) {
  const std::string first = Enqueue("alice");
  const std::string second = Enqueue("alice");
  trainmesh::v1::GetQueuePositionRequest request;
  request.set_job_id(second);
  auto pos = service_->GetQueuePosition(User("alice"), request);
  ASSERT_TRUE(pos.ok());
  EXPECT_EQ(pos->reason(), "no agent online for this job");
  trainmesh::v1::Agent agent = Register("alice");
  pos = service_->GetQueuePosition(User("alice"), request);
  EXPECT_EQ(pos->jobs_ahead(), 1);
  EXPECT_EQ(pos->reason(), "behind 1 job");
  EXPECT_EQ(pos->agents_online(), 1);
  Acquire(agent);
  Enqueue("alice");
  Acquire(agent);  // alice now runs 2 = the limit
  const std::string third = Enqueue("alice");
  request.set_job_id(third);
  EXPECT_THAT(service_->GetQueuePosition(User("alice"), request)->reason(),
              HasSubstr("user concurrency limit"));
  EXPECT_EQ(service_->GetQueuePosition(User("bob"), request).status().code(),
            absl::StatusCode::kNotFound);
  (void)first;
}

}  // namespace
}  // namespace trainmesh::scheduler
