#include "tools/cli/sweep.h"

#include <cmath>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace trainmesh::cli {
namespace {

// Splits at commas outside brackets, braces and double quotes.
absl::StatusOr<std::vector<std::string>> SplitTopLevel(absl::string_view text) {
  std::vector<std::string> parts;
  std::string current;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      current += c;
      if (c == '\\' && i + 1 < text.size()) {
        current += text[++i];  // an escaped character, a quote included
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (--depth < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("unbalanced '", std::string(1, c), "' in ", text));
    } else if (c == ',' && depth == 0) {
      parts.push_back(std::move(current));
      current.clear();
      continue;
    }
    current += c;
  }
  if (depth != 0 || quoted)
    return absl::InvalidArgumentError(absl::StrCat("unbalanced brackets or quotes in ", text));
  parts.push_back(std::move(current));
  return parts;
}

absl::StatusOr<std::pair<std::string, std::string>> KeyValue(absl::string_view flag,
                                                             absl::string_view what) {
  const size_t eq = flag.find('=');
  if (eq == absl::string_view::npos || eq == 0 || eq + 1 == flag.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " takes KEY=", what == "--grid" ? "V1,V2,…" : "LOW:HIGH", ", got ", flag));
  }
  return std::make_pair(std::string(flag.substr(0, eq)), std::string(flag.substr(eq + 1)));
}

std::string FormatNumber(double v, bool integer) {
  if (integer) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat("%.6g", v);
}

}  // namespace

absl::StatusOr<std::pair<std::string, std::vector<std::string>>> ParseGridFlag(
    absl::string_view flag) {
  auto kv = KeyValue(flag, "--grid");
  if (!kv.ok()) return kv.status();
  auto values = SplitTopLevel(kv->second);
  if (!values.ok()) return values.status();
  for (const std::string& v : *values) {
    if (v.empty())
      return absl::InvalidArgumentError(absl::StrCat("--grid ", kv->first, ": an empty value"));
  }
  return std::make_pair(kv->first, *std::move(values));
}

absl::StatusOr<SweepRange> ParseRangeFlag(absl::string_view flag) {
  auto kv = KeyValue(flag, "--random");
  if (!kv.ok()) return kv.status();
  std::vector<std::string> parts = absl::StrSplit(kv->second, ':');
  SweepRange range{.key = kv->first};
  if (parts.size() < 2 || parts.size() > 3 || !absl::SimpleAtod(parts[0], &range.low) ||
      !absl::SimpleAtod(parts[1], &range.high) || !std::isfinite(range.low) ||
      !std::isfinite(range.high)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--random ", range.key, " takes LOW:HIGH[:log|:int], got ", kv->second));
  }
  if (parts.size() == 3) {
    if (parts[2] == "log") {
      range.log = true;
    } else if (parts[2] == "int") {
      range.integer = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--random ", range.key, ": the third part is log or int, got ", parts[2]));
    }
  }
  if (range.low > range.high) {
    return absl::InvalidArgumentError(absl::StrCat("--random ", range.key, ": LOW is above HIGH"));
  }
  if (range.log && range.low <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--random ", range.key, ": a log range starts above 0"));
  }
  if (range.integer &&
      (range.low != std::floor(range.low) || range.high != std::floor(range.high))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--random ", range.key, ": an int range has whole-number bounds"));
  }
  return range;
}

absl::StatusOr<std::vector<SweepPoint>> ExpandSweep(const SweepSpec& spec, size_t max_points) {
  std::set<std::string> keys;
  for (const auto& [key, values] : spec.grid) {
    if (!keys.insert(key).second)
      return absl::InvalidArgumentError(absl::StrCat(key, " is swept twice"));
  }
  for (const SweepRange& r : spec.random) {
    if (!keys.insert(r.key).second)
      return absl::InvalidArgumentError(absl::StrCat(r.key, " is swept twice"));
  }
  if (spec.trials < 1) return absl::InvalidArgumentError("--trials must be at least 1");
  // The product, counted without overflowing.
  size_t combinations = 1;
  for (const auto& [key, values] : spec.grid) {
    if (values.empty()) return absl::InvalidArgumentError(absl::StrCat(key, " has no values"));
    if (combinations > max_points / values.size())
      combinations = max_points + 1;
    else
      combinations *= values.size();
  }
  const size_t trials = spec.random.empty() ? 1 : static_cast<size_t>(spec.trials);
  if (combinations > max_points || combinations * trials > max_points) {
    return absl::InvalidArgumentError(
        absl::StrCat("the sweep has more than ", max_points, " jobs"));
  }
  std::mt19937_64 rng(spec.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<SweepPoint> points;
  points.reserve(combinations * trials);
  for (size_t c = 0; c < combinations; ++c) {
    SweepPoint grid_point;
    size_t rest = c;
    // The last key varies fastest.
    std::vector<size_t> index(spec.grid.size());
    for (size_t k = spec.grid.size(); k-- > 0;) {
      index[k] = rest % spec.grid[k].second.size();
      rest /= spec.grid[k].second.size();
    }
    for (size_t k = 0; k < spec.grid.size(); ++k) {
      grid_point.emplace_back(spec.grid[k].first, spec.grid[k].second[index[k]]);
    }
    for (size_t t = 0; t < trials; ++t) {
      SweepPoint point = grid_point;
      for (const SweepRange& r : spec.random) {
        double v;
        if (r.integer) {
          v = std::floor(r.low + unit(rng) * (r.high - r.low + 1));
          v = std::min(v, r.high);
        } else if (r.log) {
          v = std::exp(std::log(r.low) + unit(rng) * (std::log(r.high) - std::log(r.low)));
        } else {
          v = r.low + unit(rng) * (r.high - r.low);
        }
        std::string text = FormatNumber(v, r.integer);
        // Six digits may round a draw just past a bound: then print it whole.
        double shown = 0;
        if (!r.integer && absl::SimpleAtod(text, &shown) && (shown < r.low || shown > r.high)) {
          text = absl::StrFormat("%.17g", v);
        }
        point.emplace_back(r.key, std::move(text));
      }
      points.push_back(std::move(point));
    }
  }
  return points;
}

}  // namespace trainmesh::cli
