// The JSON-lines metric protocol (the Trainable seed's `log()`): a training
// script prints, one per line,
//   {"step": 3, "metrics": {"train_loss": 0.5, "acc": 0.9}, "run": "xgb"}
//   {"chart": {"title": "Loss", "metrics": ["train_loss", "val_loss"], "type": "line"}}
// and everything else it prints is a log line. Parsing never fails: a
// malformed line is a log line. NaN and ±Infinity are accepted as Python's
// json.dumps writes them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"

namespace trainmesh::lineproto {

struct MetricLine {
  int64_t step = 0;
  std::vector<std::pair<std::string, double>> metrics;  // in the order written
  std::string run;
};

struct ChartLine {
  std::string title;
  std::vector<std::string> metrics;
  std::string type = "line";  // "line", "scatter" or "bar"
};

struct LogLine {
  std::string text;
};

using Line = std::variant<MetricLine, ChartLine, LogLine>;

inline constexpr size_t kMaxLineBytes = 1 << 20;
inline constexpr size_t kMaxNameBytes = 200;

Line ParseLine(absl::string_view line);

}  // namespace trainmesh::lineproto
