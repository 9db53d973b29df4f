// What every trainctl command shares: the connection (flags, environment,
// stored login, tools/up's credentials file), the client, errors and
// printing.
#pragma once

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/grpcpp.h"
#include "libs/tls/tls.h"
#include "tools/cli/args.h"
#include "trainmesh/v1/auth.grpc.pb.h"
#include "trainmesh/v1/jobs.grpc.pb.h"
#include "trainmesh/v1/metrics.grpc.pb.h"
#include "trainmesh/v1/scheduler.grpc.pb.h"

namespace trainmesh::cli {


using trainmesh::v1::Job;
using trainmesh::v1::JobEvent;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
// watch / submit --wait: the job ended FAILED or CANCELLED.
constexpr int kExitJobUnsuccessful = 3;

struct Connection {
  std::string endpoint;
  std::string auth_endpoint;
  std::string metrics_endpoint;
  std::string scheduler_endpoint;
  // The REST gateway's base URL, for links to the dashboard (may be empty).
  std::string gateway;
  std::string credential;
  // PEM CA the services' certificates are checked against; empty: plaintext.
  std::string tls_ca;
};


// Where `trainctl login` keeps its token.
std::string TokenPath();

std::string ReadFile(const std::string& path);

Connection ResolveConnection(const Args& args);

int ReportError(const grpc::Status& s, const std::string& endpoint);

int UsageError(const std::string& message);

std::string Json(const google::protobuf::Message& m);

std::string FormatTime(const google::protobuf::Timestamp& ts);

std::string StateName(Job::State s);

std::string ProgressText(const trainmesh::v1::Progress& p);

void PrintJob(const Job& job);

void PrintEvent(const JobEvent& e);

int TerminalWidth();

// Parses `value` as JSON when it is JSON, else as a string.
google::protobuf::Value ParseValue(const std::string& value);

class Client {
 public:
  Client(const Args& args) : args_(args), connection_(ResolveConnection(args)) {
    grpc::ChannelArguments channel_args;
    channel_args.SetMaxReceiveMessageSize(64 << 20);
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        tls::ChannelCredentials({.ca_file = connection_.tls_ca});
    if (!creds.ok()) {
      std::cerr << "error: " << creds.status().message() << " (TRAINMESH_TLS_CA, --tls-ca)\n";
      std::exit(2);
    }
    channel_ = grpc::CreateCustomChannel(connection_.endpoint, *creds, channel_args);
    jobs_ = trainmesh::v1::JobService::NewStub(channel_);
    auth_ = trainmesh::v1::AuthService::NewStub(
        grpc::CreateCustomChannel(connection_.auth_endpoint, *creds, channel_args));
    metrics_ = trainmesh::v1::MetricsService::NewStub(
        grpc::CreateCustomChannel(connection_.metrics_endpoint, *creds, channel_args));
    scheduler_ = trainmesh::v1::SchedulerService::NewStub(
        grpc::CreateCustomChannel(connection_.scheduler_endpoint, *creds, channel_args));
    absl::Duration timeout;
    timeout_ = absl::ParseDuration(args.Get("timeout", "30s"), &timeout) ? timeout
                                                                         : absl::Seconds(30);
  }

  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!connection_.credential.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + connection_.credential);
    }
    if (!streaming) ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    return ctx;
  }

  trainmesh::v1::JobService::Stub& jobs() { return *jobs_; }
  trainmesh::v1::AuthService::Stub& auth() { return *auth_; }
  trainmesh::v1::MetricsService::Stub& metrics() { return *metrics_; }
  trainmesh::v1::SchedulerService::Stub& scheduler() { return *scheduler_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  const Connection& connection() const { return connection_; }
  bool json() const { return args_.Get("output") == "json"; }

 private:
  const Args& args_;
  Connection connection_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<trainmesh::v1::JobService::Stub> jobs_;
  std::unique_ptr<trainmesh::v1::AuthService::Stub> auth_;
  std::unique_ptr<trainmesh::v1::MetricsService::Stub> metrics_;
  std::unique_ptr<trainmesh::v1::SchedulerService::Stub> scheduler_;
  absl::Duration timeout_;
};

}  // namespace trainmesh::cli
