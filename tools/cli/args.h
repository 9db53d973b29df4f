// Command-line parsing for trainctl: a subcommand, positional arguments and
// --flags (repeatable, `--flag value` or `--flag=value`, short `-p k=v`).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace trainmesh::cli {

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> flags;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  // The last value of a flag, or `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  const std::vector<std::string>& All(const std::string& name) const;
};

// `boolean_flags` take no value. Short aliases map to long names
// (e.g. {"p", "param"}, {"o", "output"}). INVALID_ARGUMENT for an unknown flag
// or a missing value.
absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                           const std::set<std::string>& value_flags,
                           const std::set<std::string>& boolean_flags,
                           const std::map<std::string, std::string>& aliases);

// Reads KEY=VALUE lines (as written by tools/up); '#' starts a comment.
std::map<std::string, std::string> ParseEnvFile(const std::string& text);

}  // namespace trainmesh::cli
