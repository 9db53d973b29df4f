// WatchJob: a server-streaming reactor that replays a job's events after
// `after_seq` and then follows new ones as they are committed. Postgres
// NOTIFY (payload: job id) wakes the watchers of a job through the EventHub;
// a woken watcher re-reads its job's events after the last one it has, so
// a notification that is lost, duplicated or coalesced never costs an event
// or repeats one. Database reads run on the executor, never on gRPC threads.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "libs/server/executor.h"
#include "libs/server/hub.h"
#include "libs/server/stream_guard.h"
#include "services/jobs/jobs_service.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::jobs {

// What a job's NOTIFY says besides its id (the hub's key): its owner, empty
// when the payload did not say (an older replica's).
struct JobChange {
  std::string owner;
};

// Who watches which job, on this replica.
using EventHub = server::Hub<JobChange>;

// Publishes a NOTIFY on JobStore::kEventsChannel: `payload` is "JOB_ID OWNER"
// (or just the job id).
void PublishNotification(EventHub* hub, const std::string& payload);

// Starts a WatchJob stream. `authorize` (which may block: key refresh, API key
// lookup) runs on the executor before anything is read; its error ends the
// stream. The returned reactor owns itself.
grpc::ServerWriteReactor<trainmesh::v1::JobEvent>* StartWatch(
    JobsService* service, server::Executor* executor, EventHub* hub, server::StreamGuards* guards,
    std::function<absl::StatusOr<trainmesh::v1::Principal>()> authorize,
    const trainmesh::v1::WatchJobRequest& request);

}  // namespace trainmesh::jobs
