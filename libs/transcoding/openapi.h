// An OpenAPI 3 document for the REST routes, generated from the same
// descriptors and google.api.http options the router serves: paths (with
// their path and query parameters, request bodies and responses), schemas by
// the proto3 JSON mapping, bearer auth, errors as google.rpc.Status.
#pragma once

#include <string>

#include "libs/transcoding/transcoding.h"

namespace trainmesh::transcoding {

struct OpenApiInfo {
  std::string title = "trainmesh";
  std::string version = "v1";
  std::string description;
};

// The document as JSON text.
std::string OpenApi(const Router& router, const OpenApiInfo& info = {});

}  // namespace trainmesh::transcoding
