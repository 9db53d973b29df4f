// Identity on every call: reads `authorization: Bearer <token>` from the call,
// verifies it, and enforces the scopes the method declares in its
// (trainmesh.v1.auth) option, so no handler checks scopes by hand.
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "libs/identity/jwt.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::identity {

class Authenticator {
 public:
  explicit Authenticator(JwtConfig config) : config_(std::move(config)) {}
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // The caller of `method`:
  //   no or malformed credential, bad signature, expired -> UNAUTHENTICATED
  //   valid credential without any of the method's scopes -> PERMISSION_DENIED
  // Public methods return an empty principal when no credential is sent.
  absl::StatusOr<trainmesh::v1::Principal> Authorize(
      const grpc::ServerContextBase& context,
      const google::protobuf::MethodDescriptor& method) const;

  // The same check for a bare credential (tests, other transports).
  absl::StatusOr<trainmesh::v1::Principal> AuthorizeCredential(
      absl::string_view authorization_header,
      const google::protobuf::MethodDescriptor& method) const;

 private:
  // Verifying a signature costs more than the rest of a cheap RPC; a client
  // sends the same token many times. Verified tokens are remembered until
  // they expire (a token cannot be revoked before then anyway).
  absl::StatusOr<trainmesh::v1::Principal> Verify(absl::string_view token) const;

  static constexpr size_t kCacheEntries = 4096;
  JwtConfig config_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, trainmesh::v1::Principal> verified_
      ABSL_GUARDED_BY(mu_);
};

// The descriptor of `service`.`method` from the compiled-in protos; aborts if
// absent (a programming error, caught by every test that calls the method).
const google::protobuf::MethodDescriptor& MethodOf(const std::string& service,
                                                   const std::string& method);

}  // namespace trainmesh::identity
