// What the sandbox adds to the start of every script job: `true` run through
// scriptrun::Run with the sandbox and without it (the same runner, fork and
// exec), alternating one of each so that machine noise hits both alike.
//
//   sandbox_benchmark [--runs N] [--rounds R]
//
// Prints, per round, the median and 90th percentile of each and the median
// difference, in milliseconds.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "libs/scriptrun/script.h"

namespace {

using trainmesh::scriptrun::Run;
using trainmesh::scriptrun::ScriptOptions;
using trainmesh::scriptrun::Stream;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 200, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
  }
  std::string dir = "/tmp/sandbox-benchmark-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    std::cerr << "mkdtemp failed\n";
    return 1;
  }
  if (absl::Status s = trainmesh::scriptrun::SandboxAvailable({}); !s.ok()) {
    std::cerr << "no sandbox here: " << s << "\n";
    return 1;
  }
  ScriptOptions o;
  o.command = "true";
  o.workdir = dir;
  o.env = {{"PATH", "/usr/bin:/bin"}};
  auto time_one = [&](bool sandbox) {
    o.sandbox.enabled = sandbox;
    const absl::Time start = absl::Now();
    auto r = Run(
        o, [](Stream, absl::string_view) {}, nullptr);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!r.ok() || r->exit_code != 0) {
      std::cerr << "run failed: "
                << (r.ok() ? absl::StrCat("exit ", r->exit_code) : r.status().ToString()) << "\n";
      std::exit(1);
    }
    return ms;
  };
  std::cout << absl::StrFormat("%-5s %6s %10s %10s %10s %10s %12s\n", "round", "runs", "bare p50",
                               "bare p90", "sandbox p50", "sandbox p90", "p50 added");
  for (int round = 1; round <= rounds; ++round) {
    std::vector<double> bare, boxed;
    for (int i = 0; i < runs; ++i) {
      // Alternate which goes first, too.
      if (i % 2 == 0) {
        bare.push_back(time_one(false));
        boxed.push_back(time_one(true));
      } else {
        boxed.push_back(time_one(true));
        bare.push_back(time_one(false));
      }
    }
    std::cout << absl::StrFormat("%-5d %6d %10.2f %10.2f %10.2f %10.2f %12.2f\n", round, runs,
                                 Percentile(bare, 0.5), Percentile(bare, 0.9),
                                 Percentile(boxed, 0.5), Percentile(boxed, 0.9),
                                 Percentile(boxed, 0.5) - Percentile(bare, 0.5));
  }
  rmdir(dir.c_str());
  return 0;
}
