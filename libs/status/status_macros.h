// Early-return helpers for absl::Status / absl::StatusOr (Abseil 20220623 ships
// none publicly).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TM_STATUS_CONCAT_INNER_(a, b) a##b
#define TM_STATUS_CONCAT_(a, b) TM_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define TM_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    ::absl::Status tm_status_ = (expr);                   \
    if (!tm_status_.ok()) return tm_status_;              \
  } while (false)

// `TM_ASSIGN_OR_RETURN(auto x, Fn());` assigns the value or returns the error.
#define TM_ASSIGN_OR_RETURN(lhs, expr) \
  TM_ASSIGN_OR_RETURN_IMPL_(TM_STATUS_CONCAT_(tm_statusor_, __LINE__), lhs, expr)

#define TM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
