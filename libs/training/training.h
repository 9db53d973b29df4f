// Training with LibTorch behind a torch-free interface: the trainer service
// includes only this header, so nothing outside libs/training pays for
// LibTorch's headers.
//
// Train() runs one attempt of one job on the calling thread: it resolves the
// dataset, builds the recipe's model on the chosen device, resumes from a
// checkpoint when given one, trains step by step, and reports every step
// through the Sink. Batches are drawn from generators seeded by (seed, step),
// so a run resumed from a checkpoint takes exactly the steps an uninterrupted
// run would have taken.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/artifacts/artifact_store.h"
#include "libs/datasets/datasets.h"
#include "trainmesh/v1/common.pb.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::training {

// What a run tells the world while it trains. Called on the training thread;
// implementations must be quick (queue and return).
struct Sink {
  std::function<void(std::vector<trainmesh::v1::MetricPoint>)> metrics;
  std::function<void(std::string)> log;
  std::function<void(const trainmesh::v1::Progress&)> progress;
  // A checkpoint was written and may be resumed from.
  std::function<void(const trainmesh::v1::Artifact&)> checkpoint;
};

// Values for the stop flag: the trainer sets it, the loop reads it each step.
inline constexpr int kKeepGoing = 0;
inline constexpr int kCancel = 1;   // stop now, nothing to keep
inline constexpr int kPreempt = 2;  // checkpoint, then stop (shutdown, lost lease)

struct RunOptions {
  trainmesh::v1::Job job;
  int attempt = 1;
  // "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  // Intra-op threads on CPU (0: leave LibTorch's default).
  int threads = 0;
  datasets::DatasetOptions datasets;
  artifacts::ArtifactStore* store = nullptr;
  std::optional<trainmesh::v1::Artifact> resume_from;
  const std::atomic<int>* stop = nullptr;
  // A checkpoint also when this long has passed since the last one.
  absl::Duration checkpoint_interval = absl::Minutes(5);
  // Checkpoints kept per job (older ones are deleted).
  int keep_checkpoints = 2;
  // Validation every this many steps (0: about 20 times per run).
  int64_t eval_every = 0;
  Sink sink;
};

enum class Outcome { kCompleted, kCancelled, kPreempted, kFailed };

struct RunResult {
  Outcome outcome = Outcome::kFailed;
  trainmesh::v1::ErrorKind error_kind = trainmesh::v1::ERROR_KIND_UNSPECIFIED;
  std::string error;
  trainmesh::v1::Artifact artifact;               // the final model, when completed
  std::optional<trainmesh::v1::Artifact> checkpoint;  // the latest checkpoint
  trainmesh::v1::Progress progress;
  std::string device_type;  // "cpu", "cuda"
  double device_seconds = 0;
};

RunResult Train(const RunOptions& options);

// The recipes Train() runs.
std::vector<std::string> SupportedRecipes();

// What this machine offers, for agent registration.
struct DeviceInfo {
  std::string device_type;  // "cuda" or "cpu"
  int gpu_count = 0;
  std::string gpu_model;
  int64_t gpu_memory_bytes = 0;
  int cpu_cores = 0;
  int64_t memory_bytes = 0;
};
DeviceInfo ProbeDevice(const std::string& device);

// Float32 matmul throughput (512×512) on `threads` CPU threads: tells whether
// LibTorch runs on an optimised BLAS (~100+ GFLOP/s) or the reference one (~4).
double MatmulGflops(int threads, int size = 512);

}  // namespace trainmesh::training
