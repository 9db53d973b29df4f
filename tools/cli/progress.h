// The one-line progress display of `trainctl watch` on a terminal.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace trainmesh::cli {

struct ProgressView {
  std::string state;  // RUNNING, ...
  int64_t step = 0;
  int64_t total_steps = 0;  // 0: unknown
  double fraction = 0;      // 0..1
  double train_loss = 0;    // 0: not reported
  double val_loss = 0;
  double samples_per_second = 0;
  absl::Duration eta = absl::ZeroDuration();  // 0: unknown
};

// "RUNNING [########------------]  40%  step 400/1000  loss 0.1234  val 0.2  2.1k samples/s  ETA 1m12s",
// cut to `width` columns (a terminal's width).
std::string ProgressLine(const ProgressView& view, int width);

// 1m12s, 2h03m, 45s.
std::string ShortDuration(absl::Duration d);

}  // namespace trainmesh::cli
