// WatchJobs: the caller's jobs as snapshots, each time one changes. Woken by
// the same NOTIFY as WatchJob (EventHub::SubscribeAll); changes that arrive
// while a snapshot is being written are coalesced, so a slow client holds at
// most one pending snapshot per job. The NOTIFY names the job's owner, so
// other users' changes are dropped without a read.
#pragma once

#include <functional>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "libs/server/executor.h"
#include "libs/server/stream_guard.h"
#include "services/jobs/jobs_service.h"
#include "services/jobs/watch.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::jobs {

// Starts a WatchJobs stream; `authorize` runs on the executor before anything
// is read. The returned reactor owns itself.
grpc::ServerWriteReactor<trainmesh::v1::Job>* StartFeed(
    JobStore* store, server::Executor* executor, EventHub* hub, server::StreamGuards* guards,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::WatchJobsRequest& request);

}  // namespace trainmesh::jobs
