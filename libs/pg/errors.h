// The exception firewall: libpqxx reports failures by throwing; our code speaks
// absl::Status. Conversions happen here, once, and nowhere else.
#pragma once

#include <exception>

#include "absl/status/status.h"

namespace trainmesh::pg {

// Maps a libpqxx (or standard) exception to the most specific status:
//   broken_connection, in_doubt_error, SQLSTATE 08/57 -> UNAVAILABLE
//   serialization_failure, deadlock_detected         -> ABORTED
//   unique_violation                                 -> ALREADY_EXISTS
//   other integrity violations                       -> FAILED_PRECONDITION
//   data_exception (bad value for a column type)     -> INVALID_ARGUMENT
//   query_canceled (statement_timeout)               -> DEADLINE_EXCEEDED
//   insufficient_resources                           -> RESOURCE_EXHAUSTED
//   anything else (our bug: syntax, usage)           -> INTERNAL
absl::Status StatusFromException(const std::exception& e);

// For use inside `catch (...)`.
absl::Status StatusFromCurrentException();

}  // namespace trainmesh::pg
