// Prometheus metrics: counters, gauges and histograms with labels, kept in a
// registry and rendered in the text exposition format (version 0.0.4) for a
// /metrics endpoint. Values that live elsewhere (a count in the database, the
// subscribers of a hub) come from collectors run at scrape time.
//
//   telemetry::Registry& r = telemetry::Registry::Default();
//   auto& ingested = r.AddCounter("trainmesh_metric_points_ingested_total",
//                                 "Metric points stored.", {});
//   ingested.With({}).Add(batch.size());
//
// Thread-safe. A family's children (one per label-value tuple) live as long
// as the registry, so a reference from With() may be kept.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace trainmesh::telemetry {

// Label values, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

class Counter {
 public:
  void Add(double delta = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending (+Inf is implied).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the +Inf one)
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Request latencies in seconds, 1 ms to 30 s.
const std::vector<double>& LatencyBuckets();

// The text being written for one scrape.
class Exposition {
 public:
  // Starts a family: its # HELP and # TYPE lines (type: counter, gauge,
  // histogram, untyped).
  void Family(absl::string_view name, absl::string_view help, absl::string_view type);
  // One sample line; labels as (name, value) pairs, values escaped here.
  void Sample(absl::string_view name, const std::vector<std::pair<std::string, std::string>>& labels,
              double value);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// Formats a sample value: integers exactly, others with full precision,
// +Inf/-Inf/NaN as Prometheus spells them.
std::string FormatValue(double value);

template <typename T>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<T>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  // The child for these label values (as many as the family has names),
  // created at first use.
  T& With(const LabelValues& values) {
    absl::MutexLock lock(&mu_);
    std::unique_ptr<T>& child = children_[values];
    if (child == nullptr) child = make_();
    return *child;
  }

  const std::vector<std::string>& label_names() const { return label_names_; }

  // Calls `f(values, child)` for each child, in label order.
  void ForEach(const std::function<void(const LabelValues&, const T&)>& f) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [values, child] : children_) f(values, *child);
  }

 private:
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<T>()> make_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process's registry: what a service binary's /metrics shows. It
  // starts with the process collector (CPU, memory, open files, start time).
  static Registry& Default();

  // Adds a family, or returns the one of that name added before (the same
  // kind and label names are expected).
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names);
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names);
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names,
                                  std::vector<double> bounds = LatencyBuckets());

  using Collector = std::function<void(Exposition&)>;
  // Removes its collector when destroyed (or reset).
  class Registration {
   public:
    Registration() = default;
    Registration(Registry* registry, int64_t id) : registry_(registry), id_(id) {}
    Registration(Registration&& other) noexcept { *this = std::move(other); }
    Registration& operator=(Registration&& other) noexcept;
    ~Registration() { Reset(); }
    void Reset();

   private:
    Registry* registry_ = nullptr;
    int64_t id_ = 0;
  };
  // `collect` writes families of its own at every scrape (after the
  // registry's); it may be slow (a database query) but must not block
  // forever. Runs while the returned registration lives.
  [[nodiscard]] Registration AddCollector(Collector collect);

  // The text exposition of every family and collector.
  std::string Render() const;

 private:
  struct Entry {
    std::string help;
    std::string type;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Entry& Add(const std::string& name, const std::string& help, const std::string& type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Entry> families_ ABSL_GUARDED_BY(mu_);
  // Held while collectors run, so a registration's end waits for a scrape.
  mutable absl::Mutex collect_mu_;
  std::map<int64_t, Collector> collectors_ ABSL_GUARDED_BY(collect_mu_);
  int64_t next_collector_ ABSL_GUARDED_BY(collect_mu_) = 1;
};

// Parses a text exposition into "name{labels}" → value, labels as rendered
// (tests and tools read scrapes with it). Comments are skipped.
std::map<std::string, double> ParseExposition(absl::string_view text);

}  // namespace trainmesh::telemetry
