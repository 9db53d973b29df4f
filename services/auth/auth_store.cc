#include "services/auth/auth_store.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "libs/status/status_macros.h"
#include "pqxx/pqxx"

namespace trainmesh::auth {
namespace {

using google::protobuf::util::TimeUtil;

std::string Micros(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::bigint");
}

const std::string& UserColumns() {
  static const auto* c = new std::string(absl::StrCat(
      "id::text, name, email, admin, max_running_jobs, ", Micros("created_at"), ", password_hash"));
  return *c;
}

StoredUser RowToUser(const pqxx::row& r) {
  StoredUser out;
  out.user.set_id(r[0].as<std::string>());
  out.user.set_name(r[1].as<std::string>());
  out.user.set_email(r[2].as<std::string>());
  out.user.set_admin(r[3].as<bool>());
  out.user.set_max_running_jobs(r[4].as<int>());
  *out.user.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(r[5].as<int64_t>());
  out.password_hash = r[6].as<std::string>();
  return out;
}

const std::string& KeyColumns() {
  static const auto* c = new std::string(absl::StrCat(
      "id::text, name, prefix, array_to_string(scopes, ' '), owner, ", Micros("created_at"), ", ",
      Micros("expires_at"), ", ", Micros("last_used_at"), ", ", Micros("revoked_at"),
      ", hash"));
  return *c;
}

StoredApiKey RowToKey(const pqxx::row& r) {
  StoredApiKey out;
  trainmesh::v1::ApiKey& k = out.key;
  k.set_id(r[0].as<std::string>());
  k.set_name(r[1].as<std::string>());
  k.set_prefix(r[2].as<std::string>());
  for (absl::string_view s : absl::StrSplit(r[3].as<std::string>(), ' ', absl::SkipEmpty())) {
    k.add_scopes(std::string(s));
  }
  k.set_owner(r[4].as<std::string>());
  *k.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(r[5].as<int64_t>());
  if (!r[6].is_null()) *k.mutable_expire_time() = TimeUtil::MicrosecondsToTimestamp(r[6].as<int64_t>());
  if (!r[7].is_null()) {
    *k.mutable_last_used_time() = TimeUtil::MicrosecondsToTimestamp(r[7].as<int64_t>());
  }
  if (!r[8].is_null()) *k.mutable_revoke_time() = TimeUtil::MicrosecondsToTimestamp(r[8].as<int64_t>());
  out.hash = r[9].as<std::string>();
  return out;
}

identity::SigningKey RowToSigningKey(const pqxx::row& r) {
  identity::SigningKey key;
  key.kid = r[0].as<std::string>();
  key.alg = r[1].as<std::string>();
  key.private_pem = r[2].as<std::string>();
  key.public_pem = r[3].as<std::string>();
  return key;
}

std::string TimestampParam(const google::protobuf::Timestamp& ts) {
  return absl::StrCat(TimeUtil::TimestampToMicroseconds(ts));
}

}  // namespace

absl::StatusOr<trainmesh::v1::User> AuthStore::CreateUser(const trainmesh::v1::User& user,
                                                          const std::string& password_hash) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<trainmesh::v1::User> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("INSERT INTO auth.users (name, email, password_hash, admin, max_running_jobs)"
                     " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING ",
                     UserColumns()),
        user.name(), user.email(), password_hash, user.admin(), user.max_running_jobs());
    if (r.empty()) {
      return absl::AlreadyExistsError(absl::StrCat("user \"", user.name(), "\" already exists"));
    }
    return RowToUser(r[0]).user;
  });
}

absl::StatusOr<StoredUser> AuthStore::UserByName(const std::string& name) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<StoredUser> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("SELECT ", UserColumns(), " FROM auth.users WHERE name = $1"), name);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("user \"", name, "\" not found"));
    return RowToUser(r[0]);
  });
}

absl::StatusOr<trainmesh::v1::User> AuthStore::UserById(const std::string& id) {
  // Owners from external identity providers are not users of this schema.
  if (id.size() != 36 || id[8] != '-') return absl::NotFoundError(absl::StrCat("user ", id, " not found"));
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<trainmesh::v1::User> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("SELECT ", UserColumns(), " FROM auth.users WHERE id = $1::uuid"), id);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("user ", id, " not found"));
    return RowToUser(r[0]).user;
  });
}

absl::StatusOr<std::vector<trainmesh::v1::User>> AuthStore::ListUsers(const std::string& after_name,
                                                                      int limit) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<trainmesh::v1::User>> {
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", UserColumns(),
                         " FROM auth.users WHERE name > $1 ORDER BY name LIMIT $2"),
            after_name, limit);
        std::vector<trainmesh::v1::User> users;
        for (const auto& row : r) users.push_back(RowToUser(row).user);
        return users;
      });
}

absl::StatusOr<identity::SigningKey> AuthStore::ActiveKey() {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<identity::SigningKey> {
    pqxx::result r = tx.exec(
        "SELECT kid, alg, private_pem, public_pem FROM auth.signing_keys WHERE retired_at IS NULL");
    if (r.empty()) return absl::NotFoundError("no active signing key");
    return RowToSigningKey(r[0]);
  });
}

absl::StatusOr<identity::SigningKey> AuthStore::EnsureActiveKey(const identity::SigningKey& key) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<identity::SigningKey> {
    tx.exec_params(
        "INSERT INTO auth.signing_keys (kid, alg, private_pem, public_pem) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        key.kid, key.alg, key.private_pem, key.public_pem);
    pqxx::result r = tx.exec(
        "SELECT kid, alg, private_pem, public_pem FROM auth.signing_keys WHERE retired_at IS NULL");
    if (r.empty()) return absl::AbortedError("signing key vanished; retry");
    return RowToSigningKey(r[0]);
  });
}

absl::Status AuthStore::Rotate(const identity::SigningKey& key) {
  return pool_->InTransaction([&](pqxx::work& tx) {
    // Rotations serialise; readers are not blocked.
    tx.exec("LOCK TABLE auth.signing_keys IN SHARE ROW EXCLUSIVE MODE");
    tx.exec("UPDATE auth.signing_keys SET retired_at = clock_timestamp() WHERE retired_at IS NULL");
    tx.exec_params(
        "INSERT INTO auth.signing_keys (kid, alg, private_pem, public_pem) VALUES ($1, $2, $3, $4)",
        key.kid, key.alg, key.private_pem, key.public_pem);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<identity::SigningKey>> AuthStore::PublicKeys(
    absl::Duration retired_within) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<identity::SigningKey>> {
        pqxx::result r = tx.exec_params(
            "SELECT kid, alg, '', public_pem FROM auth.signing_keys WHERE retired_at IS NULL "
            "OR retired_at > clock_timestamp() - $1::bigint * INTERVAL '1 second' "
            "ORDER BY created_at DESC",
            absl::ToInt64Seconds(retired_within));
        std::vector<identity::SigningKey> keys;
        for (const auto& row : r) keys.push_back(RowToSigningKey(row));
        return keys;
      });
}

absl::StatusOr<trainmesh::v1::ApiKey> AuthStore::CreateApiKey(const trainmesh::v1::ApiKey& key,
                                                              const std::string& hash) {
  const std::string expires = key.has_expire_time() ? TimestampParam(key.expire_time()) : "";
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<trainmesh::v1::ApiKey> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("INSERT INTO auth.api_keys (owner, name, prefix, hash, scopes, expires_at) "
                     "VALUES ($1, $2, $3, $4, string_to_array($5, ' '), "
                     "TIMESTAMPTZ 'epoch' + NULLIF($6, '')::bigint * INTERVAL '1 microsecond') "
                     "RETURNING ",
                     KeyColumns()),
        key.owner(), key.name(), key.prefix(), hash, absl::StrJoin(key.scopes(), " "), expires);
    return RowToKey(r[0]).key;
  });
}

absl::StatusOr<std::vector<trainmesh::v1::ApiKey>> AuthStore::ListApiKeys(
    const std::string& owner, const std::optional<std::pair<int64_t, std::string>>& after,
    int limit) {
  return pool_->Autocommit(
      [&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<trainmesh::v1::ApiKey>> {
        std::string sql = absl::StrCat("SELECT ", KeyColumns(), " FROM auth.api_keys WHERE owner = $1");
        pqxx::result r;
        if (after.has_value()) {
          absl::StrAppend(&sql,
                          " AND (created_at, id) < (TIMESTAMPTZ 'epoch' + $2::bigint * INTERVAL "
                          "'1 microsecond', $3::uuid) ORDER BY created_at DESC, id DESC LIMIT $4");
          r = tx.exec_params(sql, owner, after->first, after->second, limit);
        } else {
          absl::StrAppend(&sql, " ORDER BY created_at DESC, id DESC LIMIT $2");
          r = tx.exec_params(sql, owner, limit);
        }
        std::vector<trainmesh::v1::ApiKey> keys;
        for (const auto& row : r) keys.push_back(RowToKey(row).key);
        return keys;
      });
}

absl::StatusOr<trainmesh::v1::ApiKey> AuthStore::RevokeApiKey(const std::string& owner,
                                                              const std::string& id) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<trainmesh::v1::ApiKey> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("UPDATE auth.api_keys SET revoked_at = coalesce(revoked_at, clock_timestamp()) "
                     "WHERE id::text = $1 AND owner = $2 RETURNING ",
                     KeyColumns()),
        id, owner);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("API key ", id, " not found"));
    return RowToKey(r[0]).key;
  });
}

absl::StatusOr<StoredApiKey> AuthStore::ApiKeyByPrefix(const std::string& prefix) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) -> absl::StatusOr<StoredApiKey> {
    pqxx::result r = tx.exec_params(
        absl::StrCat("SELECT ", KeyColumns(), " FROM auth.api_keys WHERE prefix = $1"), prefix);
    if (r.empty()) return absl::NotFoundError("no such API key");
    return RowToKey(r[0]);
  });
}

absl::Status AuthStore::TouchApiKey(const std::string& id) {
  return pool_->Autocommit([&](pqxx::nontransaction& tx) {
    tx.exec_params(
        "UPDATE auth.api_keys SET last_used_at = clock_timestamp() WHERE id::text = $1 AND "
        "(last_used_at IS NULL OR last_used_at < clock_timestamp() - INTERVAL '1 minute')",
        id);
    return absl::OkStatus();
  });
}

}  // namespace trainmesh::auth
