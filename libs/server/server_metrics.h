// Prometheus metrics of every RPC a server handles, under the names of
// go-grpc-prometheus (so its dashboards and alerts work unchanged):
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method} (histogram)
//   grpc_server_msg_received_total, grpc_server_msg_sent_total
// and the streams open now (subscribers of WatchJob, StreamMetrics, ...):
//   trainmesh_grpc_server_open_streams{grpc_type,grpc_service,grpc_method}
#pragma once

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "libs/telemetry/metrics.h"

namespace trainmesh::server {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MetricsInterceptorFactory(
    telemetry::Registry* registry);

// go-grpc-prometheus's spelling of a code: OK, Canceled, InvalidArgument, ...
const char* CodeName(grpc::StatusCode code);

}  // namespace trainmesh::server
