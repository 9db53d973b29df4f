// Signing keys and their public form (JWK), with OpenSSL. The auth service
// generates and rotates RS256/ES256 key pairs; every verifier turns the JWKS it
// fetches back into PEM public keys for libjwt.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::identity {

struct SigningKey {
  std::string kid;
  std::string alg;  // "RS256" or "ES256"
  std::string private_pem;
  std::string public_pem;
};

// A fresh key pair: RSA 2048 for RS256, P-256 for ES256. INVALID_ARGUMENT for
// another algorithm.
absl::StatusOr<SigningKey> GenerateSigningKey(absl::string_view alg);

// The public half as a JWK (kty RSA with n/e, or EC P-256 with x/y), use "sig".
absl::StatusOr<trainmesh::v1::Jwk> PublicJwk(const SigningKey& key);

// A JWK (RSA or EC P-256) as a PEM public key. INVALID_ARGUMENT when malformed.
absl::StatusOr<std::string> JwkToPem(const trainmesh::v1::Jwk& jwk);

// Unpadded base64url (RFC 7515).
std::string Base64UrlEncode(absl::string_view bytes);
bool Base64UrlDecode(absl::string_view text, std::string* bytes);

}  // namespace trainmesh::identity
