// Delivery of the jobs outbox to the scheduler: "enqueue" (a new job or a
// retry; the job is read as it is now, and skipped if it was cancelled in the
// meantime) and "cancel".
#pragma once

#include <string>

#include "libs/pg/outbox_relay.h"
#include "services/jobs/job_store.h"

namespace trainmesh::jobs {

pg::OutboxRelay::Deliver DeliverToScheduler(JobStore* store, const std::string& scheduler_endpoint,
                                            const std::string& credential);

}  // namespace trainmesh::jobs
