// The gRPC adapter of the metrics service.
#pragma once

#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "services/metrics/metrics_service.h"
#include "services/metrics/streams.h"
#include "trainmesh/v1/metrics.grpc.pb.h"

namespace trainmesh::metrics {

class MetricsServer final : public trainmesh::v1::MetricsService::CallbackService {
 public:
  MetricsServer(MetricsService* service, server::Executor* executor,
                const identity::Authenticator* authenticator, PointFeed* points, LogFeed* logs,
                StreamLimits limits = {})
      : service_(service),
        executor_(executor),
        auth_(authenticator),
        points_(points),
        logs_(logs),
        limits_(limits) {}

  grpc::ServerBidiReactor<trainmesh::v1::ReportMetricsRequest,
                          trainmesh::v1::ReportMetricsResponse>*
  ReportMetrics(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ReportMetricsBatch(
      grpc::CallbackServerContext* context, const trainmesh::v1::ReportMetricsBatchRequest* request,
      trainmesh::v1::ReportMetricsBatchResponse* response) override;
  grpc::ServerUnaryReactor* QueryMetrics(grpc::CallbackServerContext* context,
                                         const trainmesh::v1::QueryMetricsRequest* request,
                                         trainmesh::v1::QueryMetricsResponse* response) override;
  grpc::ServerUnaryReactor* ListMetricNames(
      grpc::CallbackServerContext* context, const trainmesh::v1::ListMetricNamesRequest* request,
      trainmesh::v1::ListMetricNamesResponse* response) override;
  grpc::ServerUnaryReactor* GetLogs(grpc::CallbackServerContext* context,
                                    const trainmesh::v1::GetLogsRequest* request,
                                    trainmesh::v1::GetLogsResponse* response) override;
  grpc::ServerWriteReactor<trainmesh::v1::MetricsStreamItem>* StreamMetrics(
      grpc::CallbackServerContext* context,
      const trainmesh::v1::StreamMetricsRequest* request) override;
  grpc::ServerWriteReactor<trainmesh::v1::LogStreamItem>* StreamLogs(
      grpc::CallbackServerContext* context, const trainmesh::v1::StreamLogsRequest* request) override;
  grpc::ServerUnaryReactor* GetCost(grpc::CallbackServerContext* context,
                                    const trainmesh::v1::GetCostRequest* request,
                                    trainmesh::v1::Cost* response) override;
  grpc::ServerUnaryReactor* GetRecentMetrics(
      grpc::CallbackServerContext* context, const trainmesh::v1::GetRecentMetricsRequest* request,
      trainmesh::v1::GetRecentMetricsResponse* response) override;

 private:
  MetricsService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
  PointFeed* points_;
  LogFeed* logs_;
  StreamLimits limits_;
};

}  // namespace trainmesh::metrics
