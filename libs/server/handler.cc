#include "libs/server/handler.h"

#include "absl/status/status.h"
#include "libs/log/log.h"

namespace trainmesh::server {

void LogCall(const google::protobuf::MethodDescriptor& method, const absl::Status& status,
             absl::Duration latency, const std::string& caller) {
  log::Level level = log::Level::kDebug;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      break;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
      level = log::Level::kError;
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      level = log::Level::kWarning;
      break;
    default:
      level = log::Level::kInfo;
  }
  if (!log::Enabled(level)) return;
  log::Entry(level, "rpc")
      .With("method", method.full_name())
      .With("code", absl::StatusCodeToString(status.code()))
      .With("ms", absl::ToDoubleMilliseconds(latency))
      .With("caller", caller)
      .With("error", std::string(status.message()));
}

}  // namespace trainmesh::server
