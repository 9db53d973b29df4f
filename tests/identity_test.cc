// Identity across services: the real auth and jobs services over gRPC. Who
// may do what, and what nobody may see.
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "libs/identity/authenticator.h"
#include "libs/identity/jwt.h"
#include "libs/identity/keys.h"
#include "tests/harness/mesh.h"

namespace trainmesh::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using trainmesh::v1::Job;
using trainmesh::v1::JobEvent;

trainmesh::v1::CreateJobRequest NewJob() {
  trainmesh::v1::CreateJobRequest request;
  request.mutable_job()->set_model("tabular");
  request.mutable_job()->set_dataset_url("synthetic://blobs");
  return request;
}

grpc::Status CreateJob(TestMesh& mesh, const std::string& credential, Job* out) {
  return mesh.jobs().CreateJob(TestMesh::With(credential).get(), NewJob(), out);
}

// The status code of the jobs service's `rpc` on job `id`, called with `credential`.
template <typename Request, typename Response>
grpc::StatusCode OnJob(TestMesh& mesh,
                       grpc::Status (trainmesh::v1::JobService::Stub::*rpc)(grpc::ClientContext*,
                                                                            const Request&, Response*),
                       const std::string& credential, const std::string& id) {
  Request request;
  request.set_id(id);
  Response response;
  return (mesh.jobs().*rpc)(TestMesh::With(credential).get(), request, &response).error_code();
}

TEST(IdentityTest, LoginTokensAndApiKeysBothReachTheJobsService) {
  TestMesh mesh;
  TestMesh::User alice = mesh.AddUser("alice");
  Job job;
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  EXPECT_EQ(job.owner(), alice.user.id());
  auto key = mesh.AddApiKey(alice, {"jobs:read"});
  trainmesh::v1::GetJobRequest get;
  get.set_id(job.id());
  Job fetched;
  grpc::Status s = mesh.jobs().GetJob(TestMesh::With(key.secret()).get(), get, &fetched);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(fetched.id(), job.id());
  // The read-only key cannot write.
  s = CreateJob(mesh, key.secret(), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST(IdentityTest, ASecondUserSeesAndTouchesNothingOfTheFirst) {
  TestMesh mesh;
  TestMesh::User alice = mesh.AddUser("alice");
  TestMesh::User bob = mesh.AddUser("bob");
  auto bob_key = mesh.AddApiKey(bob, {"jobs:read", "jobs:write"});
  Job job;
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  trainmesh::v1::CancelJobRequest cancel_own;
  cancel_own.set_id(job.id());
  Job cancelled;
  ASSERT_TRUE(mesh.jobs().CancelJob(TestMesh::With(alice.token).get(), cancel_own, &cancelled).ok());
  for (const std::string& credential : {bob.token, bob_key.secret()}) {
    using Stub = trainmesh::v1::JobService::Stub;
    EXPECT_EQ(OnJob(mesh, &Stub::GetJob, credential, job.id()), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(OnJob(mesh, &Stub::CancelJob, credential, job.id()), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(OnJob(mesh, &Stub::RetryJob, credential, job.id()), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(OnJob(mesh, &Stub::GetErrorLog, credential, job.id()), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(OnJob(mesh, &Stub::ListJobEvents, credential, job.id()), grpc::StatusCode::NOT_FOUND);
    trainmesh::v1::WatchJobRequest watch;
    watch.set_id(job.id());
    auto ctx = TestMesh::With(credential);
    auto reader = mesh.jobs().WatchJob(ctx.get(), watch);
    JobEvent e;
    EXPECT_FALSE(reader->Read(&e));  // not one event leaks
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
    for (const auto& request : {trainmesh::v1::ListJobsRequest(), [&] {
                                  trainmesh::v1::ListJobsRequest r;
                                  r.set_retry_of(job.id());
                                  return r;
                                }()}) {
      trainmesh::v1::ListJobsResponse list;
      ASSERT_TRUE(mesh.jobs().ListJobs(TestMesh::With(credential).get(), request, &list).ok());
      EXPECT_THAT(list.jobs(), IsEmpty());
    }
  }
  // Alice's job is exactly as she left it.
  trainmesh::v1::GetJobRequest get;
  get.set_id(job.id());
  Job after;
  ASSERT_TRUE(mesh.jobs().GetJob(TestMesh::With(alice.token).get(), get, &after).ok());
  EXPECT_EQ(after.DebugString(), cancelled.DebugString());
}

TEST(IdentityTest, RevokedApiKeyIsRefusedOnceTheCacheTtlHasPassed) {
  MeshOptions options;
  options.api_key_cache_ttl = absl::Milliseconds(500);
  TestMesh mesh(options);
  TestMesh::User alice = mesh.AddUser("alice");
  auto key = mesh.AddApiKey(alice, {"jobs:read"});
  trainmesh::v1::ListJobsResponse list;
  ASSERT_TRUE(mesh.jobs().ListJobs(TestMesh::With(key.secret()).get(), {}, &list).ok());
  trainmesh::v1::RevokeApiKeyRequest revoke;
  revoke.set_id(key.api_key().id());
  trainmesh::v1::ApiKey revoked;
  ASSERT_TRUE(mesh.auth().RevokeApiKey(TestMesh::With(alice.token).get(), revoke, &revoked).ok());
  const absl::Time revoked_at = absl::Now();
  grpc::Status s;
  while (absl::Now() - revoked_at < absl::Seconds(20)) {
    s = mesh.jobs().ListJobs(TestMesh::With(key.secret()).get(), {}, &list);
    if (!s.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("revoked"));
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr(key.secret())));
}

// A WatchJobs stream of everything `credential` owns, from the start of time
// (so a first message proves the stream was admitted).
std::unique_ptr<grpc::ClientReader<Job>> WatchAll(TestMesh& mesh, grpc::ClientContext* ctx) {
  trainmesh::v1::WatchJobsRequest request;
  request.mutable_since()->set_seconds(1);
  return mesh.jobs().WatchJobs(ctx, request);
}

TEST(IdentityTest, ARevokedKeyEndsTheStreamsItOpened) {
  MeshOptions options;
  options.api_key_cache_ttl = absl::Milliseconds(200);
  options.streams.recheck = absl::Milliseconds(100);
  TestMesh mesh(options);
  TestMesh::User alice = mesh.AddUser("alice");
  Job job;
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  auto key = mesh.AddApiKey(alice, {"jobs:read"});
  auto jobs_ctx = TestMesh::With(key.secret());
  auto feed = WatchAll(mesh, jobs_ctx.get());
  Job first;
  ASSERT_TRUE(feed->Read(&first));
  EXPECT_EQ(first.id(), job.id());
  auto metrics_ctx = TestMesh::With(key.secret());
  trainmesh::v1::StreamMetricsRequest metrics_request;
  metrics_request.set_job_id(job.id());
  auto points = mesh.metrics().StreamMetrics(metrics_ctx.get(), metrics_request);

  trainmesh::v1::RevokeApiKeyRequest revoke;
  revoke.set_id(key.api_key().id());
  trainmesh::v1::ApiKey revoked;
  ASSERT_TRUE(mesh.auth().RevokeApiKey(TestMesh::With(alice.token).get(), revoke, &revoked).ok());
  // Both streams end by themselves (the contexts' deadlines are far later).
  Job more;
  while (feed->Read(&more)) {
  }
  grpc::Status s = feed->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("revoked"));
  trainmesh::v1::MetricsStreamItem item;
  while (points->Read(&item)) {
  }
  s = points->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
}

TEST(IdentityTest, EachUserMayHoldOnlySoManyStreams) {
  MeshOptions options;
  options.streams.max_per_user = 2;
  TestMesh mesh(options);
  TestMesh::User alice = mesh.AddUser("alice");
  TestMesh::User bob = mesh.AddUser("bob");
  Job job;
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  ASSERT_TRUE(CreateJob(mesh, bob.token, &job).ok());
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<Job>>> open;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(TestMesh::With(alice.token));
    open.push_back(WatchAll(mesh, contexts.back().get()));
    Job first;
    ASSERT_TRUE(open.back()->Read(&first));
  }
  // A third is refused, with when to retry; bob's own streams are not affected.
  auto third_ctx = TestMesh::With(alice.token);
  auto third = WatchAll(mesh, third_ctx.get());
  Job none;
  EXPECT_FALSE(third->Read(&none));
  grpc::Status refused = third->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("open streams"));
  auto bobs_ctx = TestMesh::With(bob.token);
  auto bobs = WatchAll(mesh, bobs_ctx.get());
  Job bobs_first;
  EXPECT_TRUE(bobs->Read(&bobs_first));
  // One of alice's ends: she may open another.
  contexts[0]->TryCancel();
  while (open[0]->Read(&none)) {
  }
  open[0]->Finish();
  grpc::Status again;
  for (int i = 0; i < 100; ++i) {  // the slot is given back when the server sees the stream done
    auto ctx = TestMesh::With(alice.token);
    auto stream = WatchAll(mesh, ctx.get());
    if (stream->Read(&none)) {
      again = grpc::Status::OK;
      ctx->TryCancel();
      while (stream->Read(&none)) {
      }
      stream->Finish();
      break;
    }
    again = stream->Finish();
    ASSERT_EQ(again.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << again.error_message();
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(again.ok()) << again.error_message();
  contexts[1]->TryCancel();
  bobs_ctx->TryCancel();
}

TEST(IdentityTest, KeyRotationReachesTheJobsServiceWithoutRestart) {
  TestMesh mesh;
  TestMesh::User alice = mesh.AddUser("alice");
  Job job;
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());  // jobs now holds the first key
  trainmesh::v1::RotateSigningKeyResponse rotated;
  grpc::Status s = mesh.auth().RotateSigningKey(TestMesh::With(alice.token).get(), {}, &rotated);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);  // admins only
  ASSERT_TRUE(
      mesh.auth().RotateSigningKey(TestMesh::With(mesh.admin().token).get(), {}, &rotated).ok());
  trainmesh::v1::LoginRequest login;
  login.set_name("alice");
  login.set_password("alice-password");
  trainmesh::v1::LoginResponse fresh;
  ASSERT_TRUE(mesh.auth().Login(TestMesh::With("").get(), login, &fresh).ok());
  ASSERT_EQ(identity::PeekToken(fresh.access_token())->kid, rotated.kid());
  EXPECT_TRUE(CreateJob(mesh, fresh.access_token(), &job).ok());  // unknown kid: refreshed
  EXPECT_TRUE(CreateJob(mesh, alice.token, &job).ok());           // the old key still verifies
}

TEST(IdentityTest, TokensTheMeshDidNotSignAreRefused) {
  TestMesh mesh;
  identity::SigningKey stranger = *identity::GenerateSigningKey("RS256");
  identity::Claims claims;
  claims.subject = "mallory";
  claims.scopes = {"jobs:write", "admin"};
  Job job;
  grpc::Status s = CreateJob(
      mesh, *identity::SignToken(stranger, "trainmesh", "trainmesh", claims, absl::Hours(1)), &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown key id"));
  s = CreateJob(mesh, "", &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(IdentityTest, AdminAndInternalRpcsRefuseOrdinaryUsers) {
  TestMesh mesh;
  TestMesh::User alice = mesh.AddUser("alice");
  trainmesh::v1::CreateUserRequest create;
  create.mutable_user()->set_name("eve");
  create.set_password("eve-password");
  trainmesh::v1::User user;
  EXPECT_EQ(mesh.auth().CreateUser(TestMesh::With(alice.token).get(), create, &user).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  trainmesh::v1::MintJobTokenRequest mint;
  mint.set_job_id("j");
  mint.set_attempt(1);
  mint.set_owner(alice.user.id());
  trainmesh::v1::JobToken token;
  EXPECT_EQ(mesh.auth().MintJobToken(TestMesh::With(alice.token).get(), mint, &token).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  trainmesh::v1::AuthenticateRequest authenticate;
  authenticate.set_credential(alice.token);
  trainmesh::v1::Principal p;
  EXPECT_EQ(
      mesh.auth().Authenticate(TestMesh::With(alice.token).get(), authenticate, &p).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  // The services' key may.
  ASSERT_TRUE(mesh.auth().MintJobToken(TestMesh::With(mesh.service_key()).get(), mint, &token).ok());
  trainmesh::v1::Principal who;
  ASSERT_TRUE(mesh.auth().WhoAmI(TestMesh::With(alice.token).get(), {}, &who).ok());
  EXPECT_EQ(who.name(), "alice");
}

TEST(IdentityTest, JobTokensAreHonouredOnlyForTheirJobAndAttempt) {
  TestMesh mesh;
  trainmesh::v1::MintJobTokenRequest mint;
  mint.set_job_id("job-1");
  mint.set_attempt(4);
  mint.set_agent_id("agent-1");
  mint.set_owner("owner-1");
  trainmesh::v1::JobToken token;
  ASSERT_TRUE(mesh.auth().MintJobToken(TestMesh::With(mesh.service_key()).get(), mint, &token).ok());
  // As any service receiving it would: authenticate, then check the binding.
  absl::StatusOr<trainmesh::v1::Principal> p = mesh.jobs_authenticator().Authenticate(token.token());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(identity::CheckJobToken(*p, "job-1", 4).ok());
  EXPECT_EQ(identity::CheckJobToken(*p, "job-2", 4).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(identity::CheckJobToken(*p, "job-1", 5).code(), absl::StatusCode::kPermissionDenied);
  // A job token opens nothing of the jobs API (its only scope is job:report).
  trainmesh::v1::ListJobsResponse list;
  EXPECT_EQ(mesh.jobs().ListJobs(TestMesh::With(token.token()).get(), {}, &list).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST(IdentityTest, WritesAreRateLimitedWithRetryInfo) {
  MeshOptions options;
  options.rate_limits = {{"write", {1, 2}}};
  TestMesh mesh(options);
  TestMesh::User alice = mesh.AddUser("alice");
  TestMesh::User bob = mesh.AddUser("bob");
  Job job;
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  grpc::Status s = CreateJob(mesh, alice.token, &job);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(s.error_details()));
  ASSERT_EQ(rich.details_size(), 1);
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(rich.details(0).UnpackTo(&retry));
  EXPECT_GT(retry.retry_delay().nanos() + retry.retry_delay().seconds(), 0);
  // Reads and other callers are unaffected.
  trainmesh::v1::ListJobsResponse list;
  EXPECT_TRUE(mesh.jobs().ListJobs(TestMesh::With(alice.token).get(), {}, &list).ok());
  EXPECT_TRUE(CreateJob(mesh, bob.token, &job).ok());
}

TEST(IdentityTest, AnAuthOutageKeepsKnownTokensWorking) {
  TestMesh mesh;
  TestMesh::User alice = mesh.AddUser("alice");
  auto key = mesh.AddApiKey(alice, {"jobs:read"});
  Job job;
  ASSERT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  mesh.StopAuth();
  // Tokens verify locally against the keys already fetched.
  EXPECT_TRUE(CreateJob(mesh, alice.token, &job).ok());
  // An API key needs the auth service: UNAVAILABLE (retryable), not "invalid".
  trainmesh::v1::ListJobsResponse list;
  grpc::Status s = mesh.jobs().ListJobs(TestMesh::With(key.secret()).get(), {}, &list);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace trainmesh::testing
