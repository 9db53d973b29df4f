// The gRPC adapter of the jobs service: proto in, one call into JobsService,
// proto out. Authentication and scopes come from the shared handler path.
#pragma once

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

  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* context,
                                      const trainmesh::v1::CreateJobRequest* request,
                                      trainmesh::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const trainmesh::v1::GetJobRequest* request,
                                   trainmesh::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const trainmesh::v1::ListJobsRequest* request,
                                     trainmesh::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const trainmesh::v1::CancelJobRequest* request,
                                      trainmesh::v1::Job* response) override;
  grpc::ServerUnaryReactor* RetryJob(grpc::CallbackServerContext* context,
                                     const trainmesh::v1::RetryJobRequest* request,
                                     trainmesh::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetErrorLog(grpc::CallbackServerContext* context,
                                        const trainmesh::v1::GetErrorLogRequest* request,
                                        trainmesh::v1::ErrorLog* response) override;
  grpc::ServerWriteReactor<trainmesh::v1::Job>* WatchJobs(
      grpc::CallbackServerContext* context,
      const trainmesh::v1::WatchJobsRequest* request) override;
  grpc::ServerWriteReactor<trainmesh::v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* context,
      const trainmesh::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* ListNotifications(
      grpc::CallbackServerContext* context, const trainmesh::v1::ListNotificationsRequest* request,
      trainmesh::v1::ListNotificationsResponse* response) override;
  grpc::ServerUnaryReactor* MarkNotificationsRead(
      grpc::CallbackServerContext* context,
      const trainmesh::v1::MarkNotificationsReadRequest* request,
      trainmesh::v1::MarkNotificationsReadResponse* response) override;
  grpc::ServerUnaryReactor* ListJobEvents(grpc::CallbackServerContext* context,
                                          const trainmesh::v1::ListJobEventsRequest* request,
                                          trainmesh::v1::ListJobEventsResponse* response) override;
  grpc::ServerWriteReactor<trainmesh::v1::ArtifactChunk>* DownloadArtifact(
      grpc::CallbackServerContext* context,
      const trainmesh::v1::DownloadArtifactRequest* request) override;
  grpc::ServerUnaryReactor* ListRecipes(grpc::CallbackServerContext* context,
                                        const trainmesh::v1::ListRecipesRequest* request,
                                        trainmesh::v1::ListRecipesResponse* response) override;
  grpc::ServerUnaryReactor* GetRecipe(grpc::CallbackServerContext* context,
                                      const trainmesh::v1::GetRecipeRequest* request,
                                      trainmesh::v1::Recipe* response) override;

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

  grpc::ServerUnaryReactor* ReportJobStatus(grpc::CallbackServerContext* context,
                                            const trainmesh::v1::ReportJobStatusRequest* request,
                                            trainmesh::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJobOwner(grpc::CallbackServerContext* context,
                                        const trainmesh::v1::GetJobOwnerRequest* request,
                                        trainmesh::v1::JobOwner* response) override;

 private:
  JobsService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
};

}  // namespace trainmesh::jobs
