// Password hashing with argon2id (libargon2). The encoded hash carries its
// own parameters and salt, so parameters can be raised later without
// invalidating stored passwords.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace trainmesh::auth {

struct PasswordParams {
  // OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
  uint32_t memory_kib = 19456;
  uint32_t iterations = 2;
  uint32_t lanes = 1;
};

absl::StatusOr<std::string> HashPassword(absl::string_view password, const PasswordParams& params);

// True when `password` matches `encoded`. Constant time in the password.
bool VerifyPassword(absl::string_view password, const std::string& encoded);

}  // namespace trainmesh::auth
