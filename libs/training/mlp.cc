// The MLP recipes: mlp-policy (behaviour cloning, observations → actions) and
// tabular (CSV classification or regression with train/validation/test splits).
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/datasets/frames.h"
#include "libs/training/task.h"

namespace trainmesh::training {
namespace {

using google::protobuf::Struct;

torch::Tensor FromMatrix(const std::vector<float>& data, int64_t rows, int64_t cols, torch::Device device) {
  return torch::from_blob(const_cast<float*>(data.data()), {rows, cols}, torch::kFloat32).clone().to(device);
}

// Mean and standard deviation of the rows in `rows` (std 1 where constant).
std::pair<torch::Tensor, torch::Tensor> Moments(const torch::Tensor& x, const torch::Tensor& rows) {
  const torch::Tensor t = x.index_select(0, rows);
  torch::Tensor mean = t.mean(0);
  torch::Tensor std = rows.size(0) > 1 ? t.std(0) : torch::ones_like(mean);
  std = torch::where(std > 1e-8, std, torch::ones_like(std));
  return {mean, std};
}

// An MLP with input and output standardisation stored as buffers.
struct NormalizedMlp : torch::nn::Module {
  NormalizedMlp(int64_t in, const std::vector<int64_t>& hidden, int64_t out, const std::string& activation,
                double dropout, bool normalize_output)
      : normalize_output(normalize_output) {
    net = register_module("net", MakeMlp(in, hidden, out, activation, dropout));
    in_mean = register_buffer("in_mean", torch::zeros({in}));
    in_std = register_buffer("in_std", torch::ones({in}));
    out_mean = register_buffer("out_mean", torch::zeros({out}));
    out_std = register_buffer("out_std", torch::ones({out}));
  }
  // Output in normalised units (or logits).
  torch::Tensor forward(const torch::Tensor& x) { return net->forward((x - in_mean) / in_std); }
  torch::Tensor Denormalize(const torch::Tensor& y) { return y * out_std + out_mean; }
  torch::Tensor Normalize(const torch::Tensor& y) { return (y - out_mean) / out_std; }

  torch::nn::Sequential net{nullptr};
  torch::Tensor in_mean, in_std, out_mean, out_std;
  bool normalize_output;
};

struct MlpParams {
  std::vector<int64_t> hidden;
  std::string activation;
  double dropout;
};


// --- mlp-policy ---------------------------------------------------------------------

class MlpPolicy : public Task {
 public:
  MlpPolicy(const Context& c, datasets::Demonstrations data, const MlpParams& p, Split split)
      : device_(c.device),
        obs_(FromMatrix(data.obs.data, data.obs.rows, data.obs.cols, c.device)),
        act_(FromMatrix(data.act.data, data.act.rows, data.act.cols, c.device)),
        val_(Indices(split.val, c.device)),
        sampler_(split.train, c.seed),
        params_(p),
        model_(std::make_shared<NormalizedMlp>(data.obs.cols, p.hidden, data.act.cols, p.activation, p.dropout,
                                               true)) {
    const torch::Tensor train = Indices(split.train, c.device);
    torch::NoGradGuard no_grad;
    auto [om, os] = Moments(obs_, train);
    auto [am, as] = Moments(act_, train);
    model_->in_mean.copy_(om);
    model_->in_std.copy_(os);
    model_->out_mean.copy_(am);
    model_->out_std.copy_(as);
  }

  torch::nn::Module& module() override { return *model_; }
  std::vector<torch::Tensor> trainable() override { return model_->parameters(); }
  int64_t epoch_examples() const override { return sampler_.size(); }

  torch::Tensor Loss(int64_t step, int64_t batch_size, Metrics* metrics) override {
    const torch::Tensor idx = Indices(sampler_.Batch(step, batch_size), device_);
    const torch::Tensor pred = model_->forward(obs_.index_select(0, idx));
    return torch::mse_loss(pred, model_->Normalize(act_.index_select(0, idx)));
  }

  Metrics Validate() override {
    const int64_t n = val_.size(0);
    if (n == 0) return {};
    double sq = 0, abs_err = 0;
    InChunks(n, 8192, [&](int64_t a, int64_t b) {
      const torch::Tensor idx = val_.slice(0, a, b);
      const torch::Tensor pred = model_->forward(obs_.index_select(0, idx));
      const torch::Tensor target = act_.index_select(0, idx);
      sq += torch::mse_loss(pred, model_->Normalize(target), torch::Reduction::Sum).item<double>();
      abs_err += (model_->Denormalize(pred) - target).abs().sum().item<double>();
    });
    const double count = static_cast<double>(n * act_.size(1));
    return {{"val_loss", sq / count}, {"val_action_mae", abs_err / count}};
  }

  Struct Architecture() const override {
    Struct s = MlpArchitecture(obs_.size(1), params_.hidden, act_.size(1), params_.activation, params_.dropout);
    (*s.mutable_fields())["normalization"].set_string_value(
        "action = net((obs - in_mean) / in_std) * out_std + out_mean");
    return s;
  }

 private:
  torch::Device device_;
  torch::Tensor obs_, act_, val_;
  EpochSampler sampler_;
  MlpParams params_;
  std::shared_ptr<NormalizedMlp> model_;
};

// --- tabular --------------------------------------------------------------------------

constexpr size_t kMaxCategories = 64;
constexpr size_t kMaxClasses = 1000;

struct Encoding {
  struct Feature {
    std::string column;
    bool numeric;
    std::vector<std::string> categories;  // one-hot slots (+1 for anything else)
    double fill = 0;                      // for a missing number: the training mean
  };
  std::vector<Feature> features;
  int64_t width = 0;
};

bool LooksCategorical(const datasets::Column& c, size_t rows) {
  if (!c.numeric) return true;
  std::set<double> distinct;
  for (double v : c.numbers) {
    if (std::isnan(v)) continue;
    if (v != std::floor(v)) return false;
    distinct.insert(v);
    if (distinct.size() > 20) return false;
  }
  return distinct.size() <= std::max<size_t>(2, rows / 20);
}

std::string CellText(const datasets::Column& c, size_t i) {
  if (!c.numeric) return c.texts[i];
  if (std::isnan(c.numbers[i])) return "";
  return absl::StrCat(c.numbers[i]);
}

class Tabular : public Task {
 public:
  static absl::StatusOr<std::unique_ptr<Task>> Make(const Context& c) {
    const auto& hp = std::get<recipes::TabularParams>(c.spec.params);
    datasets::Frame frame;
    auto source = datasets::Resolve(c.spec.dataset, c.datasets);
    if (!source.ok()) return source.status();
    if (source->synthetic()) {
      auto f = datasets::SyntheticFrame(*source);
      if (!f.ok()) return f.status();
      frame = std::move(*f);
    } else {
      auto table = datasets::ReadCsv(source->path);
      if (!table.ok()) return table.status();
      frame = datasets::FromTable(*table);
    }
    if (frame.columns.size() < 2) {
      return absl::InvalidArgumentError("the table needs at least one feature column and a target column");
    }
    std::string target = hp.target_column();
    if (target.empty()) target = frame.columns.back().name;
    const datasets::Column* y = frame.Find(target);
    if (y == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("target_column ", target, " is not a column of the table"));
    }
    std::string kind = hp.task();
    if (kind == "auto") kind = LooksCategorical(*y, frame.rows()) ? "classification" : "regression";
    if (kind == "regression" && !y->numeric) {
      return absl::InvalidArgumentError(absl::StrCat("regression needs a numeric target; ", target, " has text"));
    }
    // Rows with a target.
    std::vector<int64_t> keep;
    for (size_t i = 0; i < frame.rows(); ++i) {
      if (!CellText(*y, i).empty()) keep.push_back(static_cast<int64_t>(i));
    }
    if (keep.size() < 4) return absl::InvalidArgumentError("the table has fewer than 4 rows with a target value");
    auto t = std::unique_ptr<Tabular>(new Tabular(c.device));
    t->classification_ = kind == "classification";
    const Split split = SplitRows(static_cast<int64_t>(keep.size()), c.spec.training->val_fraction(),
                                  hp.test_fraction(), c.seed);
    auto rows_of = [&](const std::vector<int64_t>& positions) {
      std::vector<int64_t> out;
      for (int64_t p : positions) out.push_back(keep[static_cast<size_t>(p)]);
      return out;
    };
    const std::vector<int64_t> train_rows = rows_of(split.train);
    // Features, fitted on the training rows only.
    for (const datasets::Column& col : frame.columns) {
      if (col.name == target) continue;
      Encoding::Feature f{col.name, col.numeric, {}, 0};
      if (col.numeric) {
        double sum = 0;
        int64_t n = 0;
        for (int64_t r : train_rows) {
          if (!std::isnan(col.numbers[r])) sum += col.numbers[r], ++n;
        }
        f.fill = n > 0 ? sum / static_cast<double>(n) : 0;
        t->encoding_.width += 1;
      } else {
        std::map<std::string, int64_t> counts;
        for (int64_t r : train_rows) ++counts[col.texts[r]];
        std::vector<std::pair<int64_t, std::string>> ranked;
        for (auto& [k, v] : counts) ranked.push_back({-v, k});
        std::sort(ranked.begin(), ranked.end());
        for (size_t k = 0; k < ranked.size() && k < kMaxCategories; ++k) f.categories.push_back(ranked[k].second);
        t->encoding_.width += static_cast<int64_t>(f.categories.size()) + 1;
      }
      t->encoding_.features.push_back(std::move(f));
    }
    // The target.
    int64_t outputs = 1;
    if (t->classification_) {
      std::set<std::string> classes;
      for (int64_t r : keep) classes.insert(CellText(*y, static_cast<size_t>(r)));
      if (classes.size() < 2) return absl::InvalidArgumentError(absl::StrCat("target ", target, " has only one class"));
      if (classes.size() > kMaxClasses) {
        return absl::InvalidArgumentError(absl::StrCat("target ", target, " has ", classes.size(),
                                                       " classes; at most ", kMaxClasses));
      }
      t->classes_.assign(classes.begin(), classes.end());
      outputs = static_cast<int64_t>(classes.size());
    }
    // Encode every kept row.
    const int64_t n = static_cast<int64_t>(keep.size());
    std::vector<float> x(static_cast<size_t>(n * t->encoding_.width), 0.0f);
    std::vector<float> yv(static_cast<size_t>(n));
    std::vector<int64_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const size_t r = static_cast<size_t>(keep[i]);
      float* row = &x[static_cast<size_t>(i * t->encoding_.width)];
      int64_t at = 0;
      size_t fi = 0;
      for (const datasets::Column& col : frame.columns) {
        if (col.name == target) continue;
        const Encoding::Feature& f = t->encoding_.features[fi++];
        if (f.numeric) {
          row[at++] = static_cast<float>(std::isnan(col.numbers[r]) ? f.fill : col.numbers[r]);
        } else {
          auto it = std::find(f.categories.begin(), f.categories.end(), col.texts[r]);
          row[at + (it - f.categories.begin())] = 1.0f;
          at += static_cast<int64_t>(f.categories.size()) + 1;
        }
      }
      if (t->classification_) {
        const std::string label = CellText(*y, r);
        labels[i] = std::lower_bound(t->classes_.begin(), t->classes_.end(), label) - t->classes_.begin();
      } else {
        yv[i] = static_cast<float>(y->numbers[r]);
      }
    }
    t->x_ = FromMatrix(x, n, t->encoding_.width, c.device);
    t->y_ = t->classification_ ? torch::tensor(labels, torch::kLong).to(c.device) : FromMatrix(yv, n, 1, c.device);
    t->val_ = Indices(split.val, c.device);
    t->test_ = Indices(split.test, c.device);
    t->sampler_ = std::make_unique<EpochSampler>(split.train, c.seed);
    // Tabular has no activation parameter: ReLU.
    t->params_ = MlpParams{{hp.hidden_sizes().begin(), hp.hidden_sizes().end()}, "relu", hp.dropout()};
    t->model_ = std::make_shared<NormalizedMlp>(t->encoding_.width, t->params_.hidden, outputs, t->params_.activation,
                                                t->params_.dropout, !t->classification_);
    {
      torch::NoGradGuard no_grad;
      const torch::Tensor train = Indices(split.train, c.device);
      auto [m, s] = Moments(t->x_, train);
      t->model_->in_mean.copy_(m);
      t->model_->in_std.copy_(s);
      if (!t->classification_) {
        auto [ym, ys] = Moments(t->y_, train);
        t->model_->out_mean.copy_(ym);
        t->model_->out_std.copy_(ys);
      }
    }
    if (c.log) {
      c.log(absl::StrFormat("tabular %s on %s: %d rows (%d train, %d validation, %d test), %d features encoded as %d inputs%s",
                            kind, target, n, split.train.size(), split.val.size(), split.test.size(),
                            t->encoding_.features.size(), t->encoding_.width,
                            t->classification_ ? absl::StrCat(", ", t->classes_.size(), " classes") : ""));
    }
    return std::unique_ptr<Task>(std::move(t));
  }

  torch::nn::Module& module() override { return *model_; }
  std::vector<torch::Tensor> trainable() override { return model_->parameters(); }
  int64_t epoch_examples() const override { return sampler_->size(); }

  torch::Tensor Loss(int64_t step, int64_t batch_size, Metrics* metrics) override {
    const torch::Tensor idx = Indices(sampler_->Batch(step, batch_size), device_);
    const torch::Tensor out = model_->forward(x_.index_select(0, idx));
    const torch::Tensor y = y_.index_select(0, idx);
    if (classification_) {
      metrics->emplace_back("train_accuracy", out.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>());
      return torch::cross_entropy_loss(out, y);
    }
    return torch::mse_loss(out, model_->Normalize(y));
  }

  Metrics Validate() override { return Evaluate(val_, "val"); }
  Metrics Test() override { return Evaluate(test_, "test"); }

  Struct Architecture() const override {
    Struct s = MlpArchitecture(encoding_.width, params_.hidden, classification_ ? static_cast<int64_t>(classes_.size()) : 1,
                               params_.activation, params_.dropout);
    auto& f = *s.mutable_fields();
    f["task"].set_string_value(classification_ ? "classification" : "regression");
    for (const std::string& c : classes_) f["classes"].mutable_list_value()->add_values()->set_string_value(c);
    auto* features = f["features"].mutable_list_value();
    for (const Encoding::Feature& e : encoding_.features) {
      auto& ef = *features->add_values()->mutable_struct_value()->mutable_fields();
      ef["column"].set_string_value(e.column);
      if (e.numeric) {
        ef["encoding"].set_string_value("number");
        ef["fill"].set_number_value(e.fill);
      } else {
        ef["encoding"].set_string_value("one_hot");
        for (const std::string& cat : e.categories) {
          ef["categories"].mutable_list_value()->add_values()->set_string_value(cat);
        }
      }
    }
    f["normalization"].set_string_value(
        classification_ ? "logits = net((x - in_mean) / in_std)" : "y = net((x - in_mean) / in_std) * out_std + out_mean");
    return s;
  }

 private:
  explicit Tabular(torch::Device device) : device_(device) {}

  Metrics Evaluate(const torch::Tensor& rows, const std::string& prefix) {
    const int64_t n = rows.size(0);
    if (n == 0) return {};
    double loss = 0, correct = 0, sq = 0, y_sum = 0, y_sq = 0;
    InChunks(n, 8192, [&](int64_t a, int64_t b) {
      const torch::Tensor idx = rows.slice(0, a, b);
      const torch::Tensor out = model_->forward(x_.index_select(0, idx));
      const torch::Tensor y = y_.index_select(0, idx);
      if (classification_) {
        loss += torch::cross_entropy_loss(out, y, {}, torch::Reduction::Sum).item<double>();
        correct += out.argmax(1).eq(y).sum().item<double>();
      } else {
        loss += torch::mse_loss(out, model_->Normalize(y), torch::Reduction::Sum).item<double>();
        sq += (model_->Denormalize(out) - y).pow(2).sum().item<double>();
        y_sum += y.sum().item<double>();
        y_sq += y.pow(2).sum().item<double>();
      }
    });
    const double count = static_cast<double>(n);
    if (classification_) return {{prefix + "_loss", loss / count}, {prefix + "_accuracy", correct / count}};
    const double variance = y_sq / count - (y_sum / count) * (y_sum / count);
    Metrics m = {{prefix + "_loss", loss / count}, {prefix + "_rmse", std::sqrt(sq / count)}};
    if (variance > 0) m.emplace_back(prefix + "_r2", 1.0 - (sq / count) / variance);
    return m;
  }

  torch::Device device_;
  bool classification_ = false;
  Encoding encoding_;
  std::vector<std::string> classes_;
  torch::Tensor x_, y_, val_, test_;
  std::unique_ptr<EpochSampler> sampler_;
  MlpParams params_;
  std::shared_ptr<NormalizedMlp> model_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Task>> MakeMlpPolicy(const Context& c) {
  const auto& hp = std::get<recipes::MlpPolicyParams>(c.spec.params);
  auto source = datasets::Resolve(c.spec.dataset, c.datasets);
  if (!source.ok()) return source.status();
  auto data = source->synthetic() ? datasets::SyntheticDemonstrations(*source)
                                  : datasets::ReadDemonstrations(source->path);
  if (!data.ok()) return data.status();
  const Split split = SplitRows(data->obs.rows, c.spec.training->val_fraction(), 0, c.seed);
  if (c.log) {
    c.log(absl::StrFormat("demonstrations: %d rows (%d train, %d validation), %d observation and %d action dims",
                          data->obs.rows, split.train.size(), split.val.size(), data->obs.cols, data->act.cols));
  }
  const MlpParams params{
      {hp.hidden_sizes().begin(), hp.hidden_sizes().end()}, hp.activation(), hp.dropout()};
  return std::unique_ptr<Task>(new MlpPolicy(c, std::move(*data), params, split));
}

absl::StatusOr<std::unique_ptr<Task>> MakeTabular(const Context& c) { return Tabular::Make(c); }

}  // namespace trainmesh::training
