#include "protos/registry.h"

#include "trainmesh/v1/auth.pb.h"
#include "trainmesh/v1/jobs.pb.h"
#include "trainmesh/v1/metrics.pb.h"
#include "trainmesh/v1/scheduler.pb.h"

namespace trainmesh::proto {

const std::vector<const google::protobuf::ServiceDescriptor*>& Services() {
  static const auto* services = [] {
    auto* out = new std::vector<const google::protobuf::ServiceDescriptor*>;
    for (const google::protobuf::FileDescriptor* file :
         {trainmesh::v1::Job::descriptor()->file(), trainmesh::v1::Agent::descriptor()->file(),
          trainmesh::v1::LogLine::descriptor()->file(),
          trainmesh::v1::Principal::descriptor()->file()}) {
      for (int i = 0; i < file->service_count(); ++i) out->push_back(file->service(i));
    }
    return out;
  }();
  return *services;
}

const google::protobuf::MethodDescriptor* FindMethod(const std::string& service,
                                                     const std::string& method) {
  for (const auto* s : Services()) {
    if (s->full_name() == service) return s->FindMethodByName(method);
  }
  return nullptr;
}

}  // namespace trainmesh::proto
