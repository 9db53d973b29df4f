// A token issuer for tests: a real key pair (made once per process), tokens
// signed with it, and verifiers/authenticators that trust it. No mocks: the
// same signing and verification code the mesh runs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "libs/identity/authenticator.h"
#include "libs/identity/jwt.h"
#include "libs/identity/keys.h"

namespace trainmesh::identity::testing {

class TestIssuer {
 public:
  explicit TestIssuer(std::string issuer = "trainmesh", std::string alg = "RS256");

  const SigningKey& key() const { return key_; }
  const std::string& issuer() const { return issuer_; }
  trainmesh::v1::Jwks Jwks() const;

  // A user token for `subject`.
  std::string Token(const std::string& subject,
                    std::vector<std::string> scopes = {"jobs:read", "jobs:write"},
                    absl::Duration ttl = absl::Hours(1), absl::Time now = absl::Now()) const;
  std::string TokenWith(const Claims& claims, absl::Duration ttl = absl::Hours(1),
                        absl::Time now = absl::Now(), const std::string& audience = "trainmesh") const;

  // Verification settings for tokens of this issuer, as the mesh's own.
  IssuerConfig Config() const;

 private:
  std::string issuer_;
  SigningKey key_;
};

// An authenticator that trusts `issuer` (API keys refused, no rate limits).
std::unique_ptr<Authenticator> AuthenticatorFor(const TestIssuer& issuer);

}  // namespace trainmesh::identity::testing
