// A blocking HTTP/1.1 GET, for tests and tools that read an endpoint (a
// /metrics scrape, a health check).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace trainmesh::httpd {

struct GetResult {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GET http://host:port/target. UNAVAILABLE when it cannot connect or read.
absl::StatusOr<GetResult> Get(const std::string& host, int port, const std::string& target);

}  // namespace trainmesh::httpd
