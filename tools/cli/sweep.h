// Hyperparameter sweeps for `trainctl sweep`: a grid (every combination of
// the listed values) and random draws from ranges (uniform, log-uniform or
// integer), expanded into one set of settings per job. Values stay text here;
// trainctl reads each as JSON (numbers, lists, booleans), else as a string,
// as it does for -p.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace trainmesh::cli {

struct SweepRange {
  std::string key;
  double low = 0;
  double high = 0;
  // Log-uniform (for learning rates and the like): low must be > 0.
  bool log = false;
  // Whole numbers in [low, high], each equally likely.
  bool integer = false;
};

struct SweepSpec {
  // key -> the values it takes, in order; the first key varies slowest.
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;
  std::vector<SweepRange> random;
  // Random draws per grid combination (1 when there is no range).
  int trials = 1;
  uint64_t seed = 0;
};

// One job's settings: (key, value text) in the order of the spec.
using SweepPoint = std::vector<std::pair<std::string, std::string>>;

// "KEY=V1,V2,…": commas inside [] {} or quotes do not split, so
// "hidden_sizes=[64,64],[128]" is two values. INVALID_ARGUMENT when the key
// or a value is missing, or the brackets do not balance.
absl::StatusOr<std::pair<std::string, std::vector<std::string>>> ParseGridFlag(
    absl::string_view flag);

// "KEY=LOW:HIGH[:log|:int]". INVALID_ARGUMENT when a bound is not a number,
// LOW > HIGH, or a log range does not start above 0.
absl::StatusOr<SweepRange> ParseRangeFlag(absl::string_view flag);

// Every grid combination times `trials` random draws (seeded: the same spec
// gives the same points). INVALID_ARGUMENT when a key is given twice or the
// sweep would exceed `max_points` jobs.
absl::StatusOr<std::vector<SweepPoint>> ExpandSweep(const SweepSpec& spec, size_t max_points);

}  // namespace trainmesh::cli
