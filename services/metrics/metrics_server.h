// The gRPC adapter of the metrics service.
#pragma once

#include "libs/server/handler.h"

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
  TM_UNARY_HANDLER(ReportMetricsBatch, ReportMetricsBatchRequest, ReportMetricsBatchResponse);
  TM_UNARY_HANDLER(QueryMetrics, QueryMetricsRequest, QueryMetricsResponse);
  TM_UNARY_HANDLER(ListMetricNames, ListMetricNamesRequest, ListMetricNamesResponse);
  TM_UNARY_HANDLER(GetLogs, GetLogsRequest, GetLogsResponse);
  TM_STREAM_HANDLER(StreamMetrics, StreamMetricsRequest, MetricsStreamItem);
  TM_STREAM_HANDLER(StreamLogs, StreamLogsRequest, LogStreamItem);
  TM_UNARY_HANDLER(GetCost, GetCostRequest, Cost);
  TM_UNARY_HANDLER(GetRecentMetrics, GetRecentMetricsRequest, GetRecentMetricsResponse);

 private:
  MetricsService* service_;
  server::Executor* executor_;
  const identity::Authenticator* auth_;
  PointFeed* points_;
  LogFeed* logs_;
  StreamLimits limits_;
};

}  // namespace trainmesh::metrics
