#include "libs/identity/jwt.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "libs/identity/keys.h"
#include "libs/json/json.h"
#include "libs/status/status_macros.h"

namespace trainmesh::identity {
namespace {

// Signing keys parsed once: OpenSSL 3 takes about a millisecond to decode a
// PEM key, as long as the signature itself. Few keys live at once (rotation
// retires them), so the cache is small; it starts over past 16.
absl::StatusOr<std::shared_ptr<EVP_PKEY>> ParsedPrivateKey(const std::string& pem) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache = new absl::flat_hash_map<std::string, std::shared_ptr<EVP_PKEY>>();
  absl::MutexLock lock(&mu);
  if (auto it = cache->find(pem); it != cache->end()) return it->second;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  EVP_PKEY* raw =
      bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (raw == nullptr) return absl::InternalError("cannot read the signing key");
  if (cache->size() >= 16) cache->clear();
  std::shared_ptr<EVP_PKEY> key(raw, &EVP_PKEY_free);
  cache->emplace(pem, key);
  return key;
}

// The JWS signature of `input`: RSASSA-PKCS1-v1_5, or for ES256 the raw
// R || S pair of 32 bytes each (RFC 7518 3.4), not OpenSSL's DER.
absl::StatusOr<std::string> SignSha256(EVP_PKEY* key, bool ec, absl::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (ctx == nullptr || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1) {
    return absl::InternalError("cannot sign token");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len, data,
                     input.size()) != 1) {
    return absl::InternalError("cannot sign token");
  }
  signature.resize(len);
  if (!ec) return signature;
  const auto* der = reinterpret_cast<const unsigned char*>(signature.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
      d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(len)), &ECDSA_SIG_free);
  if (sig == nullptr) return absl::InternalError("cannot sign token");
  const BIGNUM* r = nullptr;
  const BIGNUM* sv = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &sv);
  std::string raw(64, '\0');
  if (BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32) != 32 ||
      BN_bn2binpad(sv, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32) != 32) {
    return absl::InternalError("cannot sign token");
  }
  return raw;
}

}  // namespace

Claims JobClaims(std::string owner, std::string job_id, int attempt, std::string agent_id) {
  Claims claims;
  claims.kind = "job";
  claims.subject = std::move(owner);
  claims.job_id = std::move(job_id);
  claims.attempt = attempt;
  claims.agent_id = std::move(agent_id);
  claims.scopes = {"job:report"};
  return claims;
}

absl::StatusOr<std::string> SignToken(const SigningKey& key, absl::string_view issuer,
                                      absl::string_view audience, const Claims& claims,
                                      absl::Duration ttl, absl::Time now) {
  const bool ec = key.alg == "ES256";
  if (!ec && key.alg != "RS256")
    return absl::InvalidArgumentError("signing key must be RS256 or ES256");
  TM_ASSIGN_OR_RETURN(std::shared_ptr<EVP_PKEY> pkey, ParsedPrivateKey(key.private_pem));
  std::string header = absl::StrCat("{\"alg\":\"", key.alg, "\",\"typ\":\"JWT\",\"kid\":");
  json::AppendString(&header, key.kid);
  header += "}";
  const int64_t iat = absl::ToUnixSeconds(now);
  std::string body = "{";
  auto text = [&body](const char* name, absl::string_view value) {
    if (body.size() > 1) body += ",";
    json::AppendString(&body, name);
    body += ":";
    json::AppendString(&body, value);
  };
  auto number = [&body](const char* name, int64_t value) {
    if (body.size() > 1) body += ",";
    json::AppendString(&body, name);
    absl::StrAppend(&body, ":", value);
  };
  text("sub", claims.subject);
  text("iss", issuer);
  text("aud", audience);
  text("scope", absl::StrJoin(claims.scopes, " "));
  text(kKindClaim, claims.kind);
  number("iat", iat);
  number("nbf", iat);
  number("exp", absl::ToUnixSeconds(now + ttl));
  if (!claims.name.empty()) text("name", claims.name);
  if (!claims.job_id.empty()) {
    text(kJobIdClaim, claims.job_id);
    number(kAttemptClaim, claims.attempt);
    text(kAgentIdClaim, claims.agent_id);
  }
  if (!claims.url.empty()) text(kUrlClaim, claims.url);
  body += "}";
  std::string token = absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(body));
  TM_ASSIGN_OR_RETURN(std::string signature, SignSha256(pkey.get(), ec, token));
  absl::StrAppend(&token, ".", Base64UrlEncode(signature));
  return token;
}

bool LooksLikeJwt(absl::string_view credential) {
  std::vector<absl::string_view> parts = absl::StrSplit(credential, '.');
  return parts.size() == 3 && !parts[0].empty() && !parts[1].empty();
}

absl::StatusOr<UnverifiedToken> PeekToken(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return absl::UnauthenticatedError("invalid token: not a JWT");
  std::string header_json, claims_json;
  google::protobuf::Struct header;
  UnverifiedToken out;
  if (!Base64UrlDecode(parts[0], &header_json) || !Base64UrlDecode(parts[1], &claims_json) ||
      !json::ToStruct(header_json, &header).ok() ||
      !json::ToStruct(claims_json, &out.claims).ok()) {
    return absl::UnauthenticatedError("invalid token: malformed header or claims");
  }
  auto text = [&header](const char* name) {
    auto it = header.fields().find(name);
    return it == header.fields().end() ? std::string() : it->second.string_value();
  };
  out.alg = text("alg");
  out.kid = text("kid");
  return out;
}

}  // namespace trainmesh::identity
