#include "services/metrics/metrics_server.h"

#include "absl/strings/str_cat.h"
#include "libs/server/handler.h"
#include "libs/status/grpc_status.h"

namespace trainmesh::metrics {
namespace {

using trainmesh::v1::Principal;

const google::protobuf::MethodDescriptor& Method(const char* name) {
  return identity::MethodOf("trainmesh.v1.MetricsService", name);
}

}  // namespace

grpc::ServerBidiReactor<trainmesh::v1::ReportMetricsRequest, trainmesh::v1::ReportMetricsResponse>*
MetricsServer::ReportMetrics(grpc::CallbackServerContext* context) {
  static const auto& method = Method("ReportMetrics");
  return StartReportStream(service_, executor_, server::StreamCaller(auth_, context, method));
}

grpc::ServerUnaryReactor* MetricsServer::ReportMetricsBatch(
    grpc::CallbackServerContext* context, const trainmesh::v1::ReportMetricsBatchRequest* request,
    trainmesh::v1::ReportMetricsBatchResponse* response) {
  static const auto& method = Method("ReportMetricsBatch");
  const absl::Time start = absl::Now();
  return server::RunUnary(context, *executor_, [=]() -> absl::Status {
    const std::string body_token =
        request->batches().empty() ? "" : request->batches(0).job_token();
    absl::StatusOr<Principal> caller = auth_->AuthorizeWithBodyToken(*context, method, body_token);
    absl::Status status = caller.status();
    if (caller.ok()) {
      absl::StatusOr<trainmesh::v1::ReportMetricsBatchResponse> acks =
          service_->ReportBatch(*caller, *request);
      status = acks.status();
      if (acks.ok()) *response = *std::move(acks);
    }
    server::LogCall(method, status, absl::Now() - start, caller.ok() ? caller->subject() : "");
    return status;
  });
}

grpc::ServerWriteReactor<trainmesh::v1::MetricsStreamItem>* MetricsServer::StreamMetrics(
    grpc::CallbackServerContext* context, const trainmesh::v1::StreamMetricsRequest* request) {
  static const auto& method = Method("StreamMetrics");
  return StartMetricsStream(service_, points_, executor_,
                            server::StreamCaller(auth_, context, method), *request, limits_);
}

grpc::ServerWriteReactor<trainmesh::v1::LogStreamItem>* MetricsServer::StreamLogs(
    grpc::CallbackServerContext* context, const trainmesh::v1::StreamLogsRequest* request) {
  static const auto& method = Method("StreamLogs");
  return StartLogStream(service_, logs_, executor_, server::StreamCaller(auth_, context, method),
                        *request, limits_);
}

}  // namespace trainmesh::metrics
