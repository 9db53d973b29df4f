// The gRPC adapter of the metrics service.
#pragma once

#include "libs/identity/authenticator.h"
#include "libs/server/executor.h"
#include "libs/server/handler.h"
#include "services/metrics/metrics_service.h"
#include "services/metrics/streams.h"
#include "trainmesh/v1/metrics.adapter.h"

namespace trainmesh::metrics {

// The metrics service's RPCs: the generated adapter binds the queries to
// MetricsService's methods of the same name; ingest (job tokens in the body)
// and the streams are written here.
class MetricsServer final : public trainmesh::v1::MetricsServiceAdapter<MetricsService> {
 public:
  MetricsServer(MetricsService* service, server::Executor* executor,
                const identity::Authenticator* authenticator, PointFeed* points, LogFeed* logs,
                StreamLimits limits = {})
      : MetricsServiceAdapter(service, executor, authenticator),
        points_(points),
        logs_(logs),
        limits_(limits) {}

  grpc::ServerBidiReactor<trainmesh::v1::ReportMetricsRequest,
                          trainmesh::v1::ReportMetricsResponse>*
  ReportMetrics(grpc::CallbackServerContext* context) override;
  TM_UNARY_HANDLER(ReportMetricsBatch, ReportMetricsBatchRequest, ReportMetricsBatchResponse);
  TM_STREAM_HANDLER(StreamMetrics, StreamMetricsRequest, MetricsStreamItem);
  TM_STREAM_HANDLER(StreamLogs, StreamLogsRequest, LogStreamItem);

 private:
  PointFeed* points_;
  LogFeed* logs_;
  StreamLimits limits_;
};

}  // namespace trainmesh::metrics
