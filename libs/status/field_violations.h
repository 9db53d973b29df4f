// Validation errors that name their fields. A status built here carries a
// google.rpc.BadRequest payload, which ToGrpcStatus turns into the standard
// `grpc-status-details-bin` trailer and the gateway into a JSON error body.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace trainmesh::status {

struct FieldViolation {
  std::string field;        // proto field path, e.g. "job.hyperparameters.steps"
  std::string description;  // what is wrong and what would be right

  friend bool operator==(const FieldViolation& a, const FieldViolation& b) {
    return a.field == b.field && a.description == b.description;
  }
};

// Collects violations while validating a request.
class FieldViolations {
 public:
  // Both are made valid UTF-8 (they may quote what a client sent).
  void Add(std::string field, std::string description);
  void Append(const std::vector<FieldViolation>& more) {
    for (const FieldViolation& f : more) Add(f.field, f.description);
  }
  bool empty() const { return violations_.empty(); }
  const std::vector<FieldViolation>& violations() const { return violations_; }

  // OK when nothing was added, else INVALID_ARGUMENT whose message lists the
  // violations and whose payload is a google.rpc.BadRequest.
  absl::Status ToStatus(absl::string_view summary = "invalid request") const;

 private:
  std::vector<FieldViolation> violations_;
};

// INVALID_ARGUMENT for one field.
absl::Status InvalidField(std::string field, std::string description);

// The violations carried by `status` (empty when it has none).
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);

// Type URL of the BadRequest payload.
inline constexpr absl::string_view kBadRequestTypeUrl =
    "type.googleapis.com/google.rpc.BadRequest";

}  // namespace trainmesh::status
