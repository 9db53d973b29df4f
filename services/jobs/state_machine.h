// The job state machine, in one place. Every state change of a job goes through
// CheckTransition inside the transaction that holds the job's row lock.
//
//   PENDING -> QUEUED -> INITIALIZING -> RUNNING -> COMPLETED | FAILED | CANCELLED
//   PENDING | QUEUED | INITIALIZING | RUNNING -> CANCELLED   (cancel)
//   PENDING | QUEUED -> FAILED                     (unclaimed within queue_timeout)
//   INITIALIZING | RUNNING -> QUEUED               (lease expired, attempts left)
//   QUEUED -> RUNNING, INITIALIZING -> COMPLETED   (a trainer may skip a report)
//   COMPLETED, FAILED, CANCELLED are final.
#pragma once

#include "absl/status/status.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::jobs {

using State = trainmesh::v1::Job::State;

bool IsTerminal(State state);

bool IsLegalTransition(State from, State to);

// OK, or FAILED_PRECONDITION naming both states (and that a terminal job is
// final).
absl::Status CheckTransition(State from, State to);

// "PENDING", "QUEUED", … (the proto enum names, also stored in the database).
const std::string& StateName(State state);

// STATE_UNSPECIFIED for an unknown name.
State StateFromName(const std::string& name);

}  // namespace trainmesh::jobs
