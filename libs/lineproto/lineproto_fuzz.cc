// libFuzzer target for the metric-line parser: any input is a metric, chart or
// log line, never a crash, and what comes out keeps the parser's promises.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "libs/lineproto/lineproto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trainmesh::lineproto;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  Line line = ParseLine(input);
  if (const auto* m = std::get_if<MetricLine>(&line)) {
    if (m->metrics.empty() || m->step < 0) std::abort();
    for (const auto& [name, value] : m->metrics) {
      if (name.empty() || name.size() > kMaxNameBytes) std::abort();
    }
  } else if (const auto* c = std::get_if<ChartLine>(&line)) {
    if (c->title.empty()) std::abort();
  } else if (std::get<LogLine>(line).text.size() > input.size()) {
    std::abort();
  }
  return 0;
}
