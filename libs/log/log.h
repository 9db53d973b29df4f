// Structured logging: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-25T07:30:00.123456Z","level":"info","service":"jobs",
//    "msg":"job created","job_id":"…","owner":"alice"}
// Usage: TM_LOG(Info, "job created").With("job_id", id).With("owner", owner);
// The line is written when the statement ends; --log_level (debug, info,
// warning, error) filters.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace trainmesh::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Names the service in every line and logs from `min_level` on: debug, info,
// warning or error (anything else: info).
void Init(absl::string_view service, absl::string_view min_level = "info");

// Replaces stderr as the destination (tests). Pass nullptr to restore.
void SetSinkForTesting(std::function<void(absl::string_view line)> sink);

bool Enabled(Level level);

class Entry {
 public:
  Entry(Level level, absl::string_view msg);
  ~Entry();
  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;

  Entry& With(absl::string_view key, absl::string_view value);
  Entry& With(absl::string_view key, const char* value) {
    return With(key, absl::string_view(value == nullptr ? "" : value));
  }
  Entry& With(absl::string_view key, const std::string& value) {
    return With(key, absl::string_view(value));
  }
  Entry& With(absl::string_view key, const absl::Status& status);
  Entry& With(absl::string_view key, bool value);
  Entry& With(absl::string_view key, double value);
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T> &&
                                                    !std::is_same_v<T, bool>>>
  Entry& With(absl::string_view key, T value) {
    return WithInt(key, static_cast<int64_t>(value));
  }

 private:
  Entry& WithInt(absl::string_view key, int64_t value);
  void AppendKey(absl::string_view key);

  bool enabled_;
  std::string line_;
};

}  // namespace trainmesh::log

#define TM_LOG(level, msg) ::trainmesh::log::Entry(::trainmesh::log::Level::k##level, msg)
