#pragma once
// What the dataset parsers' fuzz targets (csv_fuzz, npz_fuzz) assert beyond
// "no crash". Each check aborts, which libFuzzer reports as a crash with the
// input that broke the promise.
#include <cmath>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/datasets/formats.h"

namespace trainmesh::datasets::fuzzing {

// An error is short: it names what is wrong and where, never quotes the input.
inline void CheckError(const absl::Status& status) {
  if (status.message().size() > 200) std::abort();
}

// Demonstrations are refused with a short error, or have matching obs and act
// rows (at least 2) and only finite values.
inline void CheckDemonstrations(const absl::StatusOr<Demonstrations>& demos) {
  if (!demos.ok()) return CheckError(demos.status());
  if (demos->obs.rows != demos->act.rows || demos->obs.rows < 2) std::abort();
  for (const Matrix* m : {&demos->obs, &demos->act}) {
    for (float v : m->data) {
      if (!std::isfinite(v)) std::abort();
    }
  }
}

}  // namespace trainmesh::datasets::fuzzing
