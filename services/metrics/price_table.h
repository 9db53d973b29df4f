// What a device-hour costs: "cpu=0.05,cuda=2.50,cuda:NVIDIA H100 80GB HBM3=4.00".
// A device type matches its exact entry, else the part before ':' ("cuda"),
// else "default" (0 when absent).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace trainmesh::metrics {

class PriceTable {
 public:
  // INVALID_ARGUMENT naming the bad entry.
  static absl::StatusOr<PriceTable> Parse(absl::string_view spec, std::string currency);

  double PerHour(absl::string_view device_type) const;
  const std::string& currency() const { return currency_; }

 private:
  std::map<std::string, double, std::less<>> prices_;
  std::string currency_ = "USD";
};

}  // namespace trainmesh::metrics
