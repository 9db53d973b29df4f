#include "libs/log/log.h"

#include <atomic>
#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/json/json.h"

namespace trainmesh::log {
namespace {

struct State {
  absl::Mutex mu;
  std::string service ABSL_GUARDED_BY(mu) = "trainmesh";
  std::function<void(absl::string_view)> sink ABSL_GUARDED_BY(mu);
};

State& GetState() {
  static auto* state = new State;
  return *state;
}

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarning: return "warning";
    case Level::kError: return "error";
  }
  return "info";
}

}  // namespace

void Init(absl::string_view service, absl::string_view min_level_name) {
  State& state = GetState();
  {
    absl::MutexLock lock(&state.mu);
    state.service = std::string(service);
  }
  const std::string level = absl::AsciiStrToLower(min_level_name);
  Level parsed = Level::kInfo;
  if (level == "debug") parsed = Level::kDebug;
  if (level == "warning" || level == "warn") parsed = Level::kWarning;
  if (level == "error") parsed = Level::kError;
  min_level.store(static_cast<int>(parsed));
}

void SetSinkForTesting(std::function<void(absl::string_view)> sink) {
  State& state = GetState();
  absl::MutexLock lock(&state.mu);
  state.sink = std::move(sink);
}

bool Enabled(Level level) { return static_cast<int>(level) >= min_level.load(); }

Entry::Entry(Level level, absl::string_view msg) : enabled_(Enabled(level)) {
  if (!enabled_) return;
  line_.reserve(256);
  std::string service;
  {
    State& state = GetState();
    absl::MutexLock lock(&state.mu);
    service = state.service;
  }
  line_.append("{\"ts\":\"");
  line_.append(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()));
  line_.append("\",\"level\":\"");
  line_.append(LevelName(level));
  line_.append("\",\"service\":");
  json::AppendString(&line_, service);
  line_.append(",\"msg\":");
  json::AppendString(&line_, msg);
}

void Entry::AppendKey(absl::string_view key) {
  line_.push_back(',');
  json::AppendString(&line_, key);
  line_.push_back(':');
}

Entry& Entry::With(absl::string_view key, absl::string_view value) {
  if (!enabled_) return *this;
  AppendKey(key);
  json::AppendString(&line_, value);
  return *this;
}

Entry& Entry::With(absl::string_view key, const absl::Status& status) {
  return With(key, absl::string_view(status.ToString()));
}

Entry& Entry::With(absl::string_view key, bool value) {
  if (!enabled_) return *this;
  AppendKey(key);
  line_.append(value ? "true" : "false");
  return *this;
}

Entry& Entry::With(absl::string_view key, double value) {
  if (!enabled_) return *this;
  AppendKey(key);
  if (std::isfinite(value)) {
    absl::StrAppend(&line_, value);
  } else {
    // JSON has no NaN/Inf literals.
    json::AppendString(&line_, std::isnan(value) ? "NaN" : (value > 0 ? "Infinity" : "-Infinity"));
  }
  return *this;
}

Entry& Entry::WithInt(absl::string_view key, int64_t value) {
  if (!enabled_) return *this;
  AppendKey(key);
  absl::StrAppend(&line_, value);
  return *this;
}

Entry::~Entry() {
  if (!enabled_) return;
  line_.append("}\n");
  State& state = GetState();
  absl::MutexLock lock(&state.mu);
  if (state.sink) {
    state.sink(line_);
    return;
  }
  std::fwrite(line_.data(), 1, line_.size(), stderr);
}

}  // namespace trainmesh::log
