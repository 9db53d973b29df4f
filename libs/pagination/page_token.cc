#include "libs/pagination/page_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/status/field_violations.h"

namespace trainmesh::pagination {
namespace {

constexpr size_t kMacBytes = 16;

absl::Status BadToken() {
  return status::InvalidField("page_token",
                              "is not a page token of this listing (altered, or issued for "
                              "other filters); start again without a token");
}

}  // namespace

std::string PageTokenCodec::Mac(absl::string_view query, absl::string_view position) const {
  std::string input = absl::StrCat(query.size(), ":", query, position);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), kMacBytes);
}

std::string PageTokenCodec::Encode(absl::string_view query, absl::string_view position) const {
  std::string raw = absl::StrCat(position, Mac(query, position));
  std::string token;
  absl::WebSafeBase64Escape(raw, &token);
  return token;
}

absl::StatusOr<std::string> PageTokenCodec::Decode(absl::string_view query,
                                                   absl::string_view token) const {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw) || raw.size() < kMacBytes) return BadToken();
  std::string position = raw.substr(0, raw.size() - kMacBytes);
  const std::string expected = Mac(query, position);
  if (CRYPTO_memcmp(expected.data(), raw.data() + position.size(), kMacBytes) != 0) {
    return BadToken();
  }
  return position;
}

}  // namespace trainmesh::pagination
