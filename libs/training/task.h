// Inside libs/training only (includes LibTorch): what a recipe implements for
// the shared training loop in runner.cc.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "libs/artifacts/artifact_store.h"
#include "libs/datasets/datasets.h"
#include "libs/recipes/job_spec.h"
#include "trainmesh/v1/jobs.pb.h"

namespace trainmesh::training {

using Metrics = std::vector<std::pair<std::string, double>>;

struct Context {
  const trainmesh::v1::Job& job;
  // The job resolved: typed, complete parameters and its dataset.
  const recipes::JobSpec& spec;
  torch::Device device;
  const datasets::DatasetOptions& datasets;
  artifacts::ArtifactStore* store;
  std::function<void(std::string)> log;
  uint64_t seed;
};

// One recipe's model and data. The loop owns the optimizer, the schedule,
// checkpoints, progress and export.
class Task {
 public:
  virtual ~Task() = default;
  // Everything a checkpoint restores (parameters and buffers).
  virtual torch::nn::Module& module() = 0;
  // The parameters the optimizer updates.
  virtual std::vector<torch::Tensor> trainable() = 0;
  // Mean loss on the batch for `step` (deterministic in step), in training
  // mode; recipe metrics of the batch go to `metrics`.
  virtual torch::Tensor Loss(int64_t step, int64_t batch_size, Metrics* metrics) = 0;
  // Examples of the training split seen per epoch (for the epoch count).
  virtual int64_t epoch_examples() const = 0;
  // Examples one batch item stands for (tokens per sequence for a LM: 1 elsewhere).
  virtual int64_t units_per_example() const { return 1; }
  virtual std::string unit() const { return "samples"; }
  // Validation metrics ("val_loss" first); empty without a validation split.
  virtual Metrics Validate() = 0;
  // Held-out test metrics at the end (tabular); empty by default.
  virtual Metrics Test() { return {}; }
  // The model's shape, for model.json: enough to rebuild it elsewhere.
  virtual google::protobuf::Struct Architecture() const = 0;
  // The learning rate for `step` relative to the base rate (1 by default).
  virtual double LearningRateScale(int64_t step, int64_t total_steps) const { return 1.0; }
  virtual double grad_clip() const { return 0; }
};

absl::StatusOr<std::unique_ptr<Task>> MakeMlpPolicy(const Context& context);
absl::StatusOr<std::unique_ptr<Task>> MakeTabular(const Context& context);
absl::StatusOr<std::unique_ptr<Task>> MakeLoraLm(const Context& context);

// --- Helpers shared by recipes ---------------------------------------------

// A deterministic split of [0, n) into train / validation / test indices.
struct Split {
  std::vector<int64_t> train, val, test;
};
Split SplitRows(int64_t n, double val_fraction, double test_fraction, uint64_t seed);

// The rows of batch `step`: walks a fresh permutation of the training rows each
// epoch, the permutation a function of (seed, epoch), so any step's batch is
// known without replaying earlier steps.
class EpochSampler {
 public:
  EpochSampler(std::vector<int64_t> rows, uint64_t seed) : rows_(std::move(rows)), seed_(seed) {}
  std::vector<int64_t> Batch(int64_t step, int64_t batch_size);
  int64_t size() const { return static_cast<int64_t>(rows_.size()); }

 private:
  const std::vector<int64_t>& Permutation(int64_t epoch);
  std::vector<int64_t> rows_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

uint64_t MixSeed(uint64_t seed, uint64_t salt);

// Index tensor on `device`.
torch::Tensor Indices(const std::vector<int64_t>& rows, torch::Device device);

// Linear layers with an activation (and optional dropout) between them, laid
// out like Python's torch.nn.Sequential so the saved state dict loads there.
torch::nn::Sequential MakeMlp(int64_t in, const std::vector<int64_t>& hidden, int64_t out,
                              const std::string& activation, double dropout);
google::protobuf::Struct MlpArchitecture(int64_t in, const std::vector<int64_t>& hidden, int64_t out,
                                         const std::string& activation, double dropout);

// Runs `fn` over [0, n) in chunks without gradients; for evaluation.
void InChunks(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace trainmesh::training
