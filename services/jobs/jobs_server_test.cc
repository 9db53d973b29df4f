// gRPC integration tests: a real jobs server on port 0 against a real Postgres.
#include "services/jobs/jobs_server.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "libs/identity/testing/test_keys.h"
#include "libs/pg/listener.h"
#include "libs/pg/migrations.h"
#include "libs/pg/testing/test_cluster.h"
#include "libs/server/grpc_server.h"
#include "libs/status/field_violations.h"
#include "libs/status/grpc_status.h"
#include "libs/telemetry/metrics.h"
#include "trainmesh/v1/jobs.grpc.pb.h"

namespace trainmesh::jobs {
const std::vector<pg::Migration>& Migrations();
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using trainmesh::v1::Job;
using trainmesh::v1::JobEvent;

std::vector<std::string> ViolatedFields(const grpc::Status& s) {
  std::vector<std::string> fields;
  for (const auto& v : status::FieldViolationsOf(status::FromGrpcStatus(s))) {
    fields.push_back(v.field);
  }
  return fields;
}

class JobsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = pg::testing::TestCluster::Get().NewDatabase();
    ASSERT_TRUE(pg::Migrate(dsn_, "jobs", Migrations()).ok());
    pool_ = std::make_unique<pg::ConnectionPool>(
        pg::PoolOptions{.dsn = dsn_, .size = 8, .prepared = JobStore::PreparedStatements()});
    store_ = std::make_unique<JobStore>(pool_.get());
    service_ = std::make_unique<JobsService>(
        store_.get(), JobsServiceOptions{.page_token_secret = "page-secret-for-tests"});
    executor_ = std::make_unique<server::Executor>(8);
    listener_ = std::make_unique<pg::Listener>(
        dsn_, std::vector<std::string>{JobStore::kEventsChannel},
        [this](const std::string&, const std::string& id) { PublishNotification(&hub_, id); },
        [this] { hub_.ResyncAll(); });
    listener_->Start();
    ASSERT_TRUE(listener_->WaitUntilListening(absl::Seconds(30)));
    auth_ = identity::testing::AuthenticatorFor(Issuer());
    jobs_server_ =
        std::make_unique<JobsServer>(service_.get(), executor_.get(), auth_.get(), &hub_);
    control_server_ =
        std::make_unique<JobControlServer>(service_.get(), executor_.get(), auth_.get());
    server_ = std::make_unique<server::GrpcServer>(
        server::ServerOptions{.address = "127.0.0.1:0", .drain_timeout = absl::Seconds(5)});
    server_->AddService(jobs_server_.get(), "trainmesh.v1.JobService");
    server_->AddService(control_server_.get(), "trainmesh.v1.JobControlService");
    server_->OnDrain([this] { hub_.DrainAll(); });
    ASSERT_TRUE(server_->Start().ok());
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    jobs_ = trainmesh::v1::JobService::NewStub(channel);
    control_ = trainmesh::v1::JobControlService::NewStub(channel);
  }

  void TearDown() override {
    server_->Shutdown();
    listener_->Stop();
    executor_->Shutdown();
  }

  static const identity::testing::TestIssuer& Issuer() {
    static const auto* issuer = new identity::testing::TestIssuer();
    return *issuer;
  }

  static std::string Token(const std::string& subject, std::vector<std::string> scopes) {
    return Issuer().Token(subject, std::move(scopes));
  }

  std::unique_ptr<grpc::ClientContext> As(const std::string& subject,
                                          std::vector<std::string> scopes = {"jobs:read",
                                                                             "jobs:write"}) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + Token(subject, std::move(scopes)));
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return ctx;
  }

  static trainmesh::v1::CreateJobRequest Request(const std::string& json) {
    trainmesh::v1::CreateJobRequest request;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, request.mutable_job()).ok())
        << json;
    return request;
  }

  // A WatchJob stream on job `id`, called as `subject`, with its context.
  struct Watcher {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<JobEvent>> reader;
  };
  Watcher Watch(const std::string& subject, const std::string& id, int64_t after_seq = 0,
                std::vector<std::string> scopes = {"jobs:read", "jobs:write"}) {
    trainmesh::v1::WatchJobRequest request;
    request.set_id(id);
    request.set_after_seq(after_seq);
    Watcher watcher;
    watcher.ctx = As(subject, std::move(scopes));
    watcher.reader = jobs_->WatchJob(watcher.ctx.get(), request);
    return watcher;
  }

  Job MustCreate(const std::string& owner, const std::string& request_id = "") {
    auto request = Request(R"({"model": "mlp-policy", "datasetUrl": "synthetic://reach",
                               "hyperparameters": {"steps": 20}})");
    request.mutable_job()->set_request_id(request_id);
    Job job;
    grpc::Status s = jobs_->CreateJob(As(owner).get(), request, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }

  grpc::Status Report(const std::string& id, Job::State state, int32_t attempt, int64_t seq,
                      Job* out = nullptr) {
    trainmesh::v1::ReportJobStatusRequest request;
    request.set_id(id);
    request.set_state(state);
    request.set_attempt(attempt);
    request.set_report_seq(seq);
    if (state == Job::FAILED) {
      request.set_error_log("CUDA out of memory");
      request.set_error_kind(trainmesh::v1::ERROR_KIND_INFRA);
    }
    Job ignored;
    return control_->ReportJobStatus(As("scheduler", {"internal"}).get(), request,
                                     out != nullptr ? out : &ignored);
  }

  grpc::Status Cancel(const std::string& owner, const std::string& id, Job* out = nullptr) {
    trainmesh::v1::CancelJobRequest request;
    request.set_id(id);
    Job ignored;
    return jobs_->CancelJob(As(owner).get(), request, out != nullptr ? out : &ignored);
  }

  std::string dsn_;
  std::unique_ptr<pg::ConnectionPool> pool_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<JobsService> service_;
  std::unique_ptr<server::Executor> executor_;
  EventHub hub_;
  std::unique_ptr<pg::Listener> listener_;
  std::unique_ptr<identity::Authenticator> auth_;
  std::unique_ptr<JobsServer> jobs_server_;
  std::unique_ptr<JobControlServer> control_server_;
  std::unique_ptr<server::GrpcServer> server_;
  std::unique_ptr<trainmesh::v1::JobService::Stub> jobs_;
  std::unique_ptr<trainmesh::v1::JobControlService::Stub> control_;
};

TEST_F(JobsServerTest, CreateFillsDefaultsAndGetReturnsIt) {
  Job created = MustCreate("alice");
  EXPECT_EQ(created.owner(), "alice");
  EXPECT_EQ(created.state(), Job::PENDING);
  EXPECT_EQ(created.max_attempts(), 3);
  EXPECT_EQ(created.queue_timeout().seconds(), 86400);
  const auto& hp = created.hyperparameters().fields();
  EXPECT_EQ(hp.at("steps").number_value(), 20);
  EXPECT_EQ(hp.at("batch_size").number_value(), 64);
  EXPECT_EQ(hp.at("activation").string_value(), "relu");

  trainmesh::v1::GetJobRequest get;
  get.set_id(created.id());
  Job fetched;
  ASSERT_TRUE(jobs_->GetJob(As("alice", {"jobs:read"}).get(), get, &fetched).ok());
  EXPECT_EQ(fetched.DebugString(), created.DebugString());
}

TEST_F(JobsServerTest, ValidateOnlyStoresNothing) {
  auto request = Request(R"({"model": "tabular", "datasetUrl": "synthetic://blobs"})");
  request.set_validate_only(true);
  Job job;
  ASSERT_TRUE(jobs_->CreateJob(As("alice").get(), request, &job).ok());
  EXPECT_TRUE(job.id().empty());
  EXPECT_EQ(job.hyperparameters().fields().at("test_fraction").number_value(), 0.1);
  trainmesh::v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(As("alice").get(), {}, &list).ok());
  EXPECT_THAT(list.jobs(), IsEmpty());
}

TEST_F(JobsServerTest, BadInputIsInvalidArgumentWithEveryFieldViolation) {
  auto request = Request(R"({"model": "mlp-policy", "datasetUrl": "ftp://x/y",
                             "hyperparameters": {"steps": 0, "bogus": 1, "learning_rate": "hi"},
                             "priority": 1000, "labels": {"Bad Key": "v"}})");
  Job job;
  grpc::Status s = jobs_->CreateJob(As("alice").get(), request, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(s),
              UnorderedElementsAre("job.dataset_url", "job.hyperparameters.steps",
                                   "job.hyperparameters.bogus", "job.hyperparameters.learning_rate",
                                   "job.priority", "job.labels.Bad Key"));
  auto unknown = Request(R"({"model": "gpt-7", "datasetUrl": "synthetic://x"})");
  s = jobs_->CreateJob(As("alice").get(), unknown, &job);
  EXPECT_THAT(ViolatedFields(s), Contains("job.model"));
  EXPECT_THAT(s.error_message(), HasSubstr("unknown recipe \"gpt-7\""));
  trainmesh::v1::CreateJobRequest empty;
  s = jobs_->CreateJob(As("alice").get(), empty, &job);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("job"));
  trainmesh::v1::GetJobRequest get;
  get.set_id("not-a-uuid");
  s = jobs_->GetJob(As("alice").get(), get, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("id"));
  // Nothing was stored and the service still serves.
  MustCreate("alice");
  trainmesh::v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(As("alice").get(), {}, &list).ok());
  EXPECT_EQ(list.jobs_size(), 1);
}

TEST_F(JobsServerTest, CredentialsAndScopes) {
  grpc::ClientContext none;
  trainmesh::v1::ListJobsResponse list;
  grpc::Status s = jobs_->ListJobs(&none, {}, &list);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("missing credential"));

  grpc::ClientContext forged;
  forged.AddMetadata("authorization", "Bearer " + Token("alice", {"jobs:write"}) + "x");
  EXPECT_EQ(jobs_->ListJobs(&forged, {}, &list).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  Job job;
  s = jobs_->CreateJob(As("alice", {"jobs:read"}).get(),
                       Request(R"({"model": "tabular", "datasetUrl": "synthetic://blobs"})"), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("jobs:write"));
  EXPECT_EQ(Report(MustCreate("alice").id(), Job::QUEUED, 0, 0).error_code(), grpc::StatusCode::OK);
  trainmesh::v1::ReportJobStatusRequest report;
  report.set_id(MustCreate("alice").id());
  EXPECT_EQ(control_->ReportJobStatus(As("alice").get(), report, &job).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(JobsServerTest, AnotherUsersJobIsNotFoundEverywhere) {
  Job alices = MustCreate("alice");
  ASSERT_TRUE(Report(alices.id(), Job::QUEUED, 0, 0).ok());
  Job out;
  trainmesh::v1::GetJobRequest get;
  get.set_id(alices.id());
  EXPECT_EQ(jobs_->GetJob(As("bob").get(), get, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Cancel("bob", alices.id()).error_code(), grpc::StatusCode::NOT_FOUND);
  trainmesh::v1::RetryJobRequest retry;
  retry.set_id(alices.id());
  EXPECT_EQ(jobs_->RetryJob(As("bob").get(), retry, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  trainmesh::v1::GetErrorLogRequest log_request;
  log_request.set_id(alices.id());
  trainmesh::v1::ErrorLog log;
  EXPECT_EQ(jobs_->GetErrorLog(As("bob").get(), log_request, &log).error_code(),
            grpc::StatusCode::NOT_FOUND);
  trainmesh::v1::ListJobEventsRequest events_request;
  events_request.set_id(alices.id());
  trainmesh::v1::ListJobEventsResponse events;
  EXPECT_EQ(jobs_->ListJobEvents(As("bob").get(), events_request, &events).error_code(),
            grpc::StatusCode::NOT_FOUND);
  Watcher watch = Watch("bob", alices.id());
  auto& reader = watch.reader;
  JobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  trainmesh::v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(As("bob").get(), {}, &list).ok());
  EXPECT_THAT(list.jobs(), IsEmpty());
  // Alice's job is untouched by all of that.
  ASSERT_TRUE(jobs_->GetJob(As("alice").get(), get, &out).ok());
  EXPECT_EQ(out.state(), Job::QUEUED);
}

TEST_F(JobsServerTest, RequestIdMakesCreateIdempotent) {
  Job first = MustCreate("alice", "nightly-2026-11-25");
  Job second = MustCreate("alice", "nightly-2026-11-25");
  EXPECT_EQ(first.id(), second.id());
  auto different = Request(R"({"model": "tabular", "datasetUrl": "synthetic://blobs",
                               "requestId": "nightly-2026-11-25"})");
  Job out;
  grpc::Status s = jobs_->CreateJob(As("alice").get(), different, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr(first.id()));
  trainmesh::v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(As("alice").get(), {}, &list).ok());
  EXPECT_EQ(list.jobs_size(), 1);
}

TEST_F(JobsServerTest, CancelWorksInEveryNonTerminalStateAndNotAfter) {
  Job pending = MustCreate("alice");
  Job cancelled;
  ASSERT_TRUE(Cancel("alice", pending.id(), &cancelled).ok());
  EXPECT_EQ(cancelled.state(), Job::CANCELLED);
  EXPECT_FALSE(cancelled.cancel_requested());
  EXPECT_TRUE(cancelled.has_cancel_time());
  EXPECT_THAT(cancelled.error_log(), HasSubstr("Cancelled by alice while PENDING"));

  Job running = MustCreate("alice");
  ASSERT_TRUE(Report(running.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(Report(running.id(), Job::RUNNING, 1, 2).ok());
  ASSERT_TRUE(Cancel("alice", running.id(), &cancelled).ok());
  EXPECT_EQ(cancelled.state(), Job::CANCELLED);
  EXPECT_TRUE(cancelled.cancel_requested());

  grpc::Status again = Cancel("alice", running.id());
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(again.error_message(), HasSubstr("CANCELLED, a final state"));
}

TEST_F(JobsServerTest, RacingCancelsSucceedOnce) {
  Job job = MustCreate("alice");
  ASSERT_TRUE(Report(job.id(), Job::QUEUED, 0, 1).ok());
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      grpc::Status s = Cancel("alice", job.id());
      if (s.ok()) ++ok;
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) ++refused;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(refused.load(), 7);
}

TEST_F(JobsServerTest, CancelRacingCompletionHasOneWinner) {
  for (int round = 0; round < 5; ++round) {
    Job job = MustCreate("alice");
    ASSERT_TRUE(Report(job.id(), Job::QUEUED, 0, 1).ok());
    ASSERT_TRUE(Report(job.id(), Job::RUNNING, 1, 2).ok());
    grpc::Status cancel, complete;
    std::thread a([&] { cancel = Cancel("alice", job.id()); });
    std::thread b([&] { complete = Report(job.id(), Job::COMPLETED, 1, 3); });
    a.join();
    b.join();
    EXPECT_TRUE(complete.ok());  // a report about a finished job is acknowledged
    trainmesh::v1::ListJobEventsRequest request;
    request.set_id(job.id());
    trainmesh::v1::ListJobEventsResponse events;
    ASSERT_TRUE(jobs_->ListJobEvents(As("alice").get(), request, &events).ok());
    int terminal = 0;
    for (const auto& e : events.events()) terminal += e.terminal() ? 1 : 0;
    EXPECT_EQ(terminal, 1);
    const JobEvent& last = events.events(events.events_size() - 1);
    EXPECT_TRUE(last.terminal());
    EXPECT_EQ(cancel.ok(), last.state() == Job::CANCELLED);
  }
}

TEST_F(JobsServerTest, RetryCreatesANewJobWithLineage) {
  Job job = MustCreate("alice");
  ASSERT_TRUE(Report(job.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(Report(job.id(), Job::RUNNING, 1, 2).ok());
  trainmesh::v1::RetryJobRequest retry;
  retry.set_id(job.id());
  Job out;
  grpc::Status s = jobs_->RetryJob(As("alice").get(), retry, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("only FAILED or CANCELLED"));

  Job failed;
  ASSERT_TRUE(Report(job.id(), Job::FAILED, 1, 3, &failed).ok());
  retry.set_resume_from_checkpoint(true);
  Job retried;
  ASSERT_TRUE(jobs_->RetryJob(As("alice").get(), retry, &retried).ok());
  EXPECT_NE(retried.id(), job.id());
  EXPECT_EQ(retried.retry_of(), job.id());
  EXPECT_EQ(retried.retry_count(), 1);
  EXPECT_TRUE(retried.resume_from_checkpoint());
  EXPECT_EQ(retried.state(), Job::PENDING);
  EXPECT_EQ(retried.hyperparameters().DebugString(), job.hyperparameters().DebugString());

  trainmesh::v1::GetJobRequest get;
  get.set_id(job.id());
  Job old;
  ASSERT_TRUE(jobs_->GetJob(As("alice").get(), get, &old).ok());
  EXPECT_EQ(old.DebugString(), failed.DebugString());  // untouched

  // A retry of the retry counts up.
  ASSERT_TRUE(Cancel("alice", retried.id()).ok());
  trainmesh::v1::RetryJobRequest retry2;
  retry2.set_id(retried.id());
  Job third;
  ASSERT_TRUE(jobs_->RetryJob(As("alice").get(), retry2, &third).ok());
  EXPECT_EQ(third.retry_count(), 2);
  EXPECT_EQ(third.retry_of(), retried.id());

  trainmesh::v1::ListJobsRequest lineage;
  lineage.set_retry_of(job.id());
  trainmesh::v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(As("alice").get(), lineage, &list).ok());
  ASSERT_EQ(list.jobs_size(), 1);
  EXPECT_EQ(list.jobs(0).id(), retried.id());
}

TEST_F(JobsServerTest, ErrorLogOfAFailedJob) {
  Job job = MustCreate("alice");
  ASSERT_TRUE(Report(job.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(Report(job.id(), Job::RUNNING, 2, 2).ok());
  ASSERT_TRUE(Report(job.id(), Job::FAILED, 2, 3).ok());
  trainmesh::v1::GetErrorLogRequest request;
  request.set_id(job.id());
  trainmesh::v1::ErrorLog log;
  ASSERT_TRUE(jobs_->GetErrorLog(As("alice").get(), request, &log).ok());
  EXPECT_EQ(log.text(), "CUDA out of memory");
  EXPECT_EQ(log.kind(), trainmesh::v1::ERROR_KIND_INFRA);
  EXPECT_EQ(log.attempt(), 2);
  EXPECT_EQ(log.state(), Job::FAILED);
  EXPECT_TRUE(log.has_time());
}

// Jobs that entered `state`, as the process's Prometheus metrics count them.
double Entered(const std::string& state) {
  const auto samples = telemetry::ParseExposition(telemetry::Registry::Default().Render());
  auto it = samples.find("trainmesh_job_transitions_total{state=\"" + state + "\"}");
  return it == samples.end() ? 0 : it->second;
}

TEST_F(JobsServerTest, StatusReportsAreIdempotentAndMonotonic) {
  const double created = Entered("PENDING"), queued = Entered("QUEUED"),
               running = Entered("RUNNING"), completed = Entered("COMPLETED");
  Job job = MustCreate("alice");
  Job out;
  ASSERT_TRUE(Report(job.id(), Job::QUEUED, 0, 1, &out).ok());
  ASSERT_TRUE(Report(job.id(), Job::RUNNING, 1, 2, &out).ok());
  EXPECT_EQ(out.last_event_seq(), 3);
  // The same report again (relay retry): nothing new.
  ASSERT_TRUE(Report(job.id(), Job::RUNNING, 1, 2, &out).ok());
  EXPECT_EQ(out.last_event_seq(), 3);
  // A requeue with a new attempt, then a stale report of the old attempt.
  ASSERT_TRUE(Report(job.id(), Job::QUEUED, 2, 3, &out).ok());
  EXPECT_EQ(out.attempt(), 2);
  ASSERT_TRUE(Report(job.id(), Job::COMPLETED, 1, 4, &out).ok());
  EXPECT_EQ(out.state(), Job::QUEUED);
  EXPECT_EQ(out.last_event_seq(), 4);
  // An illegal move is refused.
  EXPECT_EQ(Report(job.id(), Job::COMPLETED, 2, 5).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Progress without a state change is a PROGRESS event.
  ASSERT_TRUE(Report(job.id(), Job::RUNNING, 2, 6).ok());
  trainmesh::v1::ReportJobStatusRequest progress;
  progress.set_id(job.id());
  progress.set_attempt(2);
  progress.set_report_seq(7);
  progress.mutable_progress()->set_step(10);
  progress.mutable_progress()->set_total_steps(20);
  progress.mutable_progress()->set_fraction(0.5);
  ASSERT_TRUE(control_->ReportJobStatus(As("svc", {"internal"}).get(), progress, &out).ok());
  EXPECT_EQ(out.state(), Job::RUNNING);
  EXPECT_EQ(out.progress().step(), 10);
  trainmesh::v1::ListJobEventsRequest request;
  request.set_id(job.id());
  request.set_after_seq(5);
  trainmesh::v1::ListJobEventsResponse events;
  ASSERT_TRUE(jobs_->ListJobEvents(As("alice").get(), request, &events).ok());
  ASSERT_EQ(events.events_size(), 1);
  EXPECT_EQ(events.events(0).type(), JobEvent::PROGRESS);
  EXPECT_EQ(events.events(0).progress().step(), 10);
  // Metrics count each state entered once: replays, stale and refused reports not at all.
  EXPECT_EQ(Entered("PENDING") - created, 1);
  EXPECT_EQ(Entered("QUEUED") - queued, 2);
  EXPECT_EQ(Entered("RUNNING") - running, 2);
  EXPECT_EQ(Entered("COMPLETED") - completed, 0);
}

TEST_F(JobsServerTest, ListPagesWithTamperEvidentTokens) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(MustCreate("alice").id());
  std::vector<std::string> seen;
  trainmesh::v1::ListJobsRequest request;
  request.set_page_size(3);
  std::string last_token;
  for (int page = 0; page < 5; ++page) {
    trainmesh::v1::ListJobsResponse response;
    ASSERT_TRUE(jobs_->ListJobs(As("alice").get(), request, &response).ok());
    for (const auto& j : response.jobs()) seen.push_back(j.id());
    if (response.next_page_token().empty()) break;
    last_token = response.next_page_token();
    request.set_page_token(last_token);
  }
  std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, newest_first);

  trainmesh::v1::ListJobsResponse response;
  trainmesh::v1::ListJobsRequest tampered;
  tampered.set_page_token(last_token.substr(1));
  grpc::Status s = jobs_->ListJobs(As("alice").get(), tampered, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("page_token"));
  // Bob cannot reuse Alice's token, and a token does not carry over to other filters.
  trainmesh::v1::ListJobsRequest replay;
  replay.set_page_token(last_token);
  EXPECT_EQ(jobs_->ListJobs(As("bob").get(), replay, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  replay.add_states(Job::PENDING);
  EXPECT_EQ(jobs_->ListJobs(As("alice").get(), replay, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  trainmesh::v1::ListJobsRequest too_big;
  too_big.set_page_size(1001);
  s = jobs_->ListJobs(As("alice").get(), too_big, &response);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("page_size"));
  trainmesh::v1::ListJobsRequest bad_label;
  bad_label.add_labels("novalue");
  s = jobs_->ListJobs(As("alice").get(), bad_label, &response);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("labels[0]"));
}

TEST_F(JobsServerTest, NotificationsFromReportsAndCancelsPagedAndMarkedRead) {
  // One job runs to FAILED through the scheduler's reports, one is cancelled,
  // one of bob's completes.
  Job failed = MustCreate("alice");
  ASSERT_TRUE(Report(failed.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(Report(failed.id(), Job::RUNNING, 1, 2).ok());
  ASSERT_TRUE(Report(failed.id(), Job::RUNNING, 1, 2).ok());  // a replay: no second STARTED
  ASSERT_TRUE(Report(failed.id(), Job::FAILED, 1, 3).ok());
  Job cancelled = MustCreate("alice");
  ASSERT_TRUE(Cancel("alice", cancelled.id()).ok());
  Job bobs = MustCreate("bob");
  ASSERT_TRUE(Report(bobs.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(Report(bobs.id(), Job::RUNNING, 1, 2).ok());
  ASSERT_TRUE(Report(bobs.id(), Job::COMPLETED, 1, 3).ok());

  using trainmesh::v1::Notification;
  trainmesh::v1::ListNotificationsRequest request;
  request.set_page_size(2);
  std::vector<Notification> seen;
  trainmesh::v1::ListNotificationsResponse response;
  for (int page = 0; page < 4; ++page) {
    ASSERT_TRUE(jobs_->ListNotifications(As("alice").get(), request, &response).ok());
    EXPECT_EQ(response.unread_count(), 3);
    seen.insert(seen.end(), response.notifications().begin(), response.notifications().end());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].kind(), Notification::CANCELLED);
  EXPECT_EQ(seen[0].job_id(), cancelled.id());
  EXPECT_THAT(seen[0].message(), HasSubstr("Cancelled by alice while PENDING"));
  EXPECT_EQ(seen[1].kind(), Notification::FAILED);
  EXPECT_EQ(seen[1].message(), "CUDA out of memory");
  EXPECT_EQ(seen[1].attempt(), 1);
  EXPECT_EQ(seen[2].kind(), Notification::STARTED);
  EXPECT_EQ(seen[2].model(), "mlp-policy");
  EXPECT_TRUE(seen[2].has_create_time());

  // Bob's token does not page Alice's inbox; a token is bound to its filter.
  trainmesh::v1::ListNotificationsRequest replay;
  replay.set_page_size(2);
  ASSERT_TRUE(jobs_->ListNotifications(As("alice").get(), replay, &response).ok());
  replay.set_page_token(response.next_page_token());
  EXPECT_EQ(jobs_->ListNotifications(As("bob").get(), replay, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  replay.set_unread_only(true);
  grpc::Status s = jobs_->ListNotifications(As("alice").get(), replay, &response);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("page_token"));

  // Marking: nothing named is a field violation; bob's ids are not alice's to mark.
  trainmesh::v1::MarkNotificationsReadRequest mark;
  trainmesh::v1::MarkNotificationsReadResponse marked;
  s = jobs_->MarkNotificationsRead(As("alice").get(), mark, &marked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("ids"));
  mark.add_ids(-4);
  mark.set_through_id(-1);
  s = jobs_->MarkNotificationsRead(As("alice").get(), mark, &marked);
  EXPECT_THAT(ViolatedFields(s), ElementsAre("ids[0]", "through_id"));
  trainmesh::v1::ListNotificationsResponse bobs_inbox;
  ASSERT_TRUE(jobs_->ListNotifications(As("bob").get(), {}, &bobs_inbox).ok());
  ASSERT_EQ(bobs_inbox.notifications_size(), 2);  // STARTED, COMPLETED
  mark.Clear();
  mark.add_ids(bobs_inbox.notifications(0).id());
  mark.add_ids(seen[1].id());
  ASSERT_TRUE(jobs_->MarkNotificationsRead(As("alice").get(), mark, &marked).ok());
  EXPECT_EQ(marked.marked(), 1);
  EXPECT_EQ(marked.unread_count(), 2);
  ASSERT_TRUE(jobs_->ListNotifications(As("bob").get(), {}, &bobs_inbox).ok());
  EXPECT_EQ(bobs_inbox.unread_count(), 2);
  // "Mark all read" through the newest shown: a notification that arrives
  // after it stays unread.
  mark.Clear();
  mark.set_through_id(seen[0].id());
  Job later = MustCreate("alice");
  ASSERT_TRUE(Cancel("alice", later.id()).ok());
  ASSERT_TRUE(jobs_->MarkNotificationsRead(As("alice").get(), mark, &marked).ok());
  EXPECT_EQ(marked.marked(), 2);
  EXPECT_EQ(marked.unread_count(), 1);
  trainmesh::v1::ListNotificationsRequest unread;
  unread.set_unread_only(true);
  ASSERT_TRUE(jobs_->ListNotifications(As("alice").get(), unread, &response).ok());
  ASSERT_EQ(response.notifications_size(), 1);
  EXPECT_EQ(response.notifications(0).job_id(), later.id());
  EXPECT_FALSE(response.notifications(0).read());

  // A read-only key may read and mark its inbox; an agent key may do neither.
  EXPECT_TRUE(jobs_->ListNotifications(As("alice", {"jobs:read"}).get(), {}, &response).ok());
  EXPECT_EQ(jobs_->ListNotifications(As("alice", {"agent"}).get(), {}, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(JobsServerTest, RecipesAreServed) {
  trainmesh::v1::ListRecipesResponse recipes;
  ASSERT_TRUE(jobs_->ListRecipes(As("alice", {"jobs:read"}).get(), {}, &recipes).ok());
  ASSERT_EQ(recipes.recipes_size(), 4);
  trainmesh::v1::GetRecipeRequest get;
  get.set_name("lora-lm");
  trainmesh::v1::Recipe recipe;
  ASSERT_TRUE(jobs_->GetRecipe(As("alice").get(), get, &recipe).ok());
  EXPECT_EQ(recipe.name(), "lora-lm");
  get.set_name("nope");
  EXPECT_EQ(jobs_->GetRecipe(As("alice").get(), get, &recipe).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobsServerTest, WatchReplaysThenFollowsLiveAndEndsAtTheTerminalEvent) {
  Job job = MustCreate("alice");
  ASSERT_TRUE(Report(job.id(), Job::QUEUED, 0, 1).ok());
  Watcher watch = Watch("alice", job.id(), 0, {"jobs:read"});
  auto& reader = watch.reader;
  JobEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 1);
  EXPECT_EQ(e.type(), JobEvent::CREATED);
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 2);
  EXPECT_EQ(e.state(), Job::QUEUED);
  // Live: each report arrives through NOTIFY.
  ASSERT_TRUE(Report(job.id(), Job::RUNNING, 1, 2).ok());
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 3);
  EXPECT_EQ(e.state(), Job::RUNNING);
  EXPECT_EQ(e.previous_state(), Job::QUEUED);
  ASSERT_TRUE(Report(job.id(), Job::COMPLETED, 1, 3).ok());
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 4);
  EXPECT_TRUE(e.terminal());
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_TRUE(reader->Finish().ok());
}

// Records what the hub tells it.
class Recorder : public EventHub::Subscriber {
 public:
  void OnEvent(const std::string& job, const JobChange& change) override {
    seen.emplace_back(job, change.owner);
  }
  void Resync() override { seen.emplace_back("", ""); }
  void Drain() override { ++drained; }
  std::vector<std::pair<std::string, std::string>> seen;
  int drained = 0;
};

TEST(EventHub, NotificationsNameTheJobAndItsOwner) {
  EventHub hub;
  auto all = std::make_shared<Recorder>();
  auto one = std::make_shared<Recorder>();
  const uint64_t all_id = hub.SubscribeAll(all);
  const uint64_t one_id = hub.Subscribe("job-1", one);
  PublishNotification(&hub, "job-1 user with spaces");
  PublishNotification(&hub, "job-2");  // an older replica's payload: no owner
  hub.ResyncAll();
  // Its own job, then everyone.
  EXPECT_EQ(one->seen, (std::vector<std::pair<std::string, std::string>>{
                           {"job-1", "user with spaces"}, {"", ""}}));
  EXPECT_EQ(all->seen, (std::vector<std::pair<std::string, std::string>>{
                           {"job-1", "user with spaces"}, {"job-2", ""}, {"", ""}}));
  hub.DrainAll();
  EXPECT_EQ(all->drained, 1);
  EXPECT_EQ(one->drained, 1);
  hub.Unsubscribe(all_id);
  hub.Unsubscribe(one_id);
  PublishNotification(&hub, "job-1 alice");
  EXPECT_EQ(all->seen.size(), 3u);
  EXPECT_EQ(one->seen.size(), 2u);
  EXPECT_EQ(hub.subscribers(), 0u);
}

TEST_F(JobsServerTest, WatchJobsFollowsTheCallersJobsOnlyFromSince) {
  google::protobuf::Timestamp before = google::protobuf::util::TimeUtil::GetCurrentTime();
  before.set_seconds(before.seconds() - 1);
  Job mine = MustCreate("alice");
  Job theirs = MustCreate("bob");
  trainmesh::v1::WatchJobsRequest request;
  *request.mutable_since() = before;
  auto ctx = As("alice", {"jobs:read"});
  auto reader = jobs_->WatchJobs(ctx.get(), request);
  Job snapshot;
  // What changed since `since` first: alice's job, not bob's.
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.id(), mine.id());
  EXPECT_EQ(snapshot.state(), Job::PENDING);
  // Then live, through NOTIFY.
  ASSERT_TRUE(Report(mine.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.id(), mine.id());
  EXPECT_EQ(snapshot.state(), Job::QUEUED);
  // Bob's job moving sends alice nothing: her next snapshot is her own job.
  ASSERT_TRUE(Report(theirs.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(Report(mine.id(), Job::RUNNING, 1, 2).ok());
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.id(), mine.id());
  EXPECT_EQ(snapshot.state(), Job::RUNNING);
  EXPECT_GT(snapshot.last_event_seq(), 2);

  // Bob's feed: his job only, whatever alice does meanwhile.
  auto bob_ctx = As("bob", {"jobs:read"});
  auto bob = jobs_->WatchJobs(bob_ctx.get(), request);
  ASSERT_TRUE(Cancel("alice", mine.id()).ok());
  ASSERT_TRUE(Report(theirs.id(), Job::RUNNING, 1, 2).ok());
  snapshot.Clear();
  for (int i = 0; i < 3 && snapshot.state() != Job::RUNNING; ++i) {
    ASSERT_TRUE(bob->Read(&snapshot));
    EXPECT_EQ(snapshot.id(), theirs.id());
  }
  EXPECT_EQ(snapshot.state(), Job::RUNNING);
  ctx->TryCancel();
  bob_ctx->TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(bob->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(JobsServerTest, WatchResumesAfterSeqAndEndsAtOnceForAFinishedJob) {
  Job job = MustCreate("alice");
  ASSERT_TRUE(Cancel("alice", job.id()).ok());
  Watcher watch = Watch("alice", job.id(), 1);
  auto& reader = watch.reader;
  JobEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 2);
  EXPECT_EQ(e.state(), Job::CANCELLED);
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_TRUE(reader->Finish().ok());
  // Resuming after the last event of a finished job: nothing, and done.
  Watcher resumed = Watch("alice", job.id(), 2);
  EXPECT_FALSE(resumed.reader->Read(&e));
  EXPECT_TRUE(resumed.reader->Finish().ok());
}

TEST_F(JobsServerTest, ManyWatchersEachSeeEveryEventOnce) {
  Job job = MustCreate("alice");
  constexpr int kWatchers = 6;
  std::vector<std::thread> watchers;
  std::vector<std::vector<int64_t>> seen(kWatchers);
  std::atomic<int> started{0};
  for (int w = 0; w < kWatchers; ++w) {
    watchers.emplace_back([&, w] {
      Watcher watch = Watch("alice", job.id());
      auto& reader = watch.reader;
      JobEvent e;
      bool first = true;
      while (reader->Read(&e)) {
        if (first) ++started;
        first = false;
        seen[w].push_back(e.seq());
      }
      reader->Finish();
    });
  }
  while (started.load() < kWatchers) std::this_thread::yield();
  ASSERT_TRUE(Report(job.id(), Job::QUEUED, 0, 1).ok());
  ASSERT_TRUE(Report(job.id(), Job::RUNNING, 1, 2).ok());
  for (int step = 1; step <= 20; ++step) {
    trainmesh::v1::ReportJobStatusRequest progress;
    progress.set_id(job.id());
    progress.set_attempt(1);
    progress.set_report_seq(2 + step);
    progress.mutable_progress()->set_step(step);
    Job out;
    ASSERT_TRUE(control_->ReportJobStatus(As("svc", {"internal"}).get(), progress, &out).ok());
  }
  ASSERT_TRUE(Report(job.id(), Job::COMPLETED, 1, 100).ok());
  for (auto& t : watchers) t.join();
  std::vector<int64_t> all;
  for (int64_t s = 1; s <= 24; ++s) all.push_back(s);
  for (int w = 0; w < kWatchers; ++w) EXPECT_EQ(seen[w], all) << "watcher " << w;
}

TEST_F(JobsServerTest, ShutdownEndsWatchStreamsWithAResumePoint) {
  Job job = MustCreate("alice");
  Watcher watch = Watch("alice", job.id());
  auto& reader = watch.reader;
  JobEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 1);
  server_->Shutdown();
  EXPECT_FALSE(reader->Read(&e));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("reconnect with after_seq"));
}

TEST_F(JobsServerTest, SurvivesAPostgresRestartWithoutLosingAcknowledgedJobs) {
  Job before = MustCreate("alice");
  Watcher watch = Watch("alice", before.id());
  auto& reader = watch.reader;
  JobEvent e;
  ASSERT_TRUE(reader->Read(&e));

  ASSERT_TRUE(pg::testing::TestCluster::Get().Stop(/*immediate=*/true).ok());
  Job out;
  grpc::Status down =
      jobs_->CreateJob(As("alice").get(),
                       Request(R"({"model": "tabular", "datasetUrl": "synthetic://blobs"})"), &out);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  ASSERT_TRUE(pg::testing::TestCluster::Get().Start().ok());

  Job after = MustCreate("alice");
  trainmesh::v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(As("alice").get(), {}, &list).ok());
  std::vector<std::string> ids;
  for (const auto& j : list.jobs()) ids.push_back(j.id());
  EXPECT_THAT(ids, ElementsAre(after.id(), before.id()));
  // The watch outlived the outage: the listener reconnected and it follows on.
  ASSERT_TRUE(Cancel("alice", before.id()).ok());
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 2);
  EXPECT_EQ(e.state(), Job::CANCELLED);
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_TRUE(reader->Finish().ok());
}

}  // namespace
}  // namespace trainmesh::jobs
