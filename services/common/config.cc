#include "services/common/config.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace trainmesh::config {

std::string EnvNameForFlag(absl::string_view flag) {
  return absl::StrCat("TRAINMESH_", absl::AsciiStrToUpper(flag));
}

absl::Status ApplyEnvironment(const std::function<const char*(const char*)>& lookup) {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    // Abseil's own flags (--flagfile, --help...) are not ours to configure.
    if (absl::StartsWith(flag->Filename(), "absl/")) continue;
    const std::string env = EnvNameForFlag(name);
    const char* value = lookup(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", env, ": ", error));
    }
  }
  return absl::OkStatus();
}

std::vector<char*> ParseFlags(int argc, char** argv, absl::string_view usage) {
#ifdef NDEBUG
  // Abseil's mutex deadlock detector costs a graph update per lock; keep it for
  // debug and sanitizer builds, where tests run.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  absl::SetProgramUsageMessage(usage);
  if (absl::Status s = ApplyEnvironment(); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    std::exit(2);
  }
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace trainmesh::config
