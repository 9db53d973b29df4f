#include "services/auth/password.h"

#include <argon2.h>
#include <openssl/rand.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace trainmesh::auth {

constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

absl::StatusOr<std::string> HashPassword(absl::string_view password, const PasswordParams& params) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof(salt)) != 1) return absl::InternalError("no randomness for a salt");
  std::vector<char> encoded(argon2_encodedlen(params.iterations, params.memory_kib, params.lanes,
                                              kSaltBytes, kHashBytes, Argon2_id));
  int rc = argon2id_hash_encoded(params.iterations, params.memory_kib, params.lanes,
                                 password.data(), password.size(), salt, sizeof(salt), kHashBytes,
                                 encoded.data(), encoded.size());
  if (rc != ARGON2_OK) {
    return absl::InternalError(absl::StrCat("argon2: ", argon2_error_message(rc)));
  }
  return std::string(encoded.data());
}

bool VerifyPassword(absl::string_view password, const std::string& encoded) {
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

}  // namespace trainmesh::auth
