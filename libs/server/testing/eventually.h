// Waiting on a condition in a test, never on a sleep: polls `done` every 5 ms
// until it holds (true) or `limit` has passed (false). The limit is generous:
// it only ends a test that would otherwise hang.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace trainmesh::server::testing {

template <typename Done>
bool Eventually(Done done, absl::Duration limit = absl::Seconds(60)) {
  const absl::Time give_up = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace trainmesh::server::testing
