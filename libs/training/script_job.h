// The `script` recipe: a user's command run as untrusted code in the sandbox
// of libs/scriptrun, in a fresh working directory. Its stdout speaks the
// JSON-lines metric protocol (libs/lineproto); everything else it prints is
// logged. The environment holds only what the job needs — its own job token,
// never the agent's credentials. Its outputs are collected without following
// links (libs/scriptrun/outputs.h).
#pragma once

#include <string>

#include "libs/scriptrun/script.h"
#include "libs/training/attempt_options.h"
#include "libs/training/training.h"

namespace trainmesh::training {

// Runs the script to its end in the sandbox of options.scripts.policy, under
// a fresh directory of options.scripts.work_root. A job that asks for the
// network (hyperparameters.network) gets it where options.scripts.allow_network
// is on, and fails as the user's error elsewhere rather than running without
// what it said it needs. Completed: the regular files the script left
// in $TRAINMESH_OUTPUT_DIR (folders kept: "figures/loss.png") become
// artifacts, the job's artifact being model.pt when there is one, else a
// model.json describing the run; links, FIFOs and the like are skipped and
// logged. A non-zero exit, a signal, a timeout or too much output is the
// user's failure, with the last output lines.
training::RunResult RunScriptJob(const AttemptOptions& options);

// How an agent runs scripts, decided once at start-up from its settings and a
// probe of the sandbox (run under `work_root`).
ScriptPolicy DecideScriptPolicy(const scriptrun::SandboxOptions& wanted,
                                bool unsafe_without_sandbox, const std::string& work_root);

}  // namespace trainmesh::training
