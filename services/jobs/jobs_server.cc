#include "services/jobs/jobs_server.h"

#include <fstream>

#include "libs/server/handler.h"
#include "libs/status/grpc_status.h"
#include "services/jobs/feed.h"

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

// Streams an artifact file: each chunk is read on the executor and written
// when the previous write completed.
class DownloadReactor : public grpc::ServerWriteReactor<trainmesh::v1::ArtifactChunk> {
 public:
  DownloadReactor(grpc::CallbackServerContext* context,
                  const trainmesh::v1::DownloadArtifactRequest* request, JobsService* service,
                  const identity::Authenticator* auth, const artifacts::ArtifactStore* store,
                  server::Executor* executor, server::StreamGuards* guards)
      : context_(context),
        request_(request),
        service_(service),
        auth_(auth),
        store_(store),
        executor_(executor),
        guards_(guards) {
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    Next();
  }
  void OnDone() override { delete this; }

 private:
  static constexpr size_t kChunk = 256 << 10;

  void Next() {
    if (!executor_->Submit([this] { Step(); })) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    }
  }

  void Step() {
    static const auto& method = identity::MethodOf("trainmesh.v1.JobService", "DownloadArtifact");
    if (path_.empty()) {
      absl::StatusOr<Principal> caller = auth_->Authorize(*context_, method);
      if (caller.ok() && guards_ != nullptr) {
        // A download holds one of the caller's stream slots; it ends by itself,
        // so a lapsed credential does not cut it.
        auto guard = guards_->Open(
            *caller, [] { return absl::OkStatus(); }, [](absl::Status) {});
        if (guard.ok()) {
          guard_ = *std::move(guard);
        } else {
          caller = guard.status();
        }
      }
      absl::StatusOr<trainmesh::v1::Job> job =
          caller.ok() ? service_->ArtifactOf(*caller, *request_) : caller.status();
      name_ = request_->name().empty() ? "model.pt" : request_->name();
      absl::StatusOr<std::string> path =
          !job.ok()           ? job.status()
          : store_ == nullptr ? absl::UnavailableError("this replica has no artifact store")
                              : store_->Path(job->id(), name_);
      server::LogCall(method, path.status(), absl::ZeroDuration(),
                      caller.ok() ? caller->subject() : "");
      if (!path.ok()) return Finish(status::ToGrpcStatus(path.status()));
      path_ = *path;
      in_.open(path_, std::ios::binary);
      if (!in_)
        return Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "artifact file is missing"));
      in_.seekg(0, std::ios::end);
      total_ = in_.tellg();
      in_.seekg(0);
    }
    chunk_.Clear();
    chunk_.set_name(name_);
    chunk_.set_offset(offset_);
    if (offset_ == 0) chunk_.set_total_size(total_);
    std::string* data = chunk_.mutable_data();
    data->resize(kChunk);
    in_.read(data->data(), kChunk);
    data->resize(static_cast<size_t>(in_.gcount()));
    offset_ += static_cast<int64_t>(data->size());
    // Hashed as sent: the first byte goes out at once, whatever the size, and
    // the digest on the last chunk is of exactly the bytes that were sent.
    hash_.Update(*data);
    if (offset_ >= total_ || data->empty()) {
      chunk_.set_sha256(hash_.HexDigest());
      StartWriteAndFinish(&chunk_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    StartWrite(&chunk_);
  }

  grpc::CallbackServerContext* context_;
  const trainmesh::v1::DownloadArtifactRequest* request_;
  JobsService* service_;
  const identity::Authenticator* auth_;
  const artifacts::ArtifactStore* store_;
  server::Executor* executor_;
  server::StreamGuards* guards_;
  std::unique_ptr<server::StreamGuards::Guard> guard_;
  std::string name_, path_;
  artifacts::Sha256 hash_;
  std::ifstream in_;
  int64_t total_ = 0, offset_ = 0;
  trainmesh::v1::ArtifactChunk chunk_;
};

}  // namespace

grpc::ServerWriteReactor<trainmesh::v1::ArtifactChunk>* JobsServer::DownloadArtifact(
    grpc::CallbackServerContext* context, const trainmesh::v1::DownloadArtifactRequest* request) {
  return new DownloadReactor(context, request, service_, auth_, artifacts_, executor_, guards_);
}

grpc::ServerWriteReactor<trainmesh::v1::Job>* JobsServer::WatchJobs(
    grpc::CallbackServerContext* context, const trainmesh::v1::WatchJobsRequest* request) {
  static const auto& method = Method("WatchJobs");
  return StartFeed(service_->store(), executor_, hub_, guards_,
                   server::StreamCaller(auth_, context, method), *request);
}

grpc::ServerWriteReactor<trainmesh::v1::JobEvent>* JobsServer::WatchJob(
    grpc::CallbackServerContext* context, const trainmesh::v1::WatchJobRequest* request) {
  static const auto& method = Method("WatchJob");
  if (absl::Status invalid = JobsService::ValidateWatch(*request); !invalid.ok()) {
    server::LogCall(method, invalid, absl::ZeroDuration(), "");
    return new RefusedStream(invalid);
  }
  return StartWatch(service_, executor_, hub_, guards_,
                    server::StreamCaller(auth_, context, method), *request);
}

}  // namespace trainmesh::jobs
