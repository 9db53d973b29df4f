#include "libs/tls/tls.h"

#include <fstream>
#include <sstream>

#include "absl/base/call_once.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace trainmesh::tls {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read the ", what, " file ", path));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  std::string pem = bytes.str();
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " file ", path, " is not PEM"));
  }
  return pem;
}

struct Process {
  absl::Mutex mu;
  TlsFiles files ABSL_GUARDED_BY(mu);
  std::shared_ptr<grpc::ChannelCredentials> channel ABSL_GUARDED_BY(mu);
  std::shared_ptr<grpc::ServerCredentials> server ABSL_GUARDED_BY(mu);
};

Process& TheProcess() {
  static Process* process = new Process;
  return *process;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files) {
  if (files.cert_file.empty() && files.key_file.empty()) return grpc::InsecureServerCredentials();
  if (files.cert_file.empty() || files.key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate (--tls_cert) and its key (--tls_key)");
  }
  absl::StatusOr<std::string> cert = ReadPem(files.cert_file, "certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(files.key_file, "private key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const TlsFiles& files) {
  if (files.ca_file.empty()) return grpc::InsecureChannelCredentials();
  absl::StatusOr<std::string> roots = ReadPem(files.ca_file, "CA");
  if (!roots.ok()) return roots.status();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = *roots;
  return grpc::SslCredentials(options);
}

absl::Status Configure(const TlsFiles& files) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel = ChannelCredentials(files);
  if (!channel.ok()) return channel.status();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server = ServerCredentials(files);
  if (!server.ok()) return server.status();
  Process& p = TheProcess();
  absl::MutexLock lock(&p.mu);
  p.files = files;
  p.channel = *std::move(channel);
  p.server = *std::move(server);
  return absl::OkStatus();
}

const TlsFiles& Configured() {
  Process& p = TheProcess();
  absl::MutexLock lock(&p.mu);
  return p.files;
}

std::shared_ptr<grpc::ChannelCredentials> ProcessChannelCredentials() {
  Process& p = TheProcess();
  absl::MutexLock lock(&p.mu);
  return p.channel != nullptr ? p.channel : grpc::InsecureChannelCredentials();
}

std::shared_ptr<grpc::ServerCredentials> ProcessServerCredentials() {
  Process& p = TheProcess();
  absl::MutexLock lock(&p.mu);
  return p.server != nullptr ? p.server : grpc::InsecureServerCredentials();
}

std::shared_ptr<grpc::Channel> Channel(const std::string& endpoint, const grpc::ChannelArguments& args) {
  return grpc::CreateCustomChannel(endpoint, ProcessChannelCredentials(), args);
}

}  // namespace trainmesh::tls
