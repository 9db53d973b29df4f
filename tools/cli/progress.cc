#include "tools/cli/progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace trainmesh::cli {

std::string ShortDuration(absl::Duration d) {
  int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(d));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

namespace {
std::string Rate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.1fM", per_second / 1e6);
  if (per_second >= 1e4) return absl::StrFormat("%.0fk", per_second / 1e3);
  if (per_second >= 1e3) return absl::StrFormat("%.1fk", per_second / 1e3);
  return absl::StrFormat("%.0f", per_second);
}
}  // namespace

std::string ProgressLine(const ProgressView& v, int width) {
  double fraction = v.fraction;
  if (fraction <= 0 && v.total_steps > 0) fraction = static_cast<double>(v.step) / v.total_steps;
  fraction = std::clamp(std::isfinite(fraction) ? fraction : 0.0, 0.0, 1.0);
  constexpr int kBar = 24;
  const int filled = static_cast<int>(std::round(fraction * kBar));
  std::string line = absl::StrCat(v.state, " [", std::string(filled, '#'), std::string(kBar - filled, '-'), "] ",
                                  absl::StrFormat("%3.0f%%", 100 * fraction));
  if (v.total_steps > 0) {
    absl::StrAppend(&line, "  step ", v.step, "/", v.total_steps);
  } else if (v.step > 0) {
    absl::StrAppend(&line, "  step ", v.step);
  }
  if (v.train_loss != 0) absl::StrAppend(&line, absl::StrFormat("  loss %.4g", v.train_loss));
  if (v.val_loss != 0) absl::StrAppend(&line, absl::StrFormat("  val %.4g", v.val_loss));
  if (v.samples_per_second > 0) absl::StrAppend(&line, "  ", Rate(v.samples_per_second), " samples/s");
  if (v.eta > absl::ZeroDuration()) absl::StrAppend(&line, "  ETA ", ShortDuration(v.eta));
  if (width > 0 && static_cast<int>(line.size()) > width) line.resize(width);
  return line;
}

}  // namespace trainmesh::cli
