// The gRPC adapter of the jobs service: proto in, one call into JobsService,
// proto out. Authentication and scopes come from the shared handler path.
#pragma once

#include "libs/server/handler.h"

#include "libs/artifacts/artifact_store.h"
#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/stream_guard.h"
#include "services/jobs/jobs_service.h"
#include "services/jobs/watch.h"
#include "trainmesh/v1/jobs.grpc.pb.h"

namespace trainmesh::jobs {

class JobsServer final : public trainmesh::v1::JobService::CallbackService {
 public:
  // `guards` (may be null): per-user stream slots, and streams ended when
  // their credential lapses.
  JobsServer(JobsService* service, server::Executor* executor,
             const identity::Authenticator* authenticator, EventHub* hub,
             const artifacts::ArtifactStore* artifacts = nullptr, server::StreamGuards* guards = nullptr)
      : service_(service), executor_(executor), auth_(authenticator), hub_(hub),
        artifacts_(artifacts), guards_(guards) {}

  TM_UNARY_HANDLER(CreateJob, CreateJobRequest, Job);
  TM_UNARY_HANDLER(GetJob, GetJobRequest, Job);
  TM_UNARY_HANDLER(ListJobs, ListJobsRequest, ListJobsResponse);
  TM_UNARY_HANDLER(CancelJob, CancelJobRequest, Job);
  TM_UNARY_HANDLER(RetryJob, RetryJobRequest, Job);
  TM_UNARY_HANDLER(GetErrorLog, GetErrorLogRequest, ErrorLog);
  TM_STREAM_HANDLER(WatchJobs, WatchJobsRequest, Job);
  TM_STREAM_HANDLER(WatchJob, WatchJobRequest, JobEvent);
  TM_UNARY_HANDLER(ListNotifications, ListNotificationsRequest, ListNotificationsResponse);
  TM_UNARY_HANDLER(MarkNotificationsRead, MarkNotificationsReadRequest, MarkNotificationsReadResponse);
  TM_UNARY_HANDLER(ListJobEvents, ListJobEventsRequest, ListJobEventsResponse);
  TM_STREAM_HANDLER(DownloadArtifact, DownloadArtifactRequest, ArtifactChunk);
  TM_UNARY_HANDLER(ListRecipes, ListRecipesRequest, ListRecipesResponse);
  TM_UNARY_HANDLER(GetRecipe, GetRecipeRequest, Recipe);

 private:
  JobsService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
  EventHub* hub_;
  const artifacts::ArtifactStore* artifacts_;
  server::StreamGuards* guards_;
};

class JobControlServer final : public trainmesh::v1::JobControlService::CallbackService {
 public:
  JobControlServer(JobsService* service, server::Executor* executor,
                   const identity::Authenticator* authenticator)
      : service_(service), executor_(executor), auth_(authenticator) {}

  TM_UNARY_HANDLER(ReportJobStatus, ReportJobStatusRequest, Job);
  TM_UNARY_HANDLER(GetJobOwner, GetJobOwnerRequest, JobOwner);

 private:
  JobsService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
};

}  // namespace trainmesh::jobs
