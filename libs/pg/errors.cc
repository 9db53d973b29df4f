#include "libs/pg/errors.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

std::string Describe(const std::exception& e) {
  std::string what = e.what();
  // libpqxx messages end with a newline and sometimes repeat the query.
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
  return what;
}

}  // namespace

absl::Status StatusFromException(const std::exception& e) {
  const std::string what = Describe(e);
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError(absl::StrCat("database connection lost: ", what));
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) {
    return absl::UnavailableError(absl::StrCat("database outcome unknown: ", what));
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return absl::AbortedError(absl::StrCat("transaction aborted, retry: ", what));
  }
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    return absl::AlreadyExistsError(what);
  }
  if (dynamic_cast<const pqxx::integrity_constraint_violation*>(&e) != nullptr) {
    return absl::FailedPreconditionError(what);
  }
  if (dynamic_cast<const pqxx::data_exception*>(&e) != nullptr) {
    return absl::InvalidArgumentError(what);
  }
  if (dynamic_cast<const pqxx::insufficient_resources*>(&e) != nullptr) {
    return absl::ResourceExhaustedError(what);
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    const std::string& state = sql->sqlstate();
    if (state == "57014") return absl::DeadlineExceededError(what);
    if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57")) {
      return absl::UnavailableError(absl::StrCat("database unavailable: ", what));
    }
    if (state == "40001" || state == "40P01") {
      return absl::AbortedError(absl::StrCat("transaction aborted, retry: ", what));
    }
    return absl::InternalError(absl::StrCat("database error ", state, ": ", what));
  }
  return absl::InternalError(absl::StrCat("database error: ", what));
}

absl::Status StatusFromCurrentException() {
  try {
    throw;
  } catch (const std::exception& e) {
    return StatusFromException(e);
  } catch (...) {
    return absl::InternalError("database error: unknown exception");
  }
}

}  // namespace trainmesh::pg
