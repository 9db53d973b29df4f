#include "libs/identity/verifier.h"

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/time/clock.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "libs/identity/jwt.h"
#include "libs/identity/keys.h"
#include "libs/log/log.h"

namespace trainmesh::identity {
namespace {

using trainmesh::v1::Principal;

constexpr size_t kMaxJwksBytes = 1 << 20;

class FunctionSource : public JwksSource {
 public:
  explicit FunctionSource(std::function<absl::StatusOr<trainmesh::v1::Jwks>()> fn)
      : fn_(std::move(fn)) {}
  absl::StatusOr<trainmesh::v1::Jwks> Fetch() override { return fn_(); }

 private:
  std::function<absl::StatusOr<trainmesh::v1::Jwks>()> fn_;
};

class FileSource : public JwksSource {
 public:
  explicit FileSource(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<trainmesh::v1::Jwks> Fetch() override {
    std::ifstream in(path_);
    if (!in) return absl::UnavailableError(absl::StrCat("cannot read JWKS file ", path_));
    std::stringstream ss;
    ss << in.rdbuf();
    return ParseJwks(ss.str());
  }

 private:
  std::string path_;
};

size_t CollectBody(char* data, size_t size, size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * n > kMaxJwksBytes) return 0;  // aborts the transfer
  body->append(data, size * n);
  return size * n;
}

class UrlSource : public JwksSource {
 public:
  explicit UrlSource(std::string url) : url_(std::move(url)) {}
  absl::StatusOr<trainmesh::v1::Jwks> Fetch() override {
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
    std::string body;
    curl_easy_setopt(curl.get(), CURLOPT_URL, url_.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, CollectBody);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(curl.get());
    long code = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
      return absl::UnavailableError(absl::StrCat("cannot fetch JWKS from ", url_, ": ",
                                                 rc != CURLE_OK ? curl_easy_strerror(rc)
                                                                : absl::StrCat("HTTP ", code)));
    }
    return ParseJwks(body);
  }

 private:
  std::string url_;
};

std::string Text(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) return "";
  if (it->second.has_string_value()) return it->second.string_value();
  return "";
}

bool Number(const google::protobuf::Struct& s, const std::string& name, double* out) {
  auto it = s.fields().find(name);
  if (it == s.fields().end() || !it->second.has_number_value()) return false;
  *out = it->second.number_value();
  return true;
}

bool AudienceMatches(const google::protobuf::Struct& claims, const std::string& audience) {
  auto it = claims.fields().find("aud");
  if (it == claims.fields().end()) return false;
  if (it->second.has_string_value()) return it->second.string_value() == audience;
  if (it->second.has_list_value()) {
    for (const auto& v : it->second.list_value().values()) {
      if (v.string_value() == audience) return true;
    }
  }
  return false;
}

// The key as an OpenSSL object, parsed from its PEM once.
std::shared_ptr<EVP_PKEY> ParsePublicKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return nullptr;
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

// Checks the JWS signature of `token` with `key` under `alg` (RS256/384/512:
// PKCS#1 v1.5; ES256: ECDSA P-256 with the raw r||s signature of RFC 7518).
// OpenSSL does the cryptography; libjwt would re-parse the PEM key on every
// call, which cost ~0.7 ms per first sight of a token.
bool SignatureValid(absl::string_view token, const std::string& alg, EVP_PKEY* key) {
  const size_t last_dot = token.rfind('.');
  if (last_dot == absl::string_view::npos) return false;
  const absl::string_view signed_part = token.substr(0, last_dot);
  std::string signature;
  if (!Base64UrlDecode(token.substr(last_dot + 1), &signature)) return false;
  const EVP_MD* md = alg == "RS384" ? EVP_sha384() : alg == "RS512" ? EVP_sha512() : EVP_sha256();
  if (alg == "ES256") {
    if (signature.size() != 64) return false;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()), 32, nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()) + 32, 32, nullptr);
    ECDSA_SIG_set0(sig, r, s);
    unsigned char* der = nullptr;
    const int der_len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (der_len <= 0) return false;
    signature.assign(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
    OPENSSL_free(der);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(),
                          reinterpret_cast<const unsigned char*>(signed_part.data()),
                          signed_part.size()) == 1;
}

}  // namespace

std::shared_ptr<JwksSource> JwksFromFunction(
    std::function<absl::StatusOr<trainmesh::v1::Jwks>()> fetch) {
  return std::make_shared<FunctionSource>(std::move(fetch));
}
std::shared_ptr<JwksSource> JwksFromFile(std::string path) {
  return std::make_shared<FileSource>(std::move(path));
}
std::shared_ptr<JwksSource> JwksFromUrl(std::string url) {
  return std::make_shared<UrlSource>(std::move(url));
}

absl::StatusOr<trainmesh::v1::Jwks> ParseJwks(const std::string& json) {
  trainmesh::v1::Jwks jwks;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(json, &jwks, options);
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("malformed JWKS: ", status.message().as_string()));
  }
  return jwks;
}

absl::StatusOr<std::vector<IssuerConfig>> TrustedIssuersFromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  trainmesh::v1::TrustedIssuers config;
  auto status = google::protobuf::util::JsonStringToMessage(ss.str(), &config);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", status.message().as_string()));
  }
  std::vector<IssuerConfig> out;
  for (const auto& t : config.issuers()) {
    if (t.issuer().empty() || (t.jwks_url().empty() == t.jwks_file().empty())) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": each issuer needs `issuer` and one of jwksUrl, jwksFile"));
    }
    IssuerConfig c;
    c.issuer = t.issuer();
    c.audience = t.audience();
    c.jwks = t.jwks_url().empty() ? JwksFromFile(t.jwks_file()) : JwksFromUrl(t.jwks_url());
    if (!t.subject_claim().empty()) c.subject_claim = t.subject_claim();
    c.subject_prefix = t.subject_prefix();
    if (!t.name_claim().empty()) c.name_claim = t.name_claim();
    if (t.default_scopes_size() > 0) {
      c.default_scopes.assign(t.default_scopes().begin(), t.default_scopes().end());
    }
    if (t.clock_skew_seconds() > 0) c.clock_skew = absl::Seconds(t.clock_skew_seconds());
    out.push_back(std::move(c));
  }
  return out;
}

TokenVerifier::TokenVerifier(std::vector<IssuerConfig> issuers) {
  for (auto& config : issuers) {
    auto issuer = std::make_unique<Issuer>();
    issuer->config = std::move(config);
    const absl::Duration gap = issuer->config.min_fetch_gap;
    issuer->fetch_budget = std::make_unique<RateLimiter>(std::map<std::string, RateLimit>{
        {"fetch",
         {gap > absl::ZeroDuration() ? 1 / absl::ToDoubleSeconds(gap) : 0,
          static_cast<double>(std::max(1, issuer->config.fetch_burst))}}});
    issuers_.push_back(std::move(issuer));
  }
}

void TokenVerifier::Refresh(Issuer& issuer) {
  absl::StatusOr<trainmesh::v1::Jwks> jwks = issuer.config.jwks->Fetch();
  absl::flat_hash_map<std::string, Key> keys;
  if (jwks.ok()) {
    for (const auto& jwk : jwks->keys()) {
      if (!jwk.use().empty() && jwk.use() != "sig") continue;
      // A key without "alg" gets the algorithm its type implies; the pin holds.
      std::string alg = jwk.alg();
      if (alg.empty()) alg = jwk.kty() == "EC" ? "ES256" : "RS256";
      const bool rsa_alg = alg == "RS256" || alg == "RS384" || alg == "RS512";
      if ((jwk.kty() == "RSA" && !rsa_alg) || (jwk.kty() == "EC" && alg != "ES256") ||
          (jwk.kty() != "RSA" && jwk.kty() != "EC")) {
        continue;  // never an HMAC or "none" key
      }
      absl::StatusOr<std::string> pem = JwkToPem(jwk);
      std::shared_ptr<EVP_PKEY> pkey = pem.ok() ? ParsePublicKey(*pem) : nullptr;
      if (pkey == nullptr) {
        TM_LOG(Warning, "skipping unusable key").With("kid", jwk.kid()).With("error", pem.status());
        continue;
      }
      keys[jwk.kid()] = Key{alg, std::move(pkey)};
    }
  } else {
    TM_LOG(Warning, "cannot refresh signing keys")
        .With("issuer", issuer.config.issuer)
        .With("error", jwks.status());
  }
  absl::MutexLock lock(&issuer.mu);
  issuer.fetching = false;
  if (!jwks.ok()) {
    issuer.last_error = jwks.status();
    return;  // the keys already loaded stay in use
  }
  issuer.last_error = absl::OkStatus();
  issuer.keys = std::move(keys);
  issuer.fetched = absl::Now();
}

absl::StatusOr<TokenVerifier::Key> TokenVerifier::FindKey(Issuer& issuer, const std::string& kid) {
  const IssuerConfig& config = issuer.config;
  auto unknown = [&kid] {
    return absl::UnauthenticatedError(absl::StrCat("invalid token: unknown key id \"", kid, "\""));
  };
  absl::MutexLock lock(&issuer.mu);
  if (issuer.fetched == absl::InfinitePast() && issuer.fetching) {
    // The first requests after start all need the one initial fetch: wait for
    // it rather than refusing good tokens or fetching once each.
    issuer.mu.Await(absl::Condition(
        +[](bool* fetching) { return !*fetching; }, &issuer.fetching));
  }
  // Read after any wait: a time taken before another request's fetch would
  // make the ages below negative.
  const absl::Time now = absl::Now();
  const bool loaded = issuer.fetched != absl::InfinitePast();
  auto it = issuer.keys.find(kid);
  const bool found = it != issuer.keys.end();
  if (found && now - issuer.fetched < config.refresh_interval) return it->second;
  if (!found && loaded) {
    auto missed = issuer.missed.find(kid);
    if (missed != issuer.missed.end() && now - missed->second < config.min_refresh_interval) {
      return unknown();
    }
  }
  if (issuer.fetching || !issuer.fetch_budget->Take("fetch", "", now).ok()) {
    if (found) return it->second;  // stale; a refresh comes later
    // Nothing says the kid is bad (it may be a key rotated in a moment ago):
    // retry shortly, never a refusal that signs a user out. Not remembered.
    if (!issuer.last_error.ok()) return issuer.last_error;
    absl::Status later = RetryLater(
        loaded ? absl::StrCat("key id \"", kid, "\" is not known yet: signing keys are being refreshed")
               : "signing keys are not loaded yet",
        std::max(config.min_fetch_gap, absl::Milliseconds(100)));
    absl::Status unavailable(absl::StatusCode::kUnavailable, later.message());
    later.ForEachPayload([&unavailable](absl::string_view type_url, const absl::Cord& payload) {
      unavailable.SetPayload(type_url, payload);
    });
    return unavailable;
  }
  // Fetch on this request, then answer from what the fetch found (a key
  // withdrawn from the JWKS is refused; a failed fetch keeps the keys).
  issuer.fetching = true;
  issuer.mu.Unlock();
  Refresh(issuer);
  issuer.mu.Lock();
  it = issuer.keys.find(kid);
  if (it != issuer.keys.end()) return it->second;
  if (!issuer.last_error.ok()) return issuer.last_error;
  if (issuer.missed.size() >= 1024) issuer.missed.clear();
  issuer.missed[kid] = absl::Now();
  return unknown();
}

absl::StatusOr<Principal> TokenVerifier::Verify(absl::string_view token, absl::Time now) {
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = verified_.find(token);
    if (it != verified_.end()) {
      // The same expiry rule as below, skew included.
      if (absl::FromUnixSeconds(it->second.expire_time().seconds()) >= now) return it->second;
      verified_.erase(it);
    }
  }
  absl::StatusOr<UnverifiedToken> peek = PeekToken(token);
  if (!peek.ok()) return peek.status();
  const std::string iss = Text(peek->claims, "iss");
  Issuer* issuer = nullptr;
  for (auto& candidate : issuers_) {
    if (candidate->config.issuer == iss) issuer = candidate.get();
  }
  if (issuer == nullptr) {
    return absl::UnauthenticatedError(absl::StrCat("invalid token: untrusted issuer \"", iss, "\""));
  }
  const IssuerConfig& config = issuer->config;
  if (peek->alg.empty() || peek->alg == "none" || absl::StartsWith(peek->alg, "HS")) {
    return absl::UnauthenticatedError(
        absl::StrCat("invalid token: algorithm \"", peek->alg, "\" is not accepted"));
  }
  absl::StatusOr<Key> key = FindKey(*issuer, peek->kid);
  if (!key.ok()) return key.status();
  if (peek->alg != key->alg) {
    return absl::UnauthenticatedError(absl::StrCat("invalid token: algorithm ", peek->alg,
                                                   " does not match key ", peek->kid));
  }
  if (!SignatureValid(token, key->alg, key->pkey.get())) {
    return absl::UnauthenticatedError("invalid token: bad signature");
  }
  const google::protobuf::Struct& claims = peek->claims;
  if (!config.audience.empty() && !AudienceMatches(claims, config.audience)) {
    return absl::UnauthenticatedError("invalid token: wrong audience");
  }
  double exp = 0, nbf = 0;
  if (!Number(claims, "exp", &exp)) return absl::UnauthenticatedError("invalid token: no expiry");
  if (absl::FromUnixSeconds(static_cast<int64_t>(exp)) + config.clock_skew < now) {
    return absl::UnauthenticatedError("token expired");
  }
  if (Number(claims, "nbf", &nbf) &&
      absl::FromUnixSeconds(static_cast<int64_t>(nbf)) - config.clock_skew > now) {
    return absl::UnauthenticatedError("token not valid yet");
  }
  const std::string subject = Text(claims, config.subject_claim);
  if (subject.empty()) return absl::UnauthenticatedError("invalid token: no subject");
  Principal principal;
  principal.set_subject(config.subject_prefix + subject);
  principal.set_issuer(iss);
  principal.set_name(Text(claims, config.name_claim));
  principal.mutable_expire_time()->set_seconds(
      absl::ToUnixSeconds(absl::FromUnixSeconds(static_cast<int64_t>(exp)) + config.clock_skew));
  const std::string kind = Text(claims, kKindClaim);
  if (kind == "job") {
    if (!config.allow_job_tokens) {
      return absl::UnauthenticatedError("invalid token: job tokens come from the mesh only");
    }
    principal.set_kind(Principal::JOB);
    principal.set_job_id(Text(claims, kJobIdClaim));
    double attempt = 0;
    Number(claims, kAttemptClaim, &attempt);
    principal.set_attempt(static_cast<int>(attempt));
    principal.set_agent_id(Text(claims, kAgentIdClaim));
  } else if (kind == "url") {
    if (!config.allow_job_tokens) {
      return absl::UnauthenticatedError("invalid token: signed URLs come from the mesh only");
    }
    principal.set_kind(Principal::URL);
    principal.set_url(Text(claims, kUrlClaim));
    if (principal.url().empty()) return absl::UnauthenticatedError("invalid token: signed URL without a path");
  } else {
    principal.set_kind(Principal::USER);
  }
  if (config.scopes_from_token) {
    for (absl::string_view s : absl::StrSplit(Text(claims, "scope"), ' ', absl::SkipEmpty())) {
      principal.add_scopes(std::string(s));
    }
  } else {
    for (const auto& s : config.default_scopes) principal.add_scopes(s);
  }
  absl::MutexLock lock(&cache_mu_);
  if (verified_.size() >= kCacheEntries) verified_.clear();
  verified_.emplace(std::string(token), principal);
  return principal;
}

}  // namespace trainmesh::identity
