// The gRPC adapter of the jobs service: proto in, one call into JobsService,
// proto out. Authentication and scopes come from the shared handler path.
#pragma once

#include "libs/artifacts/artifact_store.h"
#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/handler.h"
#include "libs/server/stream_guard.h"
#include "services/jobs/jobs_service.h"
#include "services/jobs/watch.h"
#include "trainmesh/v1/jobs.adapter.h"

namespace trainmesh::jobs {

// JobService: the generated adapter binds each unary RPC to JobsService's
// method of the same name; the streams are written here.
class JobsServer final : public trainmesh::v1::JobServiceAdapter<JobsService> {
 public:
  // `guards` (may be null): per-user stream slots, and streams ended when
  // their credential lapses.
  JobsServer(JobsService* service, server::Executor* executor,
             const identity::Authenticator* authenticator, EventHub* hub,
             const artifacts::ArtifactStore* artifacts = nullptr,
             server::StreamGuards* guards = nullptr)
      : JobServiceAdapter(service, executor, authenticator),
        hub_(hub),
        artifacts_(artifacts),
        guards_(guards) {}

  TM_STREAM_HANDLER(WatchJobs, WatchJobsRequest, Job);
  TM_STREAM_HANDLER(WatchJob, WatchJobRequest, JobEvent);
  TM_STREAM_HANDLER(DownloadArtifact, DownloadArtifactRequest, ArtifactChunk);

 private:
  EventHub* hub_;
  const artifacts::ArtifactStore* artifacts_;
  server::StreamGuards* guards_;
};

// JobControlService (for the scheduler): all generated.
using JobControlServer = trainmesh::v1::JobControlServiceAdapter<JobsService>;

}  // namespace trainmesh::jobs
