// TLS on the mesh's gRPC hops: certificate files become server and channel
// credentials in this one place. Each process sets its own files once at
// start-up (a main, from --tls_cert, --tls_key and --tls_ca); every channel it
// opens to another service then verifies that service against the CA, and its
// servers present their certificate. Without files the hop is plaintext (unit
// tests, and a mesh explicitly run without TLS).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace trainmesh::tls {

struct TlsFiles {
  std::string ca_file;    // PEM roots a client trusts (the mesh's CA)
  std::string cert_file;  // PEM certificate chain a server presents
  std::string key_file;   // its PEM private key
};

// Server credentials: TLS with cert_file and key_file, plaintext when both
// are empty. INVALID_ARGUMENT naming the file when one is missing, unreadable
// or not PEM, or only one of the two is given.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files);

// Channel credentials: TLS trusting ca_file, plaintext when it is empty.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const TlsFiles& files);

// This process's files; checked (the errors above) and kept. Call once, before
// any Channel or server is made.
absl::Status Configure(const TlsFiles& files);
const TlsFiles& Configured();

// The credentials every channel and server of this process uses.
std::shared_ptr<grpc::ChannelCredentials> ProcessChannelCredentials();
std::shared_ptr<grpc::ServerCredentials> ProcessServerCredentials();

// A channel to another service of the mesh, with this process's credentials.
std::shared_ptr<grpc::Channel> Channel(const std::string& endpoint,
                                       const grpc::ChannelArguments& args = grpc::ChannelArguments());

}  // namespace trainmesh::tls
