// The auth repository: the `auth` schema (users, signing_keys, api_keys).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/identity/keys.h"
#include "libs/pg/pool.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::auth {

struct StoredUser {
  trainmesh::v1::User user;
  std::string password_hash;
};

struct StoredApiKey {
  trainmesh::v1::ApiKey key;
  std::string hash;
};

class AuthStore {
 public:
  explicit AuthStore(pg::ConnectionPool* pool) : pool_(pool) {}

  // ALREADY_EXISTS when the name is taken.
  absl::StatusOr<trainmesh::v1::User> CreateUser(const trainmesh::v1::User& user,
                                                 const std::string& password_hash);
  // NOT_FOUND when there is no such user.
  absl::StatusOr<StoredUser> UserByName(const std::string& name);
  absl::StatusOr<trainmesh::v1::User> UserById(const std::string& id);
  // Ordered by name, after `after_name`.
  absl::StatusOr<std::vector<trainmesh::v1::User>> ListUsers(const std::string& after_name,
                                                             int limit);

  // The key that signs now; NOT_FOUND when there is none yet.
  absl::StatusOr<identity::SigningKey> ActiveKey();
  // Makes `key` the active key if there is none (racing replicas: one wins,
  // all return the winner).
  absl::StatusOr<identity::SigningKey> EnsureActiveKey(const identity::SigningKey& key);
  // Retires the active key and makes `key` active, atomically.
  absl::Status Rotate(const identity::SigningKey& key);
  // Keys tokens may still carry: the active one and those retired less than
  // `retired_within` ago. Private parts left empty.
  absl::StatusOr<std::vector<identity::SigningKey>> PublicKeys(absl::Duration retired_within);

  absl::StatusOr<trainmesh::v1::ApiKey> CreateApiKey(const trainmesh::v1::ApiKey& key,
                                                     const std::string& hash);
  absl::StatusOr<std::vector<trainmesh::v1::ApiKey>> ListApiKeys(
      const std::string& owner, const std::optional<std::pair<int64_t, std::string>>& after,
      int limit);
  // NOT_FOUND unless it is the owner's key. Revoking twice keeps the first time.
  absl::StatusOr<trainmesh::v1::ApiKey> RevokeApiKey(const std::string& owner,
                                                     const std::string& id);
  absl::StatusOr<StoredApiKey> ApiKeyByPrefix(const std::string& prefix);
  // Records use, at most once a minute per key (not a write per call).
  absl::Status TouchApiKey(const std::string& id);

 private:
  pg::ConnectionPool* pool_;
};

}  // namespace trainmesh::auth
