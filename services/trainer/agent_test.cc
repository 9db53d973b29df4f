// The agent on its own: a scheduler double and the metrics double on real
// gRPC servers (port 0) and an attempt runner the test scripts, so claiming,
// heartbeats, cancel, a lost lease, shutdown and every kind of report are
// checked without training anything (the real runner is libs/training's, and
// the whole mesh runs in tests/e2e).
#include "services/trainer/agent.h"

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "libs/recipes/recipes.h"
#include "libs/server/testing/eventually.h"
#include "services/trainer/testing/fake_metrics.h"

namespace trainmesh::trainer {
namespace {

using server::testing::Eventually;
using ::testing::HasSubstr;
using trainmesh::v1::Assignment;
using trainmesh::v1::Job;

// Hands out the assignments a test queues and records every report.
class SchedulerDouble final : public trainmesh::v1::SchedulerService::Service {
 public:
  grpc::Status RegisterAgent(grpc::ServerContext*,
                             const trainmesh::v1::RegisterAgentRequest* request,
                             trainmesh::v1::Agent* agent) override {
    *agent = request->agent();
    agent->set_id("agent-1");
    return grpc::Status::OK;
  }

  grpc::Status AcquireJob(grpc::ServerContext* context, const trainmesh::v1::AcquireJobRequest*,
                          trainmesh::v1::AcquireJobResponse* response) override {
    const absl::Time give_up = absl::Now() + absl::Seconds(2);
    absl::MutexLock lock(&mu);
    // Short waits, so a cancelled poll (the agent shutting down) ends soon.
    while (queue.empty() && !context->IsCancelled() && absl::Now() < give_up) {
      mu.AwaitWithTimeout(absl::Condition(
                              +[](std::deque<Assignment>* q) { return !q->empty(); }, &queue),
                          absl::Milliseconds(20));
    }
    if (!queue.empty()) {
      *response->mutable_assignment() = queue.front();
      queue.pop_front();
    }
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext*, const trainmesh::v1::HeartbeatRequest* request,
                         trainmesh::v1::HeartbeatResponse* response) override {
    absl::MutexLock lock(&mu);
    heartbeats.push_back(*request);
    if (lost)
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the job belongs to attempt 2");
    response->set_cancel_requested(cancel);
    if (!renew_token.empty()) {
      response->set_job_token(renew_token);
      renew_token.clear();
      token_renewed = true;
    }
    return grpc::Status::OK;
  }

  grpc::Status CompleteJob(grpc::ServerContext*, const trainmesh::v1::CompleteJobRequest* request,
                           trainmesh::v1::CompleteJobResponse*) override {
    absl::MutexLock lock(&mu);
    completes.push_back(*request);
    return grpc::Status::OK;
  }

  grpc::Status FailJob(grpc::ServerContext*, const trainmesh::v1::FailJobRequest* request,
                       trainmesh::v1::FailJobResponse*) override {
    absl::MutexLock lock(&mu);
    fails.push_back(*request);
    return grpc::Status::OK;
  }

  grpc::Status ReleaseJob(grpc::ServerContext*, const trainmesh::v1::ReleaseJobRequest* request,
                          trainmesh::v1::ReleaseJobResponse*) override {
    absl::MutexLock lock(&mu);
    releases.push_back(*request);
    return grpc::Status::OK;
  }

  // Whether some heartbeat satisfies `match`.
  template <typename Match>
  bool HeardBeat(Match match) {
    absl::MutexLock lock(&mu);
    for (const auto& h : heartbeats) {
      if (match(h)) return true;
    }
    return false;
  }
  size_t reports() {
    absl::MutexLock lock(&mu);
    return completes.size() + fails.size() + releases.size();
  }

  absl::Mutex mu;
  std::deque<Assignment> queue ABSL_GUARDED_BY(mu);
  bool cancel ABSL_GUARDED_BY(mu) = false;
  bool lost ABSL_GUARDED_BY(mu) = false;
  std::string renew_token ABSL_GUARDED_BY(mu);
  bool token_renewed ABSL_GUARDED_BY(mu) = false;
  std::vector<trainmesh::v1::HeartbeatRequest> heartbeats ABSL_GUARDED_BY(mu);
  std::vector<trainmesh::v1::CompleteJobRequest> completes ABSL_GUARDED_BY(mu);
  std::vector<trainmesh::v1::FailJobRequest> fails ABSL_GUARDED_BY(mu);
  std::vector<trainmesh::v1::ReleaseJobRequest> releases ABSL_GUARDED_BY(mu);
};

trainmesh::v1::Artifact Checkpoint(int64_t step) {
  trainmesh::v1::Artifact a;
  a.set_uri(absl::StrCat("artifact://job-1/checkpoint-", step, ".pt"));
  a.set_step(step);
  return a;
}

// Waits for the agent to stop the attempt; returns the stop value it set.
int AwaitStop(const training::AttemptOptions& o) {
  Eventually([&] { return o.stop->load() != training::kKeepGoing; });
  return o.stop->load();
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scheduler_server_ = std::make_unique<testing::Server>(&scheduler_);
    metrics_server_ = std::make_unique<testing::Server>(&metrics_);
    artifacts_ = absl::StrCat(::testing::TempDir(), "/agent-test-",
                              ::testing::UnitTest::GetInstance()->random_seed(), "-",
                              reinterpret_cast<uintptr_t>(this));
  }

  void TearDown() override {
    if (agent_ != nullptr) {
      agent_->Shutdown();
      run_.join();
    }
  }

  // Starts an agent whose attempts run `runner`, and queues one assignment
  // of a job with `model`.
  void Start(training::AttemptRunner runner, const std::string& model = "mlp-policy",
             bool allow_scripts = false) {
    AgentOptions options;
    options.name = "test-agent";
    options.api_key = "agent-key";
    options.device = "cpu";
    options.allow_scripts = allow_scripts;
    options.artifact_root = artifacts_;
    options.acquire_wait = absl::Seconds(1);
    options.report_patience = absl::Seconds(10);
    auto channel = [](int port) {
      return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                 grpc::InsecureChannelCredentials());
    };
    agent_ = std::make_unique<Agent>(
        options, trainmesh::v1::SchedulerService::NewStub(channel(scheduler_server_->port())),
        trainmesh::v1::MetricsService::NewStub(channel(metrics_server_->port())),
        [this, runner](const training::AttemptOptions& o) {
          ++attempts_;
          return runner(o);
        });
    Assignment a;
    a.mutable_job()->set_id("job-1");
    a.mutable_job()->set_owner("ada");
    a.mutable_job()->set_model(model);
    a.set_attempt(3);
    a.set_job_token("token-1");
    a.mutable_heartbeat_interval()->set_nanos(50'000'000);
    *a.mutable_resume_from() = Checkpoint(40);
    {
      absl::MutexLock lock(&scheduler_.mu);
      scheduler_.queue.push_back(a);
    }
    run_ = std::thread([this] { EXPECT_TRUE(agent_->Run().ok()); });
  }

  SchedulerDouble scheduler_;
  testing::FakeMetrics metrics_;
  std::unique_ptr<testing::Server> scheduler_server_, metrics_server_;
  std::string artifacts_;
  std::unique_ptr<Agent> agent_;
  std::thread run_;
  std::atomic<int> attempts_{0};
};

TEST_F(AgentTest, ACompletedAttemptIsReportedWithItsArtifactAndProgress) {
  std::optional<training::AttemptOptions> seen;
  absl::Mutex seen_mu;
  Start([&](const training::AttemptOptions& o) {
    {
      absl::MutexLock lock(&seen_mu);
      seen = o;
    }
    training::RunResult r;
    r.outcome = training::Outcome::kCompleted;
    r.artifact.set_uri("artifact://job-1/model.pt");
    r.progress.set_step(100);
    return r;
  });
  ASSERT_TRUE(Eventually([&] { return scheduler_.reports() == 1; }));
  {
    absl::MutexLock lock(&scheduler_.mu);
    ASSERT_EQ(scheduler_.completes.size(), 1u);
    EXPECT_EQ(scheduler_.completes[0].job_id(), "job-1");
    EXPECT_EQ(scheduler_.completes[0].job_token(), "token-1");
    EXPECT_EQ(scheduler_.completes[0].artifact().uri(), "artifact://job-1/model.pt");
    EXPECT_EQ(scheduler_.completes[0].progress().step(), 100);
  }
  // The runner was told what the assignment says, and how to stop.
  absl::MutexLock lock(&seen_mu);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->job.id(), "job-1");
  EXPECT_EQ(seen->attempt, 3);
  EXPECT_EQ(seen->job_token, "token-1");
  ASSERT_TRUE(seen->resume_from.has_value());
  EXPECT_EQ(seen->resume_from->step(), 40);
  EXPECT_EQ(seen->device, "cpu");
  EXPECT_NE(seen->store, nullptr);
  EXPECT_NE(seen->stop, nullptr);
  EXPECT_FALSE(seen->scripts.allowed);
}

TEST_F(AgentTest, HeartbeatsSayRunningOnceStepsAreTakenAndCarryTheLatestCheckpoint) {
  Start([&](const training::AttemptOptions& o) {
    EXPECT_TRUE(Eventually([&] {
      return scheduler_.HeardBeat([](const auto& h) { return h.state() == Job::INITIALIZING; });
    }));
    trainmesh::v1::Progress p;
    p.set_step(7);
    o.sink.progress(p);
    o.sink.checkpoint(Checkpoint(5));
    EXPECT_TRUE(Eventually([&] {
      return scheduler_.HeardBeat([](const auto& h) {
        return h.state() == Job::RUNNING && h.progress().step() == 7 &&
               h.checkpoint().step() == 5 && h.job_token() == "token-1" && h.job_id() == "job-1";
      });
    }));
    training::RunResult r;
    r.outcome = training::Outcome::kCompleted;
    return r;
  });
  ASSERT_TRUE(Eventually([&] { return scheduler_.reports() == 1; }));
  absl::MutexLock lock(&scheduler_.mu);
  EXPECT_EQ(scheduler_.completes.size(), 1u);
}

TEST_F(AgentTest, ACancelFromTheSchedulerStopsTheAttemptAndTheJobIsReleased) {
  std::atomic<int> stopped_with{-1};
  Start([&](const training::AttemptOptions& o) {
    o.sink.checkpoint(Checkpoint(9));
    {
      absl::MutexLock lock(&scheduler_.mu);
      scheduler_.cancel = true;
    }
    stopped_with = AwaitStop(o);
    training::RunResult r;
    r.outcome = training::Outcome::kCancelled;
    return r;
  });
  ASSERT_TRUE(Eventually([&] { return scheduler_.reports() == 1; }));
  EXPECT_EQ(stopped_with.load(), training::kCancel);
  absl::MutexLock lock(&scheduler_.mu);
  ASSERT_EQ(scheduler_.releases.size(), 1u);
  EXPECT_EQ(scheduler_.releases[0].reason(), "cancelled");
  EXPECT_EQ(scheduler_.releases[0].checkpoint().step(), 9);
  EXPECT_TRUE(scheduler_.completes.empty());
  EXPECT_TRUE(scheduler_.fails.empty());
}

TEST_F(AgentTest, ALostLeaseStopsTheAttemptAndNothingIsReported) {
  std::atomic<int> stopped_with{-1};
  Start([&](const training::AttemptOptions& o) {
    {
      absl::MutexLock lock(&scheduler_.mu);
      scheduler_.lost = true;
    }
    stopped_with = AwaitStop(o);
    training::RunResult r;
    r.outcome = training::Outcome::kFailed;  // whatever it says, another attempt owns the job
    r.error = "interrupted";
    return r;
  });
  ASSERT_TRUE(Eventually([&] { return attempts_.load() == 1 && agent_->running() == 0; }));
  EXPECT_EQ(stopped_with.load(), training::kCancel);
  EXPECT_EQ(scheduler_.reports(), 0u);
}

TEST_F(AgentTest, ShutdownPreemptsARunningAttemptAndGivesTheJobBackWithItsCheckpoint) {
  std::atomic<int> stopped_with{-1};
  std::atomic<bool> started{false};
  Start([&](const training::AttemptOptions& o) {
    o.sink.checkpoint(Checkpoint(12));
    started = true;
    stopped_with = AwaitStop(o);
    training::RunResult r;
    r.outcome = training::Outcome::kPreempted;
    r.checkpoint = Checkpoint(13);  // written on the way out
    return r;
  });
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  agent_->Shutdown();
  run_.join();  // Run returns once the attempt is reported
  agent_.reset();
  EXPECT_EQ(stopped_with.load(), training::kPreempt);
  absl::MutexLock lock(&scheduler_.mu);
  ASSERT_EQ(scheduler_.releases.size(), 1u);
  EXPECT_EQ(scheduler_.releases[0].reason(), "agent shutting down");
  EXPECT_EQ(scheduler_.releases[0].checkpoint().step(), 13);
}

TEST_F(AgentTest, AFailedAttemptIsReportedWithItsKindAndItsLastCheckpoint) {
  Start([&](const training::AttemptOptions& o) {
    o.sink.checkpoint(Checkpoint(4));
    training::RunResult r;
    r.outcome = training::Outcome::kFailed;
    r.error_kind = trainmesh::v1::ERROR_KIND_USER;
    r.error = "loss became NaN at step 5";
    return r;
  });
  ASSERT_TRUE(Eventually([&] { return scheduler_.reports() == 1; }));
  absl::MutexLock lock(&scheduler_.mu);
  ASSERT_EQ(scheduler_.fails.size(), 1u);
  EXPECT_EQ(scheduler_.fails[0].kind(), trainmesh::v1::ERROR_KIND_USER);
  EXPECT_EQ(scheduler_.fails[0].error(), "loss became NaN at step 5");
  EXPECT_EQ(scheduler_.fails[0].checkpoint().step(), 4);
}

TEST_F(AgentTest, ARenewedJobTokenIsUsedForLaterReports) {
  Start([&](const training::AttemptOptions&) {
    {
      absl::MutexLock lock(&scheduler_.mu);
      scheduler_.renew_token = "token-2";
    }
    // Renewed, and a later heartbeat already carries the new token.
    EXPECT_TRUE(Eventually([&] {
      return scheduler_.HeardBeat([](const auto& h) { return h.job_token() == "token-2"; });
    }));
    training::RunResult r;
    r.outcome = training::Outcome::kCompleted;
    return r;
  });
  ASSERT_TRUE(Eventually([&] { return scheduler_.reports() == 1; }));
  absl::MutexLock lock(&scheduler_.mu);
  ASSERT_EQ(scheduler_.completes.size(), 1u);
  EXPECT_EQ(scheduler_.completes[0].job_token(), "token-2");
}

TEST_F(AgentTest, AScriptJobOnAnAgentThatRunsNoScriptsFailsAsTheUsersError) {
  Start(training::RunAttempt, std::string(recipes::kScript), /*allow_scripts=*/false);
  ASSERT_TRUE(Eventually([&] { return scheduler_.reports() == 1; }));
  absl::MutexLock lock(&scheduler_.mu);
  ASSERT_EQ(scheduler_.fails.size(), 1u);
  EXPECT_EQ(scheduler_.fails[0].kind(), trainmesh::v1::ERROR_KIND_USER);
  EXPECT_THAT(scheduler_.fails[0].error(), HasSubstr("does not run scripts"));
}

}  // namespace
}  // namespace trainmesh::trainer
