// The `script` recipe: a user's command run as untrusted code in the sandbox
// of libs/scriptrun, in a fresh working directory. Its stdout speaks the
// JSON-lines metric protocol (libs/lineproto); everything else it prints is
// logged. The environment holds only what the job needs — its own job token,
// never the agent's credentials. Its outputs are collected without following
// links (libs/scriptrun/outputs.h).
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "libs/artifacts/artifact_store.h"
#include "libs/datasets/datasets.h"
#include "libs/scriptrun/script.h"
#include "libs/training/training.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/metrics.pb.h"

namespace trainmesh::training {

struct ScriptJobOptions {
  trainmesh::v1::Job job;
  int attempt = 1;
  std::string job_token;
  datasets::DatasetOptions datasets;
  artifacts::ArtifactStore* store = nullptr;
  std::string work_root;
  // How scripts are confined (the agent's ScriptPolicy): the user they run
  // as, the limits, the sandbox on or off. Its `network` is decided here.
  scriptrun::SandboxOptions sandbox;
  // Whether this agent lets a job that asks (hyperparameters.network) reach
  // the network. A job that asks where it may not fails as the user's error
  // rather than running without what it said it needs.
  bool allow_network = false;
  const std::atomic<int>* stop = nullptr;
  // metrics, progress and system log lines, as for LibTorch recipes.
  training::Sink sink;
  // The script's own output lines (stdout that is not a metric, and stderr).
  std::function<void(trainmesh::v1::LogLine::Stream, std::string)> output;
  std::function<void(trainmesh::v1::Chart)> chart;
};

// Runs the script to its end. Completed: the regular files the script left
// in $TRAINMESH_OUTPUT_DIR (folders kept: "figures/loss.png") become
// artifacts, the job's artifact being model.pt when there is one, else a
// model.json describing the run; links, FIFOs and the like are skipped and
// logged. A non-zero exit, a signal, a timeout or too much output is the
// user's failure, with the last output lines.
training::RunResult RunScriptJob(const ScriptJobOptions& options);

// How an agent runs scripts, decided once at start-up from its settings and a
// probe of the sandbox (run under `work_root`).
struct ScriptPolicy {
  scriptrun::SandboxOptions sandbox;  // enabled: in the sandbox
  // Non-empty: scripts are refused with this error (it names the flag that
  // would let them run).
  std::string refusal;
  // Non-empty: scripts run unconfined; say so loudly at start-up.
  std::string warning;
};
ScriptPolicy DecideScriptPolicy(const scriptrun::SandboxOptions& wanted,
                                bool unsafe_without_sandbox, const std::string& work_root);

}  // namespace trainmesh::training
