// Command-line flags (absl) with environment overrides: every flag `foo_bar`
// may be set as TRAINMESH_FOO_BAR; an explicit command-line flag wins over the
// environment, and the environment over the compiled-in default.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace trainmesh::config {

// "foo_bar" -> "TRAINMESH_FOO_BAR".
std::string EnvNameForFlag(absl::string_view flag);

// Sets every registered flag whose environment variable is present. Returns
// INVALID_ARGUMENT naming the variable when a value does not parse.
absl::Status ApplyEnvironment(
    const std::function<const char*(const char*)>& lookup = [](const char* name) {
      return static_cast<const char*>(std::getenv(name));
    });

// Applies the environment, then parses the command line. Exits with a message
// on a bad flag or variable. Returns the positional arguments (argv[0] first).
// In optimised builds it also turns off Abseil's mutex deadlock detection.
std::vector<char*> ParseFlags(int argc, char** argv, absl::string_view usage);

}  // namespace trainmesh::config
