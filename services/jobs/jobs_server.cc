#include "services/jobs/jobs_server.h"

#include "libs/server/handler.h"
#include "libs/status/grpc_status.h"

namespace trainmesh::jobs {
namespace {

using trainmesh::v1::Principal;

const google::protobuf::MethodDescriptor& Method(const char* name) {
  return identity::MethodOf("trainmesh.v1.JobService", name);
}

// A stream that ends at once with `status` (the caller was refused).
class RefusedStream : public grpc::ServerWriteReactor<trainmesh::v1::JobEvent> {
 public:
  explicit RefusedStream(const absl::Status& status) { Finish(status::ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerUnaryReactor* JobsServer::CreateJob(grpc::CallbackServerContext* context,
                                                const trainmesh::v1::CreateJobRequest* request,
                                                trainmesh::v1::Job* response) {
  static const auto& method = Method("CreateJob");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->CreateJob(caller, *request);
                             });
}

grpc::ServerUnaryReactor* JobsServer::GetJob(grpc::CallbackServerContext* context,
                                             const trainmesh::v1::GetJobRequest* request,
                                             trainmesh::v1::Job* response) {
  static const auto& method = Method("GetJob");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->GetJob(caller, *request);
                             });
}

grpc::ServerUnaryReactor* JobsServer::ListJobs(grpc::CallbackServerContext* context,
                                               const trainmesh::v1::ListJobsRequest* request,
                                               trainmesh::v1::ListJobsResponse* response) {
  static const auto& method = Method("ListJobs");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->ListJobs(caller, *request);
                             });
}

grpc::ServerUnaryReactor* JobsServer::CancelJob(grpc::CallbackServerContext* context,
                                                const trainmesh::v1::CancelJobRequest* request,
                                                trainmesh::v1::Job* response) {
  static const auto& method = Method("CancelJob");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->CancelJob(caller, *request);
                             });
}

grpc::ServerUnaryReactor* JobsServer::RetryJob(grpc::CallbackServerContext* context,
                                               const trainmesh::v1::RetryJobRequest* request,
                                               trainmesh::v1::Job* response) {
  static const auto& method = Method("RetryJob");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->RetryJob(caller, *request);
                             });
}

grpc::ServerUnaryReactor* JobsServer::GetErrorLog(grpc::CallbackServerContext* context,
                                                  const trainmesh::v1::GetErrorLogRequest* request,
                                                  trainmesh::v1::ErrorLog* response) {
  static const auto& method = Method("GetErrorLog");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->GetErrorLog(caller, *request);
                             });
}

grpc::ServerUnaryReactor* JobsServer::ListJobEvents(
    grpc::CallbackServerContext* context, const trainmesh::v1::ListJobEventsRequest* request,
    trainmesh::v1::ListJobEventsResponse* response) {
  static const auto& method = Method("ListJobEvents");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->ListJobEvents(caller, *request);
                             });
}

grpc::ServerUnaryReactor* JobsServer::ListRecipes(grpc::CallbackServerContext* context,
                                                  const trainmesh::v1::ListRecipesRequest*,
                                                  trainmesh::v1::ListRecipesResponse* response) {
  static const auto& method = Method("ListRecipes");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this](const Principal&) { return service_->ListRecipes(); });
}

grpc::ServerUnaryReactor* JobsServer::GetRecipe(grpc::CallbackServerContext* context,
                                                const trainmesh::v1::GetRecipeRequest* request,
                                                trainmesh::v1::Recipe* response) {
  static const auto& method = Method("GetRecipe");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal&) {
                               return service_->GetRecipe(*request);
                             });
}

grpc::ServerWriteReactor<trainmesh::v1::JobEvent>* JobsServer::WatchJob(
    grpc::CallbackServerContext* context, const trainmesh::v1::WatchJobRequest* request) {
  static const auto& method = Method("WatchJob");
  if (absl::Status invalid = JobsService::ValidateWatch(*request); !invalid.ok()) {
    server::LogCall(method, invalid, absl::ZeroDuration(), "");
    return new RefusedStream(invalid);
  }
  const identity::Authenticator* auth = auth_;
  return StartWatch(
      service_, executor_, hub_,
      [auth, context]() {
        absl::StatusOr<Principal> caller = auth->Authorize(*context, method);
        if (!caller.ok()) server::LogCall(method, caller.status(), absl::ZeroDuration(), "");
        return caller;
      },
      *request);
}

grpc::ServerUnaryReactor* JobControlServer::ReportJobStatus(
    grpc::CallbackServerContext* context, const trainmesh::v1::ReportJobStatusRequest* request,
    trainmesh::v1::Job* response) {
  static const auto& method =
      identity::MethodOf("trainmesh.v1.JobControlService", "ReportJobStatus");
  return server::HandleUnary(context, *executor_, *auth_, method, response,
                             [this, request](const Principal& caller) {
                               return service_->ReportJobStatus(caller, *request);
                             });
}

}  // namespace trainmesh::jobs
