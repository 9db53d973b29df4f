// lora-lm: a small decoder-only transformer over bytes. Without a base job it
// trains every weight from scratch; with base_job it loads that job's model,
// freezes it, and trains LoRA adapters (W + (alpha/r)·B·A) on the query and
// value projections of every attention layer.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/datasets/frames.h"
#include "libs/recipes/manifest.h"
#include "libs/recipes/recipes.h"
#include "libs/training/task.h"

namespace trainmesh::training {
namespace {

using google::protobuf::Struct;

constexpr int64_t kVocab = 256;  // bytes

struct LmShape {
  int64_t context = 0, d_model = 0, layers = 0, heads = 0;
  int64_t lora_rank = 0;  // 0: no adapters
  double lora_alpha = 0, lora_dropout = 0;
  double lora_scale() const { return lora_rank > 0 ? lora_alpha / static_cast<double>(lora_rank) : 0; }
};

// A linear layer whose weight may carry a low-rank adapter.
struct LoraLinearImpl : torch::nn::Module {
  LoraLinearImpl(int64_t in, int64_t out, const LmShape& shape) : scale(shape.lora_scale()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    weight = register_parameter("weight", torch::empty({out, in}).uniform_(-bound, bound));
    bias = register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
    if (shape.lora_rank > 0) {
      lora_A = register_parameter("lora_A", torch::empty({shape.lora_rank, in}).uniform_(-bound, bound));
      lora_B = register_parameter("lora_B", torch::zeros({out, shape.lora_rank}));
      dropout = register_module("lora_dropout", torch::nn::Dropout(shape.lora_dropout));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::linear(x, weight, bias);
    if (lora_A.defined()) {
      // Dropout(0) still draws a mask in training: skip it when off.
      const torch::Tensor in = dropout->options.p() > 0 ? dropout->forward(x) : x;
      y = y + torch::linear(torch::linear(in, lora_A), lora_B) * scale;
    }
    return y;
  }
  torch::Tensor weight, bias, lora_A, lora_B;
  torch::nn::Dropout dropout{nullptr};
  double scale;
};
TORCH_MODULE(LoraLinear);

struct BlockImpl : torch::nn::Module {
  BlockImpl(const LmShape& s) : heads(s.heads) {
    LmShape plain = s;
    plain.lora_rank = 0;
    ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.d_model})));
    q = register_module("q", LoraLinear(s.d_model, s.d_model, s));
    k = register_module("k", LoraLinear(s.d_model, s.d_model, plain));
    v = register_module("v", LoraLinear(s.d_model, s.d_model, s));
    o = register_module("o", LoraLinear(s.d_model, s.d_model, plain));
    ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.d_model})));
    fc1 = register_module("fc1", torch::nn::Linear(s.d_model, 4 * s.d_model));
    fc2 = register_module("fc2", torch::nn::Linear(4 * s.d_model, s.d_model));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2), hd = C / heads;
    const torch::Tensor h = ln1->forward(x);
    auto split = [&](const torch::Tensor& t) { return t.view({B, T, heads, hd}).transpose(1, 2); };
    const torch::Tensor qh = split(q->forward(h)), kh = split(k->forward(h)), vh = split(v->forward(h));
    torch::Tensor att = torch::matmul(qh, kh.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hd)));
    att = torch::softmax(att.masked_fill(mask, -std::numeric_limits<float>::infinity()), -1);
    const torch::Tensor y = torch::matmul(att, vh).transpose(1, 2).contiguous().view({B, T, C});
    const torch::Tensor x2 = x + o->forward(y);
    return x2 + fc2->forward(torch::gelu(fc1->forward(ln2->forward(x2))));
  }
  int64_t heads;
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  LoraLinear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Block);

struct LmImpl : torch::nn::Module {
  explicit LmImpl(const LmShape& s) {
    tok = register_module("tok", torch::nn::Embedding(kVocab, s.d_model));
    pos = register_module("pos", torch::nn::Embedding(s.context, s.d_model));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < s.layers; ++i) blocks->push_back(Block(s));
    ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.d_model})));
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(s.d_model, kVocab).bias(false)));
  }
  // Logits [B, T, 256] for byte ids [B, T].
  torch::Tensor forward(const torch::Tensor& idx) {
    const int64_t T = idx.size(1);
    if (!mask.defined() || mask.size(0) != T || mask.device() != idx.device()) {
      mask = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(idx.device())).triu(1);
    }
    torch::Tensor x = tok->forward(idx) + pos->forward(torch::arange(T, idx.options()));
    for (const auto& block : *blocks) x = block->as<Block>()->forward(x, mask);
    return head->forward(ln_f->forward(x));
  }
  torch::nn::Embedding tok{nullptr}, pos{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  torch::nn::Linear head{nullptr};
  torch::Tensor mask;  // causal, not a parameter
};
TORCH_MODULE(Lm);

bool IsLora(const std::string& name) { return name.find("lora_") != std::string::npos; }

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The base model of a fine-tune: its shape (from model.json) and weights.
struct Base {
  LmShape shape;
  std::map<std::string, torch::Tensor> weights;
};

absl::StatusOr<Base> LoadBase(const Context& c, const std::string& base_job) {
  auto not_usable = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("base_job ", base_job, " ", why));
  };
  auto meta_path = c.store->Path(base_job, "model.json");
  if (!meta_path.ok()) return not_usable("has no model: it must be a COMPLETED lora-lm job");
  auto text = ReadFile(*meta_path);
  if (!text.ok()) return text.status();
  auto manifest = recipes::ParseManifest(*text);
  if (!manifest.ok()) return not_usable("has an unreadable model.json");
  if (manifest->owner != c.job.owner()) {
    return absl::PermissionDeniedError(absl::StrCat("base_job ", base_job, " belongs to another user"));
  }
  if (manifest->recipe != recipes::kLoraLm) {
    return not_usable(absl::StrCat("is a ", manifest->recipe, " job, not lora-lm"));
  }
  // The shape the base was trained with (Architecture() below wrote it).
  const auto& arch = manifest->architecture.fields();
  auto number = [](const google::protobuf::Map<std::string, google::protobuf::Value>& f, const char* k) {
    auto it = f.find(k);
    return it == f.end() ? 0.0 : std::clamp(it->second.number_value(), 0.0, 1e9);
  };
  Base base;
  base.shape.context = static_cast<int64_t>(number(arch, "context_length"));
  base.shape.d_model = static_cast<int64_t>(number(arch, "d_model"));
  base.shape.layers = static_cast<int64_t>(number(arch, "n_layers"));
  base.shape.heads = static_cast<int64_t>(number(arch, "n_heads"));
  if (auto lora = arch.find("lora"); lora != arch.end()) {
    base.shape.lora_rank = static_cast<int64_t>(number(lora->second.struct_value().fields(), "rank"));
    base.shape.lora_alpha = number(lora->second.struct_value().fields(), "alpha");
  }
  if (base.shape.context <= 0 || base.shape.d_model <= 0 || base.shape.layers <= 0 || base.shape.heads <= 0) {
    return not_usable("has no transformer architecture in its model.json");
  }
  auto weights_path = c.store->Path(base_job, "model.pt");
  if (!weights_path.ok()) return not_usable("has no model.pt");
  auto bytes = ReadFile(*weights_path);
  if (!bytes.ok()) return bytes.status();
  const c10::IValue value = torch::pickle_load(std::vector<char>(bytes->begin(), bytes->end()));
  if (!value.isGenericDict()) return not_usable("has an unreadable model.pt");
  for (const auto& entry : value.toGenericDict()) {
    if (entry.key().isString() && entry.value().isTensor()) {
      base.weights[entry.key().toStringRef()] = entry.value().toTensor();
    }
  }
  return base;
}

class LoraLm : public Task {
 public:
  static absl::StatusOr<std::unique_ptr<Task>> Make(const Context& c) {
    const auto& hp = std::get<recipes::LoraLmParams>(c.spec.params);
    LmShape shape;
    shape.context = hp.context_length();
    shape.d_model = hp.d_model();
    shape.layers = hp.n_layers();
    shape.heads = hp.n_heads();
    const std::string& base_job = hp.base_job();
    std::optional<Base> base;
    if (!base_job.empty()) {
      auto loaded = LoadBase(c, base_job);
      if (!loaded.ok()) return loaded.status();
      base = std::move(*loaded);
      if (base->shape.context != shape.context || base->shape.d_model != shape.d_model ||
          base->shape.layers != shape.layers || base->shape.heads != shape.heads) {
        if (c.log) {
          c.log(absl::StrFormat("using the base model's shape: context %d, d_model %d, %d layers, %d heads",
                                base->shape.context, base->shape.d_model, base->shape.layers, base->shape.heads));
        }
      }
      shape.context = base->shape.context;
      shape.d_model = base->shape.d_model;
      shape.layers = base->shape.layers;
      shape.heads = base->shape.heads;
      shape.lora_rank = hp.lora_rank();
      shape.lora_alpha = hp.lora_alpha();
      shape.lora_dropout = hp.lora_dropout();
    }
    if (shape.d_model % shape.heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat("n_heads (", shape.heads, ") must divide d_model (", shape.d_model, ")"));
    }
    // The text.
    auto source = datasets::Resolve(c.spec.dataset, c.datasets);
    if (!source.ok()) return source.status();
    auto text = source->synthetic() ? datasets::SyntheticText(*source) : datasets::ReadText(source->path, int64_t{1} << 30);
    if (!text.ok()) return text.status();
    const int64_t n = static_cast<int64_t>(text->size());
    const double val_fraction = c.spec.training->val_fraction();
    const int64_t n_val = val_fraction > 0 ? std::max<int64_t>(shape.context + 1, static_cast<int64_t>(n * val_fraction)) : 0;
    const int64_t n_train = n - n_val;
    if (n_train < shape.context + 1) {
      return absl::InvalidArgumentError(absl::StrCat("the text has ", n, " bytes: too short for context_length ",
                                                     shape.context, " with a validation split"));
    }
    auto t = std::unique_ptr<LoraLm>(new LoraLm(c.device, shape, c.seed));
    t->base_job_ = base_job;
    t->grad_clip_ = hp.grad_clip();
    t->warmup_ = hp.warmup_steps();
    std::vector<uint8_t> bytes(text->begin(), text->end());
    t->data_ = torch::from_blob(bytes.data(), {n}, torch::kUInt8).to(torch::kLong).to(c.device);
    t->n_train_ = n_train;
    t->n_val_ = n_val;
    if (base.has_value()) {
      if (auto s = t->AdoptBase(*base); !s.ok()) return s;
    }
    if (c.log) {
      c.log(absl::StrFormat("text: %d bytes (%d train, %d validation); %s", n, n_train, n_val,
                            base.has_value() ? absl::StrCat("fine-tuning ", base_job, " with LoRA rank ", shape.lora_rank,
                                                            " on the query and value projections")
                                             : "training a base model from scratch"));
    }
    return std::unique_ptr<Task>(std::move(t));
  }

  torch::nn::Module& module() override { return *model_; }
  std::vector<torch::Tensor> trainable() override {
    std::vector<torch::Tensor> out;
    for (const auto& p : model_->named_parameters(true)) {
      if (!base_job_.empty() ? IsLora(p.key()) : true) out.push_back(p.value());
    }
    return out;
  }
  int64_t epoch_examples() const override { return std::max<int64_t>(1, n_train_ / shape_.context); }
  int64_t units_per_example() const override { return shape_.context; }
  std::string unit() const override { return "tokens"; }
  double grad_clip() const override { return grad_clip_; }

  double LearningRateScale(int64_t step, int64_t total) const override {
    if (warmup_ > 0 && step < warmup_) return static_cast<double>(step + 1) / static_cast<double>(warmup_);
    const double span = std::max<double>(1.0, static_cast<double>(total - warmup_));
    const double progress = std::min(1.0, static_cast<double>(step - warmup_) / span);
    return 0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * progress));  // cosine to 10 %
  }

  torch::Tensor Loss(int64_t step, int64_t batch_size, Metrics* metrics) override {
    std::mt19937_64 rng(MixSeed(seed_, 5000 + static_cast<uint64_t>(step)));
    std::uniform_int_distribution<int64_t> pick(0, n_train_ - shape_.context - 1);
    std::vector<int64_t> starts(static_cast<size_t>(batch_size));
    for (auto& s : starts) s = pick(rng);
    return WindowLoss(starts);
  }

  Metrics Validate() override {
    if (n_val_ == 0) return {};
    // Up to 64 evenly spaced windows of the held-out tail.
    const int64_t room = n_val_ - shape_.context - 1;
    const int64_t windows = std::min<int64_t>(64, room / std::max<int64_t>(1, shape_.context / 2) + 1);
    std::vector<int64_t> starts;
    for (int64_t i = 0; i < windows; ++i) starts.push_back(n_train_ + (windows > 1 ? room * i / (windows - 1) : 0));
    double total = 0;
    for (size_t a = 0; a < starts.size(); a += 16) {
      std::vector<int64_t> chunk(starts.begin() + a, starts.begin() + std::min(starts.size(), a + 16));
      total += WindowLoss(chunk).item<double>() * static_cast<double>(chunk.size());
    }
    const double loss = total / static_cast<double>(starts.size());
    return {{"val_loss", loss}, {"val_perplexity", std::exp(loss)}, {"val_bits_per_byte", loss / std::log(2.0)}};
  }

  Struct Architecture() const override {
    Struct s;
    auto& f = *s.mutable_fields();
    f["type"].set_string_value("causal-transformer");
    f["tokenizer"].set_string_value("bytes");
    f["vocab_size"].set_number_value(kVocab);
    f["context_length"].set_number_value(static_cast<double>(shape_.context));
    f["d_model"].set_number_value(static_cast<double>(shape_.d_model));
    f["n_layers"].set_number_value(static_cast<double>(shape_.layers));
    f["n_heads"].set_number_value(static_cast<double>(shape_.heads));
    f["mlp_ratio"].set_number_value(4);
    if (shape_.lora_rank > 0) {
      auto& lora = *f["lora"].mutable_struct_value()->mutable_fields();
      lora["rank"].set_number_value(static_cast<double>(shape_.lora_rank));
      lora["alpha"].set_number_value(shape_.lora_alpha);
      lora["targets"].mutable_list_value()->add_values()->set_string_value("q");
      lora["targets"].mutable_list_value()->add_values()->set_string_value("v");
      lora["merge"].set_string_value("weight + (alpha / rank) * lora_B @ lora_A");
      f["base_job"].set_string_value(base_job_);
    }
    return s;
  }

 private:
  LoraLm(torch::Device device, const LmShape& shape, uint64_t seed)
      : device_(device), shape_(shape), seed_(seed), model_(shape) {}

  torch::Tensor WindowLoss(const std::vector<int64_t>& starts) {
    const int64_t B = static_cast<int64_t>(starts.size()), T = shape_.context;
    const torch::Tensor offsets = torch::tensor(starts, torch::kLong).to(device_).view({B, 1}) +
                                  torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(device_)).view({1, T});
    const torch::Tensor x = data_.index_select(0, offsets.view(-1)).view({B, T});
    const torch::Tensor y = data_.index_select(0, (offsets + 1).view(-1)).view({B, T});
    const torch::Tensor logits = model_->forward(x);
    return torch::cross_entropy_loss(logits.view({B * T, kVocab}), y.view(-1));
  }

  // Copies the base weights in (merging a base's own adapters), freezes them.
  absl::Status AdoptBase(const Base& base) {
    torch::NoGradGuard no_grad;
    auto get = [&](const std::string& key) -> std::optional<torch::Tensor> {
      auto it = base.weights.find(key);
      if (it == base.weights.end()) return std::nullopt;
      return it->second;
    };
    for (auto& p : model_->named_parameters(true)) {
      if (IsLora(p.key())) continue;
      auto w = get(p.key());
      if (!w.has_value() || w->sizes() != p.value().sizes()) {
        return absl::InvalidArgumentError(absl::StrCat("base_job ", base_job_, " has no weight ", p.key(),
                                                       " of the expected shape"));
      }
      torch::Tensor merged = w->to(torch::kFloat32);
      const std::string prefix = p.key().substr(0, p.key().rfind('.') + 1);
      if (base.shape.lora_rank > 0 && p.key().size() > 7 && p.key().substr(p.key().size() - 7) == ".weight") {
        auto a = get(prefix + "lora_A"), b = get(prefix + "lora_B");
        if (a.has_value() && b.has_value()) merged = merged + base.shape.lora_scale() * torch::matmul(*b, *a);
      }
      p.value().copy_(merged.to(device_));
      p.value().set_requires_grad(false);
    }
    return absl::OkStatus();
  }

  torch::Device device_;
  LmShape shape_;
  uint64_t seed_;
  Lm model_;
  std::string base_job_;
  double grad_clip_ = 1.0;
  int64_t warmup_ = 0;
  torch::Tensor data_;
  int64_t n_train_ = 0, n_val_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Task>> MakeLoraLm(const Context& c) { return LoraLm::Make(c); }

}  // namespace trainmesh::training
