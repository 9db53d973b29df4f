// Flows that cross services: the jobs service showing what the metrics
// service holds, job tokens from auth reporting to metrics.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/harness/mesh.h"

namespace trainmesh::testing {
namespace {

using trainmesh::v1::Job;

TEST(MeshTest, GetJobShowsTheLatestPointsAndCost) {
  TestMesh mesh;
  TestMesh::User alice = mesh.AddUser("alice");
  trainmesh::v1::CreateJobRequest create;
  create.mutable_job()->set_model("tabular");
  create.mutable_job()->set_dataset_url("synthetic://blobs");
  Job job;
  ASSERT_TRUE(mesh.jobs().CreateJob(TestMesh::With(alice.token).get(), create, &job).ok());

  // The trainer's reports, with the job token auth mints for the claim.
  const std::string token = mesh.JobToken(job.id(), 1, alice.user.id());
  auto ctx = TestMesh::With(token);
  auto stream = mesh.metrics().ReportMetrics(ctx.get());
  trainmesh::v1::ReportMetricsRequest batch;
  batch.set_job_id(job.id());
  batch.set_batch_seq(1);
  batch.set_device_type("cpu");
  batch.set_device_seconds(100);  // at 3.6/h: 0.1
  for (int i = 0; i < 150; ++i) {
    auto* p = batch.add_points();
    p->set_name("train_loss");
    p->set_step(i);
    p->set_value(1.0 / (i + 1));
  }
  ASSERT_TRUE(stream->Write(batch));
  trainmesh::v1::ReportMetricsResponse ack;
  ASSERT_TRUE(stream->Read(&ack));
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());

  trainmesh::v1::GetJobRequest get;
  get.set_id(job.id());
  Job shown;
  ASSERT_TRUE(mesh.jobs().GetJob(TestMesh::With(alice.token).get(), get, &shown).ok());
  ASSERT_EQ(shown.recent_metrics_size(), 100);
  EXPECT_EQ(shown.recent_metrics(0).step(), 50);
  EXPECT_EQ(shown.recent_metrics(99).step(), 149);
  EXPECT_NEAR(shown.cost().amount(), 0.1, 1e-9);
  EXPECT_EQ(shown.cost().currency(), "USD");

  // Another user's token for that job cannot report, nor read.
  TestMesh::User bob = mesh.AddUser("bob");
  trainmesh::v1::QueryMetricsRequest query;
  query.set_job_id(job.id());
  trainmesh::v1::QueryMetricsResponse result;
  EXPECT_EQ(mesh.metrics().QueryMetrics(TestMesh::With(bob.token).get(), query, &result).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(mesh.metrics().QueryMetrics(TestMesh::With(alice.token).get(), query, &result).ok());
  EXPECT_EQ(result.series(0).total_points(), 150);
}

}  // namespace
}  // namespace trainmesh::testing
