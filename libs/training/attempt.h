// One attempt of a job, whatever its kind: a LibTorch recipe (Train) or a
// user's script in the sandbox (RunScriptJob). The trainer agent claims,
// heartbeats and reports; which code runs an attempt, and why one may not run
// here, is decided here. Torch-free, like training.h.
#pragma once

#include <functional>

#include "libs/training/attempt_options.h"
#include "libs/training/training.h"

namespace trainmesh::training {

// Runs the attempt to its end on the calling thread.
RunResult RunAttempt(const AttemptOptions& options);

// What runs an attempt (RunAttempt; tests of the agent hand in their own).
using AttemptRunner = std::function<RunResult(const AttemptOptions&)>;

}  // namespace trainmesh::training
