// Test doubles of the trainer's peers, served by real gRPC servers on port 0:
// a metrics service that stores report batches the way the real one does
// (deduplicated by batch_seq) and can break streams, refuse, or be down.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "trainmesh/v1/metrics.grpc.pb.h"

namespace trainmesh::trainer::testing {

using trainmesh::v1::ReportMetricsRequest;
using trainmesh::v1::ReportMetricsResponse;

class FakeMetrics final : public trainmesh::v1::MetricsService::Service {
 public:
  grpc::Status ReportMetrics(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<ReportMetricsResponse, ReportMetricsRequest>* stream) override {
    {
      std::lock_guard<std::mutex> l(mu);
      auto auth = context->client_metadata().find("authorization");
      if (auth != context->client_metadata().end()) {
        authorization = std::string(auth->second.data(), auth->second.size());
      }
      if (refuse) return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "stale job token");
      ++streams;
    }
    ReportMetricsRequest batch;
    while (stream->Read(&batch)) {
      ReportMetricsResponse ack;
      {
        std::lock_guard<std::mutex> l(mu);
        const bool duplicate = !seqs.insert(batch.batch_seq()).second;
        duplicates += duplicate;
        if (!duplicate) {
          for (const auto& p : batch.points())
            points.push_back(p.name() + "@" + std::to_string(p.step()));
          for (const auto& line : batch.logs()) logs.push_back(line.text());
          device_seconds += batch.device_seconds();
          if (batch.final()) finals++;
        }
        ack.set_acked_batch_seq(batch.batch_seq());
        ack.set_duplicate(duplicate);
        if (break_after_storing > 0) {
          --break_after_storing;
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset");
        }
      }
      if (!stream->Write(ack)) break;
    }
    return grpc::Status::OK;
  }

  std::mutex mu;
  bool refuse = false;
  int break_after_storing = 0;
  int streams = 0;
  int duplicates = 0;
  int finals = 0;
  double device_seconds = 0;
  std::set<int64_t> seqs;
  std::vector<std::string> points, logs;
  std::string authorization;
};

// Serves `service` on 127.0.0.1:`port` (0: a free one) until destroyed.
class Server {
 public:
  explicit Server(grpc::Service* service, int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~Server() { server_->Shutdown(std::chrono::system_clock::now()); }
  int port() const { return port_; }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace trainmesh::trainer::testing
