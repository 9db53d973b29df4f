#include "libs/training/attempt.h"

#include "libs/recipes/recipes.h"
#include "libs/training/script_job.h"

namespace trainmesh::training {

RunResult RunAttempt(const AttemptOptions& o) {
  if (o.job.model() != recipes::kScript) {
    RunOptions run;
    run.job = o.job;
    run.attempt = o.attempt;
    run.device = o.device;
    run.threads = o.threads;
    run.datasets = o.datasets;
    run.store = o.store;
    if (o.resume_from.has_value() && !o.resume_from->uri().empty()) run.resume_from = o.resume_from;
    run.stop = o.stop;
    run.checkpoint_interval = o.checkpoint_interval;
    run.sink = o.sink;
    return Train(run);
  }
  RunResult refused;
  refused.outcome = Outcome::kFailed;
  if (!o.scripts.allowed) {
    refused.error_kind = trainmesh::v1::ERROR_KIND_USER;
    refused.error = "this agent does not run scripts";
    return refused;
  }
  if (!o.scripts.policy.refusal.empty()) {
    // The agent's shortcoming, not the job's: another agent may run it.
    refused.error_kind = trainmesh::v1::ERROR_KIND_INFRA;
    refused.error = o.scripts.policy.refusal;
    return refused;
  }
  return RunScriptJob(o);
}

}  // namespace trainmesh::training
