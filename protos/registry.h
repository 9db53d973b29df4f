// The compiled-in contract: every trainmesh service descriptor. Referencing the
// generated files from here also guarantees they are linked into any binary
// that looks services up by name (static libraries drop unreferenced objects).
#pragma once

#include <vector>

#include "google/protobuf/descriptor.h"

namespace trainmesh::proto {

// JobService, JobControlService, SchedulerService, MetricsService, AuthService.
const std::vector<const google::protobuf::ServiceDescriptor*>& Services();

// The method `service`.`method` (full service name), or nullptr.
const google::protobuf::MethodDescriptor* FindMethod(const std::string& service,
                                                     const std::string& method);

}  // namespace trainmesh::proto
