#include "libs/server/write_pump.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "libs/server/executor.h"
#include "libs/server/grpc_server.h"
#include "libs/server/hub.h"
#include "libs/server/stream_guard.h"
#include "libs/server/testing/eventually.h"
#include "trainmesh/v1/jobs.grpc.pb.h"

namespace trainmesh::server {
namespace {

using ::testing::HasSubstr;
using testing::Eventually;
using trainmesh::v1::JobEvent;

// What a stream reads from (a table, in the services), and the hub that
// says it changed.
struct Journal {
  void Append(int64_t seq, bool terminal = false) {
    {
      absl::MutexLock lock(&mu);
      JobEvent e;
      e.set_seq(seq);
      e.set_terminal(terminal);
      events.push_back(std::move(e));
    }
    hub.Publish("job", static_cast<int>(seq));
  }
  absl::Mutex mu;
  std::vector<JobEvent> events ABSL_GUARDED_BY(mu);
  absl::Status fail_reads ABSL_GUARDED_BY(mu);
  std::atomic<int> reads{0};
  Hub<int> hub;
};

// A stream of the journal's events after `after`, ending after a terminal one.
class JournalPump : public WritePump<JobEvent>, public Hub<int>::Subscriber {
 public:
  JournalPump(Executor* executor, StreamGuards* guards, Authorize authorize, Journal* journal,
              int64_t after, bool admit)
      : WritePump(executor, guards, std::move(authorize)),
        journal_(journal),
        admit_(admit),
        fetched_(after) {}

  void OnEvent(const std::string&, const int&) override { Wake(); }
  void Resync() override { Wake(); }
  void Drain() override {
    EndWith(absl::UnavailableError("draining; resume after the last seq received"));
  }

 protected:
  void Subscribe() override {
    id_ = journal_->hub.Subscribe("job", std::static_pointer_cast<JournalPump>(shared_from_this()));
  }
  void Unsubscribe() override { journal_->hub.Unsubscribe(id_); }
  absl::Status Admit(const trainmesh::v1::Principal&) override {
    return admit_ ? absl::OkStatus() : absl::NotFoundError("job not found");
  }
  bool TakeFetch() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool due = due_;
    due_ = false;
    return due;
  }
  bool Complete() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return complete_; }

  absl::Status Fetch(const trainmesh::v1::Principal&) override {
    ++journal_->reads;
    std::vector<JobEvent> fresh;
    {
      absl::MutexLock lock(&journal_->mu);
      if (!journal_->fail_reads.ok()) return journal_->fail_reads;
      fresh = journal_->events;
    }
    absl::MutexLock lock(&mu_);
    for (JobEvent& e : fresh) {
      if (e.seq() <= fetched_) continue;
      fetched_ = e.seq();
      if (e.terminal()) complete_ = true;
      pending_.push_back(std::move(e));
    }
    return absl::OkStatus();
  }

 private:
  void Wake() {
    {
      absl::MutexLock lock(&mu_);
      due_ = true;
    }
    Pump();
  }

  Journal* const journal_;
  const bool admit_;
  uint64_t id_ = 0;
  int64_t fetched_ ABSL_GUARDED_BY(mu_);
  bool due_ ABSL_GUARDED_BY(mu_) = false;
  bool complete_ ABSL_GUARDED_BY(mu_) = false;
};

// WatchJob streams the journal; the caller is the "subject" metadata, and the
// job "hidden" is not theirs to see.
class JournalService : public trainmesh::v1::JobService::CallbackService {
 public:
  JournalService(Executor* executor, StreamGuards* guards, Journal* journal)
      : executor_(executor), guards_(guards), journal_(journal) {}

  grpc::ServerWriteReactor<JobEvent>* WatchJob(
      grpc::CallbackServerContext* context,
      const trainmesh::v1::WatchJobRequest* request) override {
    std::string subject;
    auto it = context->client_metadata().find("subject");
    if (it != context->client_metadata().end())
      subject.assign(it->second.data(), it->second.size());
    auto authorize = [subject]() -> absl::StatusOr<trainmesh::v1::Principal> {
      if (subject.empty()) return absl::UnauthenticatedError("no credential");
      trainmesh::v1::Principal p;
      p.set_subject(subject);
      return p;
    };
    return std::make_shared<JournalPump>(executor_, guards_, std::move(authorize), journal_,
                                         request->after_seq(), request->id() != "hidden")
        ->Start();
  }

 private:
  Executor* const executor_;
  StreamGuards* const guards_;
  Journal* const journal_;
};

class WritePumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.AddService(&service_, "trainmesh.v1.JobService");
    ASSERT_TRUE(server_.Start().ok());
    stub_ = trainmesh::v1::JobService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_.port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_.Shutdown(); }

  std::unique_ptr<grpc::ClientContext> As(const std::string& subject) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    if (!subject.empty()) ctx->AddMetadata("subject", subject);
    return ctx;
  }

  std::unique_ptr<grpc::ClientReader<JobEvent>> Watch(grpc::ClientContext* ctx, int64_t after = 0,
                                                      const std::string& job = "job") {
    trainmesh::v1::WatchJobRequest request;
    request.set_id(job);
    request.set_after_seq(after);
    return stub_->WatchJob(ctx, request);
  }

  Journal journal_;
  Executor executor_{2};
  StreamGuards guards_{{.max_per_user = 1}};
  JournalService service_{&executor_, &guards_, &journal_};
  GrpcServer server_{ServerOptions{.address = "127.0.0.1:0", .drain_timeout = absl::Seconds(5)}};
  std::unique_ptr<trainmesh::v1::JobService::Stub> stub_;
};

TEST_F(WritePumpTest, ReplaysTheBacklogThenFollowsAndEndsOkAfterTheLastMessage) {
  journal_.Append(1);
  journal_.Append(2);
  auto ctx = As("ada");
  auto reader = Watch(ctx.get());
  JobEvent e;
  for (int64_t seq : {1, 2}) {
    ASSERT_TRUE(reader->Read(&e));
    EXPECT_EQ(e.seq(), seq);
  }
  journal_.Append(3);
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 3);
  journal_.Append(4, /*terminal=*/true);
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 4);
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_TRUE(reader->Finish().ok());

  // Resuming after 2: the rest, then the end.
  auto again = As("ada");
  auto resumed = Watch(again.get(), 2);
  for (int64_t seq : {3, 4}) {
    ASSERT_TRUE(resumed->Read(&e));
    EXPECT_EQ(e.seq(), seq);
  }
  EXPECT_FALSE(resumed->Read(&e));
  EXPECT_TRUE(resumed->Finish().ok());
}

TEST_F(WritePumpTest, ACallerWithoutACredentialOrNotAdmittedIsRefusedBeforeAnyRead) {
  journal_.Append(1);
  JobEvent e;
  auto anonymous = As("");
  auto refused = Watch(anonymous.get());
  EXPECT_FALSE(refused->Read(&e));
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto ctx = As("ada");
  auto hidden = Watch(ctx.get(), 0, "hidden");
  EXPECT_FALSE(hidden->Read(&e));
  grpc::Status status = hidden->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("not found"));
  EXPECT_EQ(journal_.reads.load(), 0);
  // Neither holds a stream slot.
  EXPECT_TRUE(
      Eventually([&] { return guards_.open("ada") == 0 && journal_.hub.subscribers() == 0; }));
}

TEST_F(WritePumpTest, AFailedReadEndsTheStreamWithItsError) {
  journal_.Append(1);
  auto ctx = As("ada");
  auto reader = Watch(ctx.get());
  JobEvent e;
  ASSERT_TRUE(reader->Read(&e));
  {
    absl::MutexLock lock(&journal_.mu);
    journal_.fail_reads = absl::UnavailableError("database down");
  }
  journal_.Append(2);
  EXPECT_FALSE(reader->Read(&e));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("database down"));
}

TEST_F(WritePumpTest, ADrainEndsOpenStreamsSayingHowToResume) {
  journal_.Append(1);
  auto ctx = As("ada");
  auto reader = Watch(ctx.get());
  JobEvent e;
  ASSERT_TRUE(reader->Read(&e));
  journal_.hub.DrainAll();
  EXPECT_FALSE(reader->Read(&e));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("resume after the last seq"));
}

TEST_F(WritePumpTest, AStreamHoldsItsCallersSlotUntilItEndsAndThenLeavesTheHub) {
  journal_.Append(1);
  auto first_ctx = As("ada");
  auto first = Watch(first_ctx.get());
  JobEvent e;
  ASSERT_TRUE(first->Read(&e));
  EXPECT_EQ(guards_.open("ada"), 1);
  // One stream per user here: a second is refused while the first is open.
  auto second_ctx = As("ada");
  auto second = Watch(second_ctx.get());
  EXPECT_FALSE(second->Read(&e));
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another user has a slot of their own.
  auto bob_ctx = As("bob");
  auto bob = Watch(bob_ctx.get());
  ASSERT_TRUE(bob->Read(&e));

  first_ctx->TryCancel();
  EXPECT_FALSE(first->Read(&e));
  EXPECT_EQ(first->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(
      Eventually([&] { return guards_.open("ada") == 0 && journal_.hub.subscribers() == 1; }));
  auto third_ctx = As("ada");
  auto third = Watch(third_ctx.get());
  ASSERT_TRUE(third->Read(&e));
  EXPECT_EQ(e.seq(), 1);
  journal_.Append(2, /*terminal=*/true);
  for (auto* reader : {third.get(), bob.get()}) {
    ASSERT_TRUE(reader->Read(&e));
    EXPECT_EQ(e.seq(), 2);
    EXPECT_FALSE(reader->Read(&e));
    EXPECT_TRUE(reader->Finish().ok());
  }
}

}  // namespace
}  // namespace trainmesh::server
