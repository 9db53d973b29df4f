#include "libs/identity/testing/test_keys.h"

#include <cstdlib>
#include <map>

#include "absl/synchronization/mutex.h"

namespace trainmesh::identity::testing {
namespace {

// Key generation is slow under sanitizers: one key per algorithm per process.
SigningKey SharedKey(const std::string& alg) {
  static absl::Mutex mu;
  static auto* keys = new std::map<std::string, SigningKey>;
  absl::MutexLock lock(&mu);
  auto it = keys->find(alg);
  if (it == keys->end()) {
    absl::StatusOr<SigningKey> key = GenerateSigningKey(alg);
    if (!key.ok()) std::abort();
    it = keys->emplace(alg, *key).first;
  }
  return it->second;
}

}  // namespace

TestIssuer::TestIssuer(std::string issuer, std::string alg)
    : issuer_(std::move(issuer)), key_(SharedKey(alg)) {}

trainmesh::v1::Jwks TestIssuer::Jwks() const {
  trainmesh::v1::Jwks jwks;
  *jwks.add_keys() = *PublicJwk(key_);
  return jwks;
}

std::string TestIssuer::Token(const std::string& subject, std::vector<std::string> scopes,
                              absl::Duration ttl, absl::Time now) const {
  Claims claims;
  claims.subject = subject;
  claims.scopes = std::move(scopes);
  return TokenWith(claims, ttl, now);
}

std::string TestIssuer::TokenWith(const Claims& claims, absl::Duration ttl, absl::Time now,
                                  const std::string& audience) const {
  return *SignToken(key_, issuer_, audience, claims, ttl, now);
}

IssuerConfig TestIssuer::Config() const {
  IssuerConfig config;
  config.issuer = issuer_;
  config.audience = "trainmesh";
  trainmesh::v1::Jwks jwks = Jwks();
  config.jwks = JwksFromFunction([jwks]() -> absl::StatusOr<trainmesh::v1::Jwks> { return jwks; });
  config.scopes_from_token = true;
  config.allow_job_tokens = true;
  return config;
}

std::unique_ptr<Authenticator> AuthenticatorFor(const TestIssuer& issuer) {
  AuthenticatorOptions options;
  options.tokens = std::make_shared<TokenVerifier>(std::vector<IssuerConfig>{issuer.Config()});
  return std::make_unique<Authenticator>(std::move(options));
}

}  // namespace trainmesh::identity::testing
