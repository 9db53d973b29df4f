#include "libs/identity/api_keys.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace trainmesh::identity {
namespace {

constexpr char kAlphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
constexpr size_t kPrefixChars = 8;
constexpr size_t kSecretChars = 40;  // ~235 bits

std::string RandomChars(size_t n) {
  std::string out;
  const size_t alphabet = sizeof(kAlphabet) - 1;
  while (out.size() < n) {
    unsigned char bytes[64];
    RAND_bytes(bytes, sizeof(bytes));
    for (unsigned char b : bytes) {
      // Rejection sampling keeps every character equally likely.
      if (b >= 256 - (256 % alphabet)) continue;
      out.push_back(kAlphabet[b % alphabet]);
      if (out.size() == n) break;
    }
  }
  return out;
}

}  // namespace

NewApiKey GenerateApiKey() {
  NewApiKey key;
  key.prefix = absl::StrCat("tm_", RandomChars(kPrefixChars));
  key.secret = absl::StrCat(key.prefix, "_", RandomChars(kSecretChars));
  key.hash = HashApiKey(key.secret);
  return key;
}

std::string ApiKeyPrefix(absl::string_view key) {
  if (!absl::StartsWith(key, "tm_") || key.size() != 3 + kPrefixChars + 1 + kSecretChars ||
      key[3 + kPrefixChars] != '_') {
    return "";
  }
  return std::string(key.substr(0, 3 + kPrefixChars));
}

bool LooksLikeApiKey(absl::string_view credential) { return absl::StartsWith(credential, "tm_"); }

std::string HashApiKey(absl::string_view key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::StatusOr<trainmesh::v1::Principal> CachingApiKeyResolver::Resolve(absl::string_view key,
                                                                         absl::Time now) {
  // Keyed by the key itself: it arrives with every request anyway, and a
  // SHA-256 per call (OpenSSL 3 fetches the digest under a global lock) cost
  // more than the rest of the lookup.
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.until > now) return it->second.answer;
  }
  absl::StatusOr<trainmesh::v1::Principal> answer = fetch_(key);
  absl::Time until = now + ttl_;
  if (answer.ok()) {
    if (answer->has_expire_time()) {
      until = std::min(until, absl::FromUnixSeconds(answer->expire_time().seconds()));
    }
  } else if (answer.status().code() == absl::StatusCode::kUnauthenticated) {
    until = now + std::min(ttl_, absl::Seconds(2));
  } else {
    return answer;  // the resolver is unreachable: ask again next time
  }
  absl::MutexLock lock(&mu_);
  if (cache_.size() >= kMaxEntries) cache_.clear();
  cache_[std::string(key)] = Entry{answer, until};
  return answer;
}

}  // namespace trainmesh::identity
