// The jobs service's logic, free of gRPC: validation, ownership, the state
// machine (through JobStore), retries and pagination. Constructible in a test
// with nothing but a JobStore.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/pagination/page_token.h"
#include "services/jobs/job_store.h"
#include "trainmesh/v1/auth.pb.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::jobs {

struct JobsServiceOptions {
  // Move new jobs to QUEUED at once (until the scheduler takes over queueing).
  bool auto_queue = false;
  // Keys page-token HMACs; shared by all replicas.
  std::string page_token_secret;
  // The latest points and cost of a job, from the metrics service (GetJob
  // shows them). Unset, or failing: GetJob answers without them.
  std::function<absl::StatusOr<trainmesh::v1::GetRecentMetricsResponse>(const std::string& job_id)>
      recent_metrics;
  // Hand jobs to the scheduler: new jobs and retries are enqueued, cancels
  // passed on, through the outbox. `wake_dispatch` runs after such a commit.
  bool dispatch = false;
  std::function<void()> wake_dispatch;
};

class JobsService {
 public:
  using Principal = trainmesh::v1::Principal;

  JobsService(JobStore* store, JobsServiceOptions options);
  JobStore* store() const { return store_; }

  // INVALID_ARGUMENT with one field violation per problem; ALREADY_EXISTS when
  // the request_id was used for a different job. A repeated request_id returns
  // the first job.
  absl::StatusOr<trainmesh::v1::Job> CreateJob(const Principal& caller,
                                               const trainmesh::v1::CreateJobRequest& request);
  // NOT_FOUND for another user's job, as for a missing one.
  absl::StatusOr<trainmesh::v1::Job> GetJob(const Principal& caller,
                                            const trainmesh::v1::GetJobRequest& request);
  absl::StatusOr<trainmesh::v1::ListJobsResponse> ListJobs(
      const Principal& caller, const trainmesh::v1::ListJobsRequest& request);
  // FAILED_PRECONDITION for a job in a final state.
  absl::StatusOr<trainmesh::v1::Job> CancelJob(const Principal& caller,
                                               const trainmesh::v1::CancelJobRequest& request);
  // A new job with retry_of set; FAILED_PRECONDITION unless FAILED or CANCELLED.
  absl::StatusOr<trainmesh::v1::Job> RetryJob(const Principal& caller,
                                              const trainmesh::v1::RetryJobRequest& request);
  absl::StatusOr<trainmesh::v1::ErrorLog> GetErrorLog(
      const Principal& caller, const trainmesh::v1::GetErrorLogRequest& request);
  absl::StatusOr<trainmesh::v1::ListJobEventsResponse> ListJobEvents(
      const Principal& caller, const trainmesh::v1::ListJobEventsRequest& request);
  // The caller's inbox, newest first; INVALID_ARGUMENT for a bad page size or
  // a token of another caller or filter.
  absl::StatusOr<trainmesh::v1::ListNotificationsResponse> ListNotifications(
      const Principal& caller, const trainmesh::v1::ListNotificationsRequest& request);
  // INVALID_ARGUMENT (field violations) without ids or through_id, or with
  // ids that cannot be notification ids. Other users' ids are ignored.
  absl::StatusOr<trainmesh::v1::MarkNotificationsReadResponse> MarkNotificationsRead(
      const Principal& caller, const trainmesh::v1::MarkNotificationsReadRequest& request);
  absl::StatusOr<trainmesh::v1::ListRecipesResponse> ListRecipes() const;
  absl::StatusOr<trainmesh::v1::Recipe> GetRecipe(
      const trainmesh::v1::GetRecipeRequest& request) const;

  // Status reports from the scheduler: idempotent (report_seq) and monotonic
  // (stale attempts and reports about a finished job change nothing).
  absl::StatusOr<trainmesh::v1::Job> ReportJobStatus(
      const Principal& caller, const trainmesh::v1::ReportJobStatusRequest& request);

  // Any user's job's owner, for other services (the method needs scope
  // "internal"). NOT_FOUND when there is no such job.
  absl::StatusOr<trainmesh::v1::JobOwner> GetJobOwner(const trainmesh::v1::GetJobOwnerRequest& request);

  // For DownloadArtifact: the caller's job, which must have a final model.
  absl::StatusOr<trainmesh::v1::Job> ArtifactOf(const Principal& caller,
                                                const trainmesh::v1::DownloadArtifactRequest& request);

  // For WatchJob: the caller's job's events after `after_seq`.
  absl::StatusOr<JobStore::EventsPage> WatchBatch(const Principal& caller,
                                                  const std::string& id, int64_t after_seq,
                                                  int limit);

  // Checks a WatchJob request before the stream starts.
  static absl::Status ValidateWatch(const trainmesh::v1::WatchJobRequest& request);

 private:
  // --auto_queue: PENDING -> QUEUED right after creation.
  absl::StatusOr<trainmesh::v1::Job> QueueAtOnce(const trainmesh::v1::Job& job);

  JobStore* store_;
  JobsServiceOptions options_;
  pagination::PageTokenCodec page_tokens_;
};

}  // namespace trainmesh::jobs
