#include "services/metrics/price_table.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace trainmesh::metrics {

absl::StatusOr<PriceTable> PriceTable::Parse(absl::string_view spec, std::string currency) {
  PriceTable table;
  table.currency_ = std::move(currency);
  for (absl::string_view entry : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    const size_t eq = entry.rfind('=');
    double price = 0;
    if (eq == absl::string_view::npos ||
        !absl::SimpleAtod(absl::StripAsciiWhitespace(entry.substr(eq + 1)), &price) || price < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("price table entry \"", entry, "\" is not DEVICE=PRICE_PER_HOUR"));
    }
    table.prices_[std::string(absl::StripAsciiWhitespace(entry.substr(0, eq)))] = price;
  }
  return table;
}

double PriceTable::PerHour(absl::string_view device_type) const {
  if (auto it = prices_.find(device_type); it != prices_.end()) return it->second;
  if (auto it = prices_.find(device_type.substr(0, device_type.find(':'))); it != prices_.end()) {
    return it->second;
  }
  if (auto it = prices_.find("default"); it != prices_.end()) return it->second;
  return 0;
}

}  // namespace trainmesh::metrics
