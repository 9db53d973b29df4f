#include "libs/telemetry/metrics.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace trainmesh::telemetry {
namespace {

void AtomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

void EscapeInto(std::string* out, absl::string_view value) {
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

std::vector<std::pair<std::string, std::string>> Zip(const std::vector<std::string>& names,
                                                     const LabelValues& values) {
  std::vector<std::pair<std::string, std::string>> labels;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) labels.emplace_back(names[i], values[i]);
  return labels;
}

// CPU, memory, open files and start time of this process, under the names
// every Prometheus client library uses.
void CollectProcess(Exposition& out) {
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the parenthesised command name (which may hold spaces).
  const size_t close = line.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> f = absl::StrSplit(line.substr(close + 2), ' ');
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, rss 24.
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    double utime = 0, stime = 0, start = 0, rss = 0, vsize = 0;
    if (f.size() > 21 && absl::SimpleAtod(f[11], &utime) && absl::SimpleAtod(f[12], &stime) &&
        absl::SimpleAtod(f[19], &start) && absl::SimpleAtod(f[20], &vsize) && absl::SimpleAtod(f[21], &rss)) {
      out.Family("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", "counter");
      out.Sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
      out.Family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge");
      out.Sample("process_resident_memory_bytes", {}, rss * page);
      out.Family("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge");
      out.Sample("process_virtual_memory_bytes", {}, vsize);
      std::ifstream uptime_file("/proc/stat");
      std::string key;
      double boot = 0;
      while (uptime_file >> key) {
        if (key == "btime") {
          uptime_file >> boot;
          break;
        }
      }
      if (boot > 0) {
        out.Family("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
                   "gauge");
        out.Sample("process_start_time_seconds", {}, boot + start / ticks);
      }
    }
  }
  std::error_code ec;
  int64_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  out.Family("process_open_fds", "Open file descriptors.", "gauge");
  out.Sample("process_open_fds", {}, static_cast<double>(fds));
}

}  // namespace

void Counter::Add(double delta) { AtomicAdd(value_, delta); }

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  // The +Inf bucket equals the count, so a scrape never shows a bucket above it.
  s.count = running + buckets_[bounds_.size()].load(std::memory_order_relaxed);
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

const std::vector<double>& LatencyBuckets() {
  static const auto* buckets =
      new std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // The shortest form that reads back as the same double.
  for (int precision = 15; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

void Exposition::Family(absl::string_view name, absl::string_view help, absl::string_view type) {
  absl::StrAppend(&text_, "# HELP ", name, " ");
  for (char c : help) {
    if (c == '\\') {
      text_ += "\\\\";
    } else if (c == '\n') {
      text_ += "\\n";
    } else {
      text_ += c;
    }
  }
  absl::StrAppend(&text_, "\n# TYPE ", name, " ", type, "\n");
}

void Exposition::Sample(absl::string_view name, const std::vector<std::pair<std::string, std::string>>& labels,
                        double value) {
  text_.append(name.data(), name.size());
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      absl::StrAppend(&text_, labels[i].first, "=\"");
      EscapeInto(&text_, labels[i].second);
      text_ += '"';
    }
    text_ += '}';
  }
  absl::StrAppend(&text_, " ", FormatValue(value), "\n");
}

Registry& Registry::Default() {
  static Registry* registry = new Registry();
  // Lives as long as the process (reachable, so no leak is reported).
  static Registration* process = new Registration(registry->AddCollector(CollectProcess));
  (void)process;
  return *registry;
}

Registry::Entry& Registry::Add(const std::string& name, const std::string& help, const std::string& type) {
  Entry& entry = families_[name];
  if (entry.type.empty()) {
    entry.help = help;
    entry.type = type;
  } else if (entry.type != type) {
    std::abort();  // one name, two kinds: a programming error
  }
  return entry;
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Entry& entry = Add(name, help, "counter");
  if (entry.counter == nullptr) {
    entry.counter = std::make_unique<Family<Counter>>(std::move(label_names),
                                                      [] { return std::make_unique<Counter>(); });
  }
  return *entry.counter;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Entry& entry = Add(name, help, "gauge");
  if (entry.gauge == nullptr) {
    entry.gauge = std::make_unique<Family<Gauge>>(std::move(label_names), [] { return std::make_unique<Gauge>(); });
  }
  return *entry.gauge;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names, std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  Entry& entry = Add(name, help, "histogram");
  if (entry.histogram == nullptr) {
    entry.histogram = std::make_unique<Family<Histogram>>(
        std::move(label_names), [bounds] { return std::make_unique<Histogram>(bounds); });
  }
  return *entry.histogram;
}

Registry::Registration& Registry::Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    Reset();
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

void Registry::Registration::Reset() {
  if (registry_ == nullptr) return;
  // Under the collectors' lock: a scrape running this collector finishes first.
  absl::MutexLock lock(&registry_->collect_mu_);
  registry_->collectors_.erase(id_);
  registry_ = nullptr;
}

Registry::Registration Registry::AddCollector(Collector collect) {
  absl::MutexLock lock(&collect_mu_);
  const int64_t id = next_collector_++;
  collectors_.emplace(id, std::move(collect));
  return Registration(this, id);
}

std::string Registry::Render() const {
  Exposition out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, entry] : families_) {
      out.Family(name, entry.help, entry.type);
      if (entry.counter != nullptr) {
        entry.counter->ForEach([&, &name = name, &names = entry.counter->label_names()](
                                   const LabelValues& values, const Counter& c) {
          out.Sample(name, Zip(names, values), c.value());
        });
      } else if (entry.gauge != nullptr) {
        entry.gauge->ForEach([&, &name = name, &names = entry.gauge->label_names()](
                                 const LabelValues& values, const Gauge& g) {
          out.Sample(name, Zip(names, values), g.value());
        });
      } else if (entry.histogram != nullptr) {
        const std::vector<std::string>& names = entry.histogram->label_names();
        entry.histogram->ForEach([&, &name = name](const LabelValues& values, const Histogram& h) {
          const Histogram::Snapshot s = h.snapshot();
          auto labels = Zip(names, values);
          const std::string bucket = name + "_bucket";
          for (size_t i = 0; i < s.bounds.size(); ++i) {
            auto with_le = labels;
            with_le.emplace_back("le", FormatValue(s.bounds[i]));
            out.Sample(bucket, with_le, static_cast<double>(s.cumulative[i]));
          }
          auto inf = labels;
          inf.emplace_back("le", "+Inf");
          out.Sample(bucket, inf, static_cast<double>(s.count));
          out.Sample(name + "_sum", labels, s.sum);
          out.Sample(name + "_count", labels, static_cast<double>(s.count));
        });
      }
    }
  }
  absl::MutexLock lock(&collect_mu_);
  for (const auto& [id, collect] : collectors_) collect(out);
  return out.text();
}

std::map<std::string, double> ParseExposition(absl::string_view text) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    const absl::string_view value = line.substr(space + 1);
    double parsed = 0;
    if (value == "+Inf") {
      parsed = std::numeric_limits<double>::infinity();
    } else if (value == "-Inf") {
      parsed = -std::numeric_limits<double>::infinity();
    } else if (value == "NaN") {
      parsed = std::numeric_limits<double>::quiet_NaN();
    } else if (!absl::SimpleAtod(value, &parsed)) {
      continue;
    }
    samples[std::string(line.substr(0, space))] = parsed;
  }
  return samples;
}

}  // namespace trainmesh::telemetry
