// The training loop shared by every LibTorch recipe: device, optimizer,
// schedule, per-step reports, validation, checkpoints (save, prune, resume),
// cancellation and the final model export.
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <new>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/json/json.h"
#include "libs/recipes/job_spec.h"
#include "libs/recipes/manifest.h"
#include "libs/recipes/recipes.h"
#include "libs/training/nvml.h"
#include "libs/training/task.h"
#include "libs/training/training.h"

namespace trainmesh::training {

using google::protobuf::Struct;
using trainmesh::v1::Artifact;

// --- Helpers ------------------------------------------------------------------

uint64_t MixSeed(uint64_t seed, uint64_t salt) {
  // splitmix64 over the pair.
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + salt + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Split SplitRows(int64_t n, double val_fraction, double test_fraction, uint64_t seed) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  std::mt19937_64 rng(MixSeed(seed, 1));
  std::shuffle(perm.begin(), perm.end(), rng);
  int64_t n_test = static_cast<int64_t>(std::llround(n * test_fraction));
  int64_t n_val = static_cast<int64_t>(std::llround(n * val_fraction));
  if (test_fraction > 0) n_test = std::max<int64_t>(n_test, 1);
  if (val_fraction > 0) n_val = std::max<int64_t>(n_val, 1);
  if (n_test + n_val >= n) n_test = n_val = 0;  // too small to hold anything out
  Split s;
  s.test.assign(perm.begin(), perm.begin() + n_test);
  s.val.assign(perm.begin() + n_test, perm.begin() + n_test + n_val);
  s.train.assign(perm.begin() + n_test + n_val, perm.end());
  return s;
}

const std::vector<int64_t>& EpochSampler::Permutation(int64_t epoch) {
  if (epoch != epoch_) {
    perm_ = rows_;
    std::mt19937_64 rng(MixSeed(seed_, 1000 + static_cast<uint64_t>(epoch)));
    std::shuffle(perm_.begin(), perm_.end(), rng);
    epoch_ = epoch;
  }
  return perm_;
}

std::vector<int64_t> EpochSampler::Batch(int64_t step, int64_t batch_size) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(batch_size));
  const int64_t n = size();
  for (int64_t k = 0; k < batch_size; ++k) {
    const int64_t position = step * batch_size + k;
    out.push_back(Permutation(position / n)[static_cast<size_t>(position % n)]);
  }
  return out;
}

torch::Tensor Indices(const std::vector<int64_t>& rows, torch::Device device) {
  return torch::tensor(rows, torch::kLong).to(device);
}

torch::nn::Sequential MakeMlp(int64_t in, const std::vector<int64_t>& hidden, int64_t out,
                              const std::string& activation, double dropout) {
  torch::nn::Sequential net;
  int64_t width = in;
  for (int64_t h : hidden) {
    net->push_back(torch::nn::Linear(width, h));
    if (activation == "tanh") {
      net->push_back(torch::nn::Tanh());
    } else if (activation == "gelu") {
      net->push_back(torch::nn::GELU());
    } else {
      net->push_back(torch::nn::ReLU());
    }
    if (dropout > 0) net->push_back(torch::nn::Dropout(dropout));
    width = h;
  }
  net->push_back(torch::nn::Linear(width, out));
  return net;
}

Struct MlpArchitecture(int64_t in, const std::vector<int64_t>& hidden, int64_t out,
                       const std::string& activation, double dropout) {
  Struct s;
  auto& f = *s.mutable_fields();
  f["type"].set_string_value("mlp");
  f["inputs"].set_number_value(static_cast<double>(in));
  f["outputs"].set_number_value(static_cast<double>(out));
  for (int64_t h : hidden) {
    f["hidden_sizes"].mutable_list_value()->add_values()->set_number_value(static_cast<double>(h));
  }
  f["activation"].set_string_value(activation);
  f["dropout"].set_number_value(dropout);
  return s;
}

void InChunks(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
  for (int64_t start = 0; start < n; start += chunk) fn(start, std::min(n, start + chunk));
}

namespace {

// --- Device -------------------------------------------------------------------

absl::StatusOr<torch::Device> PickDevice(const std::string& want) {
  if (want == "cpu") return torch::Device(torch::kCPU);
  const bool cuda = torch::cuda::is_available();
  if (want.empty() || want == "auto") return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (absl::StartsWith(want, "cuda")) {
    if (!cuda) return absl::FailedPreconditionError("CUDA was asked for but is not available");
    int index = 0;
    if (want.size() > 4 && (want[4] != ':' || !absl::SimpleAtoi(want.substr(5), &index))) {
      return absl::InvalidArgumentError(absl::StrCat("bad device ", want));
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
      return absl::FailedPreconditionError(absl::StrCat("no CUDA device ", index));
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return absl::InvalidArgumentError(absl::StrCat("bad device ", want, " (auto, cpu, cuda, cuda:N)"));
}

// --- Checkpoints ----------------------------------------------------------------

std::string CheckpointName(int64_t step) { return absl::StrFormat("checkpoint-%012d.pt", step); }

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

absl::StatusOr<Artifact> SaveCheckpoint(const RunOptions& o, Task& task,
                                        torch::optim::Optimizer& optimizer, int64_t step,
                                        uint64_t seed) {
  const std::string& job = o.job.id();
  const std::string name = CheckpointName(step);
  auto path = o.store->ScratchPath(job, name);
  if (!path.ok()) return path.status();
  try {
    torch::serialize::OutputArchive archive, model, optim;
    task.module().save(model);
    optimizer.save(optim);
    archive.write("model", model);
    archive.write("optimizer", optim);
    archive.write("step", torch::tensor(step, torch::kLong));
    // Every step reseeds from (seed, step), so (seed, step) is the whole RNG state.
    archive.write("seed", torch::tensor(static_cast<int64_t>(seed), torch::kLong));
    archive.save_to(*path);
  } catch (const std::exception& e) {
    unlink(path->c_str());
    return absl::UnavailableError(absl::StrCat("writing checkpoint: ", e.what()));
  }
  auto artifact = o.store->Adopt(job, name, *path, step);
  if (!artifact.ok()) return artifact.status();
  if (auto s = o.store->Prune(job, "checkpoint-", std::max(1, o.keep_checkpoints)); !s.ok()) {
    if (o.sink.log) o.sink.log(absl::StrCat("could not prune old checkpoints: ", s.message()));
  }
  return artifact;
}

absl::StatusOr<int64_t> LoadCheckpoint(const RunOptions& o, const Artifact& from, Task& task,
                                       torch::optim::Optimizer& optimizer, torch::Device device) {
  auto path = o.store->Path(from.uri());
  if (!path.ok()) return path.status();
  try {
    torch::serialize::InputArchive archive, model, optim;
    archive.load_from(*path, device);
    archive.read("model", model);
    task.module().load(model);
    archive.read("optimizer", optim);
    optimizer.load(optim);
    torch::Tensor step;
    archive.read("step", step);
    return step.item<int64_t>();
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint ", from.uri(), " is unreadable: ", e.what()));
  }
}

// --- Export ---------------------------------------------------------------------

absl::StatusOr<Artifact> ExportModel(const RunOptions& o, Task& task, int64_t step,
                                     const Metrics& summary, const std::string& device_type) {
  c10::Dict<std::string, torch::Tensor> state;
  for (const auto& p : task.module().named_parameters(/*recurse=*/true)) {
    state.insert(p.key(), p.value().detach().to(torch::kCPU).contiguous());
  }
  for (const auto& b : task.module().named_buffers(/*recurse=*/true)) {
    state.insert(b.key(), b.value().detach().to(torch::kCPU).contiguous());
  }
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(state));
  recipes::ModelManifest manifest = recipes::ManifestOf(o.job, o.attempt);
  manifest.architecture = task.Architecture();
  manifest.step = step;
  manifest.trained_on = device_type;
  manifest.weights = "model.pt";
  manifest.metrics = summary;
  auto json = o.store->Put(o.job.id(), "model.json", recipes::ManifestJson(manifest), step);
  if (!json.ok()) return json.status();
  return o.store->Put(o.job.id(), "model.pt", absl::string_view(bytes.data(), bytes.size()), step);
}

// --- Reporting ------------------------------------------------------------------

class Reporter {
 public:
  Reporter(const RunOptions& o) : o_(o) {}
  void Points(int64_t step, const Metrics& metrics) {
    if (!o_.sink.metrics || metrics.empty()) return;
    std::vector<trainmesh::v1::MetricPoint> points;
    const auto now = google::protobuf::util::TimeUtil::GetCurrentTime();
    for (const auto& [name, value] : metrics) {
      if (!std::isfinite(value)) continue;
      trainmesh::v1::MetricPoint p;
      p.set_name(name);
      p.set_step(step);
      p.set_value(value);
      *p.mutable_wall_time() = now;
      points.push_back(std::move(p));
    }
    o_.sink.metrics(std::move(points));
  }
  void Log(std::string line) {
    if (o_.sink.log) o_.sink.log(std::move(line));
  }

 private:
  const RunOptions& o_;
};

std::string Describe(const Metrics& m) {
  std::string out;
  for (const auto& [name, value] : m) absl::StrAppend(&out, out.empty() ? "" : " ", name, " ", absl::StrFormat("%.5g", value));
  return out;
}

double Lookup(const Metrics& m, const std::string& name) {
  for (const auto& [k, v] : m) {
    if (k == name) return v;
  }
  return std::nan("");
}

absl::StatusOr<std::unique_ptr<Task>> MakeTask(const Context& context) {
  const std::string& model = context.job.model();
  if (model == recipes::kMlpPolicy) return MakeMlpPolicy(context);
  if (model == recipes::kTabular) return MakeTabular(context);
  if (model == recipes::kLoraLm) return MakeLoraLm(context);
  return absl::InvalidArgumentError(absl::StrCat("this trainer does not run recipe ", model));
}

RunResult Failure(RunResult r, trainmesh::v1::ErrorKind kind, std::string error) {
  r.outcome = Outcome::kFailed;
  r.error_kind = kind;
  r.error = std::move(error);
  return r;
}

trainmesh::v1::ErrorKind KindOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kOutOfRange:
      return trainmesh::v1::ERROR_KIND_USER;
    default:
      return trainmesh::v1::ERROR_KIND_INFRA;
  }
}

}  // namespace

std::vector<std::string> SupportedRecipes() {
  return {std::string(recipes::kMlpPolicy), std::string(recipes::kLoraLm),
          std::string(recipes::kTabular)};
}

RunResult Train(const RunOptions& o) {
  const absl::Time started = absl::Now();
  RunResult r;
  Reporter report(o);
  auto finish = [&](RunResult result) {
    result.device_seconds = absl::ToDoubleSeconds(absl::Now() - started);
    return result;
  };
  if (o.store == nullptr) return Failure(r, trainmesh::v1::ERROR_KIND_INFRA, "no artifact store");
  auto device = PickDevice(o.device);
  if (!device.ok()) return finish(Failure(r, trainmesh::v1::ERROR_KIND_INFRA, std::string(device.status().message())));
  r.device_type = device->is_cuda() ? "cuda" : "cpu";
  if (o.threads > 0) torch::set_num_threads(o.threads);
  auto spec = recipes::ResolveJobSpec(o.job);
  if (!spec.ok()) return finish(Failure(r, trainmesh::v1::ERROR_KIND_USER, std::string(spec.status().message())));
  if (!spec->training.has_value()) {
    return finish(Failure(r, trainmesh::v1::ERROR_KIND_INFRA, absl::StrCat("recipe ", spec->recipe, " is not trained here")));
  }
  const recipes::TrainingParams& training = *spec->training;
  const uint64_t seed = static_cast<uint64_t>(training.seed());
  const int64_t steps = training.steps();
  const int64_t batch = training.batch_size();
  const double lr = training.learning_rate();
  const double weight_decay = training.weight_decay();
  const int64_t checkpoint_every = training.checkpoint_every();
  const int64_t eval_every = o.eval_every > 0 ? o.eval_every : std::max<int64_t>(1, steps / 20);
  try {
    torch::manual_seed(seed);
    Context context{o.job, *spec, *device, o.datasets, o.store, o.sink.log, seed};
    auto made = MakeTask(context);
    if (!made.ok()) return finish(Failure(r, KindOf(made.status()), std::string(made.status().message())));
    Task& task = **made;
    task.module().to(*device);
    int64_t total = 0, trainable = 0;
    for (const auto& p : task.module().parameters()) total += p.numel();
    std::vector<torch::Tensor> params = task.trainable();
    for (const auto& p : params) trainable += p.numel();
    report.Log(absl::StrFormat("model: %d parameters, %d trainable; device %s%s", total, trainable,
                               device->str(), device->is_cpu() ? absl::StrCat(", ", torch::get_num_threads(), " threads") : ""));
    torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(lr).weight_decay(weight_decay));

    int64_t step = 0;
    // This job's own newest checkpoint first: a killed attempt may have
    // written one it never got to report. Then the one the scheduler names
    // (the last reported, or the failed job's for a retry with resume).
    std::vector<Artifact> sources;
    if (auto own = o.store->Latest(o.job.id(), "checkpoint-"); own.has_value()) sources.push_back(*own);
    if (o.resume_from.has_value() && !o.resume_from->uri().empty() &&
        (sources.empty() || sources[0].uri() != o.resume_from->uri())) {
      sources.push_back(*o.resume_from);
    }
    // A retry asked to resume, whose predecessor never reported a checkpoint
    // it wrote: that job's newest one.
    if (sources.empty() && o.job.resume_from_checkpoint() && !o.job.retry_of().empty()) {
      if (auto parent = o.store->Latest(o.job.retry_of(), "checkpoint-"); parent.has_value()) {
        sources.push_back(*parent);
      }
    }
    for (const Artifact& from : sources) {
      auto resumed = LoadCheckpoint(o, from, task, optimizer, *device);
      if (resumed.ok()) {
        step = std::min(*resumed, steps);
        r.checkpoint = from;
        report.Log(absl::StrCat("resumed from checkpoint at step ", step));
        break;
      }
      report.Log(absl::StrCat("cannot resume: ", resumed.status().message()));
    }
    if (!sources.empty() && step == 0) report.Log("starting from step 0");
    const int64_t first_step = step;
    double step_seconds = 0;  // smoothed
    absl::Time last_checkpoint = absl::Now();
    Metrics last_val;
    double train_loss = std::nan("");
    const int64_t units = task.units_per_example();
    auto progress = [&](int64_t at) {
      trainmesh::v1::Progress p;
      p.set_step(at);
      p.set_total_steps(steps);
      p.set_epoch(static_cast<int32_t>(at * batch / std::max<int64_t>(1, task.epoch_examples())));
      p.set_fraction(static_cast<double>(at) / static_cast<double>(steps));
      if (step_seconds > 0) {
        p.set_samples_per_second(static_cast<double>(batch) / step_seconds);
        const double eta = step_seconds * static_cast<double>(steps - at);
        *p.mutable_eta() = google::protobuf::util::TimeUtil::MillisecondsToDuration(static_cast<int64_t>(eta * 1000));
      }
      if (std::isfinite(train_loss)) p.set_train_loss(train_loss);
      const double val = Lookup(last_val, "val_loss");
      if (std::isfinite(val)) p.set_val_loss(val);
      r.progress = p;
      if (o.sink.progress) o.sink.progress(p);
    };
    auto checkpoint = [&]() -> absl::Status {
      auto saved = SaveCheckpoint(o, task, optimizer, step, seed);
      if (!saved.ok()) return saved.status();
      r.checkpoint = *saved;
      last_checkpoint = absl::Now();
      if (o.sink.checkpoint) o.sink.checkpoint(*saved);
      return absl::OkStatus();
    };
    progress(step);
    while (step < steps) {
      const int stop = o.stop != nullptr ? o.stop->load() : kKeepGoing;
      if (stop == kCancel) {
        r.outcome = Outcome::kCancelled;
        report.Log(absl::StrCat("cancelled at step ", step));
        return finish(r);
      }
      if (stop == kPreempt) {
        if (step > first_step || !r.checkpoint.has_value()) {
          if (auto s = checkpoint(); !s.ok()) report.Log(absl::StrCat("checkpoint failed: ", s.message()));
        }
        r.outcome = Outcome::kPreempted;
        report.Log(absl::StrCat("stopped at step ", step, " to be resumed"));
        return finish(r);
      }
      const auto t0 = std::chrono::steady_clock::now();
      torch::manual_seed(MixSeed(seed, static_cast<uint64_t>(step) + 7));
      const double rate = lr * task.LearningRateScale(step, steps);
      SetLearningRate(optimizer, rate);
      Metrics metrics;
      task.module().train();
      optimizer.zero_grad();
      torch::Tensor loss = task.Loss(step, batch, &metrics);
      train_loss = loss.item<double>();
      if (!std::isfinite(train_loss)) {
        return finish(Failure(r, trainmesh::v1::ERROR_KIND_USER,
                              absl::StrCat("training diverged: the loss is ", train_loss, " at step ", step + 1,
                                           "; try a lower learning_rate")));
      }
      loss.backward();
      if (task.grad_clip() > 0) {
        const double norm = torch::nn::utils::clip_grad_norm_(params, task.grad_clip());
        metrics.emplace_back("grad_norm", norm);
      }
      optimizer.step();
      ++step;
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      step_seconds = step_seconds == 0 ? seconds : 0.9 * step_seconds + 0.1 * seconds;
      metrics.insert(metrics.begin(), {{"train_loss", train_loss}, {"learning_rate", rate}});
      metrics.emplace_back(task.unit() + "_per_second", static_cast<double>(batch * units) / step_seconds);
      if (auto usage = nvml::Sample(device->is_cuda() ? device->index() : -1); usage.has_value()) {
        metrics.emplace_back("gpu_utilization", usage->gpu_utilization);
        metrics.emplace_back("gpu_memory_used_bytes", static_cast<double>(usage->gpu_memory_used_bytes));
      }
      if (step % eval_every == 0 || step == steps) {
        torch::NoGradGuard no_grad;
        task.module().eval();
        last_val = task.Validate();
        metrics.insert(metrics.end(), last_val.begin(), last_val.end());
        report.Log(absl::StrFormat("step %d/%d train_loss %.5g %s (%.0f %s/s)", step, steps, train_loss,
                                   Describe(last_val), static_cast<double>(batch * units) / step_seconds, task.unit()));
      }
      report.Points(step, metrics);
      progress(step);
      if (step < steps && ((checkpoint_every > 0 && step % checkpoint_every == 0) ||
                           absl::Now() - last_checkpoint >= o.checkpoint_interval)) {
        if (auto s = checkpoint(); !s.ok()) {
          return finish(Failure(r, trainmesh::v1::ERROR_KIND_INFRA, absl::StrCat("checkpoint failed: ", s.message())));
        }
      }
    }
    Metrics summary = {{"train_loss", train_loss}};
    {
      torch::NoGradGuard no_grad;
      task.module().eval();
      Metrics test = task.Test();
      if (!test.empty()) {
        report.Points(step, test);
        report.Log(absl::StrCat("test: ", Describe(test)));
      }
      summary.insert(summary.end(), last_val.begin(), last_val.end());
      summary.insert(summary.end(), test.begin(), test.end());
    }
    auto artifact = ExportModel(o, task, step, summary, r.device_type);
    if (!artifact.ok()) {
      return finish(Failure(r, trainmesh::v1::ERROR_KIND_INFRA,
                            absl::StrCat("saving the model: ", artifact.status().message())));
    }
    r.artifact = *artifact;
    r.outcome = Outcome::kCompleted;
    report.Log(absl::StrCat("completed ", step, " steps: ", Describe(summary)));
    return finish(r);
  } catch (const c10::Error& e) {
    return finish(Failure(r, trainmesh::v1::ERROR_KIND_USER,
                          absl::StrCat("training failed: ", e.what_without_backtrace())));
  } catch (const std::bad_alloc&) {
    return finish(Failure(r, trainmesh::v1::ERROR_KIND_USER,
                          "training ran out of memory; try a smaller batch_size or model"));
  } catch (const std::exception& e) {
    return finish(Failure(r, trainmesh::v1::ERROR_KIND_INFRA, absl::StrCat("training failed: ", e.what())));
  }
}

DeviceInfo ProbeDevice(const std::string& device) {
  DeviceInfo info;
  auto picked = PickDevice(device);
  info.cpu_cores = static_cast<int>(std::thread::hardware_concurrency());
  info.memory_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  info.device_type = picked.ok() && picked->is_cuda() ? "cuda" : "cpu";
  if (info.device_type == "cuda") {
    info.gpu_count = static_cast<int>(torch::cuda::device_count());
    if (auto gpu = nvml::Describe(picked->index()); gpu.has_value()) {
      info.gpu_model = gpu->name;
      info.gpu_memory_bytes = gpu->memory_bytes;
    }
  }
  return info;
}

double MatmulGflops(int threads, int size) {
  if (threads > 0) torch::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::randn({size, size}), b = torch::randn({size, size});
  torch::mm(a, b);  // warm up
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double seconds = 0;
  while (seconds < 0.05 || reps < 3) {
    torch::mm(a, b);
    ++reps;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return 2.0 * size * size * static_cast<double>(size) * reps / seconds / 1e9;
}

}  // namespace trainmesh::training
