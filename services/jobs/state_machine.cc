#include "services/jobs/state_machine.h"

#include "absl/strings/str_cat.h"

namespace trainmesh::jobs {

using trainmesh::v1::Job;

bool IsTerminal(State state) {
  return state == Job::COMPLETED || state == Job::FAILED || state == Job::CANCELLED;
}

bool IsLegalTransition(State from, State to) {
  switch (from) {
    case Job::PENDING:
      return to == Job::QUEUED || to == Job::CANCELLED || to == Job::FAILED;
    case Job::QUEUED:
      return to == Job::INITIALIZING || to == Job::RUNNING || to == Job::CANCELLED ||
             to == Job::FAILED;
    case Job::INITIALIZING:
      return to == Job::RUNNING || to == Job::QUEUED || to == Job::COMPLETED ||
             to == Job::FAILED || to == Job::CANCELLED;
    case Job::RUNNING:
      return to == Job::COMPLETED || to == Job::FAILED || to == Job::CANCELLED ||
             to == Job::QUEUED;
    default:
      return false;
  }
}

absl::Status CheckTransition(State from, State to) {
  if (IsLegalTransition(from, to)) return absl::OkStatus();
  if (IsTerminal(from)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job is ", StateName(from), ", a final state; it cannot become ",
                     StateName(to)));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("a job cannot go from ", StateName(from), " to ", StateName(to)));
}

const std::string& StateName(State state) { return Job::State_Name(state); }

State StateFromName(const std::string& name) {
  State state = Job::STATE_UNSPECIFIED;
  Job::State_Parse(name, &state);
  return state;
}

}  // namespace trainmesh::jobs
