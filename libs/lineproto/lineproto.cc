#include "libs/lineproto/lineproto.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "libs/json/json.h"

namespace trainmesh::lineproto {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr size_t kMaxLogBytes = 64 << 10;

LogLine AsLog(absl::string_view line) {
  // Keep what a terminal would show; drop the trailing newline.
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.size() > kMaxLogBytes) line = line.substr(0, kMaxLogBytes);
  return LogLine{std::string(line)};
}

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= kMaxNameBytes;
}

}  // namespace

Line ParseLine(absl::string_view line) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(line);
  if (trimmed.empty() || trimmed.front() != '{' || trimmed.size() > kMaxLineBytes) {
    return AsLog(line);
  }
  Struct s;
  if (!json::ToStruct(trimmed, &s, {.allow_nonfinite = true}).ok()) return AsLog(line);
  const auto& f = s.fields();
  if (auto chart = f.find("chart"); chart != f.end() && f.size() == 1) {
    if (!chart->second.has_struct_value()) return AsLog(line);
    const auto& c = chart->second.struct_value().fields();
    ChartLine out;
    auto title = c.find("title");
    auto metrics = c.find("metrics");
    if (title == c.end() || !title->second.has_string_value() || metrics == c.end() ||
        !metrics->second.has_list_value()) {
      return AsLog(line);
    }
    out.title = title->second.string_value();
    if (!ValidName(out.title)) return AsLog(line);
    for (const Value& m : metrics->second.list_value().values()) {
      if (!m.has_string_value() || !ValidName(m.string_value())) return AsLog(line);
      out.metrics.push_back(m.string_value());
    }
    if (auto type = c.find("type"); type != c.end()) {
      if (!type->second.has_string_value()) return AsLog(line);
      out.type = type->second.string_value();
      if (out.type != "line" && out.type != "scatter" && out.type != "bar") return AsLog(line);
    }
    return out;
  }
  auto step = f.find("step");
  auto metrics = f.find("metrics");
  if (step == f.end() || metrics == f.end() || !step->second.has_number_value() ||
      !metrics->second.has_struct_value()) {
    return AsLog(line);
  }
  const double raw_step = step->second.number_value();
  if (!std::isfinite(raw_step) || raw_step < 0 || raw_step > 9.0e15 ||
      raw_step != std::floor(raw_step)) {
    return AsLog(line);
  }
  MetricLine out;
  out.step = static_cast<int64_t>(raw_step);
  if (auto run = f.find("run"); run != f.end()) {
    if (!run->second.has_string_value() || run->second.string_value().size() > kMaxNameBytes) {
      return AsLog(line);
    }
    out.run = run->second.string_value();
  }
  for (const auto& [name, value] : metrics->second.struct_value().fields()) {
    if (!ValidName(name) || !value.has_number_value()) return AsLog(line);
    out.metrics.emplace_back(name, value.number_value());
  }
  if (out.metrics.empty()) return AsLog(line);
  // Struct fields have no order; report names sorted, the same every time.
  std::sort(out.metrics.begin(), out.metrics.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

}  // namespace trainmesh::lineproto
