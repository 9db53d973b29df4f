#include "services/auth/auth_service.h"

#include <memory>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/identity/api_keys.h"
#include "libs/identity/authenticator.h"
#include "libs/identity/jwt.h"
#include "libs/identity/verifier.h"
#include "libs/pg/migrations.h"
#include "libs/pg/testing/test_cluster.h"
#include "libs/status/field_violations.h"
#include "pqxx/pqxx"

namespace trainmesh::auth {
const std::vector<pg::Migration>& Migrations();
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using trainmesh::v1::Principal;

class AuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = pg::testing::TestCluster::Get().NewDatabase();
    ASSERT_TRUE(pg::Migrate(dsn_, "auth", Migrations()).ok());
    pool_ = std::make_unique<pg::ConnectionPool>(pg::PoolOptions{.dsn = dsn_, .size = 4});
    store_ = std::make_unique<AuthStore>(pool_.get());
    AuthOptions options;
    options.password = {.memory_kib = 1024, .iterations = 1, .lanes = 1};  // fast for tests
    options.page_token_secret = "test-page-secret";
    service_ = std::make_unique<AuthService>(store_.get(), options);
    ASSERT_TRUE(service_->Init().ok());
    identity::IssuerConfig own;
    own.issuer = "trainmesh";
    own.audience = "trainmesh";
    own.jwks = identity::JwksFromFunction([this] { return service_->GetJwks(); });
    own.scopes_from_token = true;
    own.allow_job_tokens = true;
    own.min_refresh_interval = absl::ZeroDuration();
    own.min_fetch_gap = absl::ZeroDuration();
    verifier_ = std::make_shared<identity::TokenVerifier>(std::vector<identity::IssuerConfig>{own});
    service_->SetVerifier(verifier_);
  }

  trainmesh::v1::User CreateUser(const std::string& name, bool admin = false) {
    trainmesh::v1::CreateUserRequest request;
    request.mutable_user()->set_name(name);
    request.mutable_user()->set_admin(admin);
    request.set_password(name + "-password");
    absl::StatusOr<trainmesh::v1::User> user = service_->CreateUser(request);
    EXPECT_TRUE(user.ok()) << user.status();
    return *user;
  }

  absl::StatusOr<trainmesh::v1::LoginResponse> Login(const std::string& name,
                                                    const std::string& password,
                                                    const std::string& client = "") {
    trainmesh::v1::LoginRequest request;
    request.set_name(name);
    request.set_password(password);
    return service_->Login(request, client);
  }

  Principal As(const trainmesh::v1::User& user, std::vector<std::string> scopes) {
    Principal p;
    p.set_subject(user.id());
    p.set_kind(Principal::USER);
    for (auto& s : scopes) p.add_scopes(s);
    return p;
  }

  void Sql(const std::string& sql) {
    pqxx::connection conn(dsn_);
    pqxx::nontransaction(conn).exec(sql);
  }

  std::string dsn_;
  std::unique_ptr<pg::ConnectionPool> pool_;
  std::unique_ptr<AuthStore> store_;
  std::unique_ptr<AuthService> service_;
  std::shared_ptr<identity::TokenVerifier> verifier_;
};

TEST_F(AuthServiceTest, UsersAreValidatedAndUnique) {
  CreateUser("alice");
  trainmesh::v1::CreateUserRequest bad;
  bad.mutable_user()->set_name("Bad Name");
  bad.set_password("short");
  absl::Status s = service_->CreateUser(bad).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields;
  for (const auto& v : status::FieldViolationsOf(s)) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("user.name", "password"));
  trainmesh::v1::CreateUserRequest again;
  again.mutable_user()->set_name("alice");
  again.set_password("another-password");
  EXPECT_EQ(service_->CreateUser(again).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(AuthServiceTest, PasswordsAreHashedWithArgon2id) {
  CreateUser("alice");
  pqxx::connection conn(dsn_);
  const std::string stored = pqxx::nontransaction(conn)
                                 .exec("SELECT password_hash FROM auth.users WHERE name = 'alice'")[0][0]
                                 .as<std::string>();
  EXPECT_THAT(stored, ::testing::StartsWith("$argon2id$"));
  EXPECT_THAT(stored, Not(HasSubstr("alice-password")));
}

TEST_F(AuthServiceTest, LoginIssuesAVerifiableTokenAndOneMessageForEveryFailure) {
  trainmesh::v1::User alice = CreateUser("alice", /*admin=*/true);
  absl::StatusOr<trainmesh::v1::LoginResponse> session = Login("alice", "alice-password");
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<Principal> p = verifier_->Verify(session->access_token());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->subject(), alice.id());
  EXPECT_EQ(p->name(), "alice");
  EXPECT_THAT(p->scopes(), ElementsAre("jobs:read", "jobs:write", "admin"));
  absl::Status wrong = Login("alice", "nope-nope-nope").status();
  absl::Status unknown = Login("nobody", "alice-password").status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.message(), unknown.message());
}

TEST_F(AuthServiceTest, RotatedKeysKeepVerifyingUntilTheirTokensExpire) {
  CreateUser("alice");
  const std::string before = Login("alice", "alice-password")->access_token();
  absl::StatusOr<trainmesh::v1::RotateSigningKeyResponse> rotated = service_->RotateSigningKey();
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const std::string after = Login("alice", "alice-password")->access_token();
  EXPECT_EQ(identity::PeekToken(after)->kid, rotated->kid());
  EXPECT_NE(identity::PeekToken(before)->kid, rotated->kid());
  absl::StatusOr<trainmesh::v1::Jwks> jwks = service_->GetJwks();
  ASSERT_TRUE(jwks.ok());
  EXPECT_EQ(jwks->keys_size(), 2);
  EXPECT_TRUE(verifier_->Verify(before).ok());
  EXPECT_TRUE(verifier_->Verify(after).ok());
  // Once the retired key's tokens are all past their expiry it leaves the set.
  Sql("UPDATE auth.signing_keys SET retired_at = now() - INTERVAL '1 day' "
      "WHERE retired_at IS NOT NULL");
  jwks = service_->GetJwks();
  ASSERT_EQ(jwks->keys_size(), 1);
  EXPECT_EQ(jwks->keys(0).kid(), rotated->kid());
}

TEST_F(AuthServiceTest, ApiKeysAreShownOnceStoredHashedAndRevocable) {
  trainmesh::v1::User alice = CreateUser("alice");
  trainmesh::v1::CreateApiKeyRequest request;
  request.mutable_api_key()->set_name("ci");
  request.mutable_api_key()->add_scopes("agent");
  absl::StatusOr<trainmesh::v1::CreateApiKeyResponse> created =
      service_->CreateApiKey(As(alice, {"jobs:write"}), request);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string secret = created->secret();
  EXPECT_EQ(identity::ApiKeyPrefix(secret), created->api_key().prefix());
  pqxx::connection conn(dsn_);
  const std::string stored =
      pqxx::nontransaction(conn).exec("SELECT hash FROM auth.api_keys")[0][0].as<std::string>();
  EXPECT_EQ(stored, identity::HashApiKey(secret));
  EXPECT_THAT(stored, Not(HasSubstr(secret.substr(12))));

  absl::StatusOr<Principal> p = service_->ResolveApiKey(secret);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->subject(), alice.id());
  EXPECT_EQ(p->kind(), Principal::API_KEY);
  EXPECT_THAT(p->scopes(), ElementsAre("agent"));
  // Last use is recorded.
  auto listed = service_->ListApiKeys(As(alice, {"jobs:read"}), {});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->api_keys_size(), 1);
  EXPECT_TRUE(listed->api_keys(0).has_last_used_time());
  // A wrong secret with a valid prefix is refused.
  std::string forged = secret;
  forged.back() = forged.back() == 'a' ? 'b' : 'a';
  EXPECT_EQ(service_->ResolveApiKey(forged).status().code(), absl::StatusCode::kUnauthenticated);
  // Only the owner may revoke; revoked keys are refused.
  trainmesh::v1::User bob = CreateUser("bob");
  trainmesh::v1::RevokeApiKeyRequest revoke;
  revoke.set_id(created->api_key().id());
  EXPECT_EQ(service_->RevokeApiKey(As(bob, {"jobs:write"}), revoke).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(service_->RevokeApiKey(As(alice, {"jobs:write"}), revoke).ok());
  EXPECT_THAT(service_->ResolveApiKey(secret).status().message(), HasSubstr("revoked"));
  EXPECT_EQ(service_->ListApiKeys(As(bob, {"jobs:read"}), {})->api_keys_size(), 0);
}

TEST_F(AuthServiceTest, KeyScopesAndExpiry) {
  trainmesh::v1::User alice = CreateUser("alice");
  trainmesh::v1::CreateApiKeyRequest admin_key;
  admin_key.mutable_api_key()->add_scopes("admin");
  EXPECT_EQ(service_->CreateApiKey(As(alice, {"jobs:write"}), admin_key).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(service_->CreateApiKey(As(alice, {"jobs:write", "admin"}), admin_key).ok());
  trainmesh::v1::CreateApiKeyRequest bogus;
  bogus.mutable_api_key()->add_scopes("root");
  EXPECT_EQ(service_->CreateApiKey(As(alice, {"jobs:write"}), bogus).status().code(),
            absl::StatusCode::kInvalidArgument);
  trainmesh::v1::CreateApiKeyRequest defaults;
  auto made = service_->CreateApiKey(As(alice, {"jobs:write"}), defaults);
  ASSERT_TRUE(made.ok());
  EXPECT_THAT(made->api_key().scopes(), ElementsAre("jobs:read", "jobs:write"));
  trainmesh::v1::CreateApiKeyRequest past;
  past.mutable_api_key()->mutable_expire_time()->set_seconds(1000);
  EXPECT_EQ(service_->CreateApiKey(As(alice, {"jobs:write"}), past).status().code(),
            absl::StatusCode::kInvalidArgument);
  trainmesh::v1::CreateApiKeyRequest expiring;
  expiring.mutable_api_key()->mutable_expire_time()->set_seconds(
      absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  auto soon = service_->CreateApiKey(As(alice, {"jobs:write"}), expiring);
  ASSERT_TRUE(soon.ok());
  EXPECT_TRUE(service_->ResolveApiKey(soon->secret()).ok());
  Sql("UPDATE auth.api_keys SET expires_at = now() - INTERVAL '1 second' WHERE expires_at IS NOT NULL");
  EXPECT_THAT(service_->ResolveApiKey(soon->secret()).status().message(), HasSubstr("expired"));
}

// pool:shared is an admin's grant: only an admin (a login or an admin key)
// makes a key with it; users and narrower keys cannot.
TEST_F(AuthServiceTest, OnlyAdminsGrantTheSharedPool) {
  trainmesh::v1::User alice = CreateUser("alice");
  trainmesh::v1::CreateApiKeyRequest grant;
  grant.mutable_api_key()->add_scopes("agent");
  grant.mutable_api_key()->add_scopes("pool:shared");
  EXPECT_EQ(service_->CreateApiKey(As(alice, {"jobs:write", "agent"}), grant).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto made = service_->CreateApiKey(As(alice, {"jobs:write", "admin"}), grant);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_THAT(made->api_key().scopes(), ElementsAre("agent", "pool:shared"));
  // An admin key may grant it; the granted key may not pass it on further
  // than itself, and holds no admin.
  Principal admin_key = As(alice, {"agent", "admin"});
  admin_key.set_kind(Principal::API_KEY);
  EXPECT_TRUE(service_->CreateApiKey(admin_key, grant).ok());
  admin_key = As(alice, {"admin"});  // but it cannot grant "agent", which it lacks
  admin_key.set_kind(Principal::API_KEY);
  EXPECT_EQ(service_->CreateApiKey(admin_key, grant).status().code(), absl::StatusCode::kPermissionDenied);
  absl::StatusOr<Principal> granted = service_->ResolveApiKey(made->secret());
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_THAT(granted->scopes(), ElementsAre("agent", "pool:shared"));
  trainmesh::v1::CreateApiKeyRequest admin;
  admin.mutable_api_key()->add_scopes("admin");
  EXPECT_EQ(service_->CreateApiKey(*granted, admin).status().code(), absl::StatusCode::kPermissionDenied);

  // The grant to an operator: a key that is bob's (it acts as bob, never as
  // the admin who made it), by user name or id.
  trainmesh::v1::User bob = CreateUser("bob");
  grant.set_for_user("bob");
  auto for_bob = service_->CreateApiKey(As(alice, {"jobs:write", "admin"}), grant);
  ASSERT_TRUE(for_bob.ok()) << for_bob.status();
  EXPECT_EQ(for_bob->api_key().owner(), bob.id());
  absl::StatusOr<Principal> as_bob = service_->ResolveApiKey(for_bob->secret());
  ASSERT_TRUE(as_bob.ok()) << as_bob.status();
  EXPECT_EQ(as_bob->subject(), bob.id());
  EXPECT_THAT(as_bob->scopes(), ElementsAre("agent", "pool:shared"));
  grant.set_for_user(bob.id());
  EXPECT_TRUE(service_->CreateApiKey(As(alice, {"jobs:write", "admin"}), grant).ok());
  // Only admins make keys for others; never with admin or internal; only
  // for a user that exists.
  EXPECT_EQ(service_->CreateApiKey(As(bob, {"jobs:write", "agent"}), grant).status().code(),
            absl::StatusCode::kPermissionDenied);
  trainmesh::v1::CreateApiKeyRequest elevate = admin;
  elevate.set_for_user("bob");
  EXPECT_EQ(service_->CreateApiKey(As(alice, {"jobs:write", "admin"}), elevate).status().code(),
            absl::StatusCode::kInvalidArgument);
  grant.set_for_user("nobody-here");
  absl::Status missing = service_->CreateApiKey(As(alice, {"jobs:write", "admin"}), grant).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status::FieldViolationsOf(missing),
              ::testing::Contains(::testing::Field(&status::FieldViolation::field, "for_user")));
}

// Signed URLs: a user's read access to one stream or download path, minutes
// long, never past the credential that asked; only users and keys sign.
TEST_F(AuthServiceTest, SignedUrlsAreNarrowAndShort) {
  trainmesh::v1::User alice = CreateUser("alice");
  trainmesh::v1::SignUrlRequest request;
  const std::string path = "/v1/jobs/0f8fad5b-d9cb-469f-a165-70867728950e/metrics:stream";
  request.set_path(path + "?names=loss");
  Principal caller = As(alice, {"jobs:read", "jobs:write"});
  caller.mutable_expire_time()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  auto signed_url = service_->SignUrl(caller, request);
  ASSERT_TRUE(signed_url.ok()) << signed_url.status();
  EXPECT_EQ(signed_url->url(), path + "?names=loss&access_token=" + signed_url->access_token());
  absl::StatusOr<Principal> p = verifier_->Verify(signed_url->access_token());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind(), Principal::URL);
  EXPECT_EQ(p->subject(), alice.id());
  EXPECT_EQ(p->url(), path + "?names=loss");  // the query is signed too
  EXPECT_THAT(p->scopes(), ElementsAre("jobs:read"));
  const int64_t exp = identity::PeekToken(signed_url->access_token())->claims.fields().at("exp").number_value();
  EXPECT_LE(exp, absl::ToUnixSeconds(absl::Now() + absl::Minutes(5)) + 1);
  // Never past the caller's own expiry.
  caller.mutable_expire_time()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Seconds(30)));
  signed_url = service_->SignUrl(caller, request);
  ASSERT_TRUE(signed_url.ok()) << signed_url.status();
  EXPECT_LE(identity::PeekToken(signed_url->access_token())->claims.fields().at("exp").number_value(),
            caller.expire_time().seconds());
  // What cannot be signed.
  for (const std::string& bad : {std::string(""), std::string("/v1/jobs"), std::string("v1/jobs:watch"),
                                 std::string("/v1/jobs:watch?access_token=x"), std::string("/v1/jobs/a b:watch"),
                                 "/v1/jobs:watch?" + std::string(3000, 'a')}) {
    request.set_path(bad);
    absl::Status s = service_->SignUrl(caller, request).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status::FieldViolationsOf(s),
                ::testing::Contains(::testing::Field(&status::FieldViolation::field, "path")))
        << bad;
  }
  request.set_path(path);
  request.mutable_ttl()->set_seconds(3600);
  EXPECT_EQ(service_->SignUrl(caller, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.clear_ttl();
  // Job tokens and signed URLs sign nothing.
  for (Principal::Kind kind : {Principal::JOB, Principal::URL}) {
    Principal other = As(alice, {"jobs:read"});
    other.set_kind(kind);
    EXPECT_EQ(service_->SignUrl(other, request).status().code(), absl::StatusCode::kPermissionDenied);
  }
}

TEST_F(AuthServiceTest, WrongLoginsAreThrottledPerNameAndPerAddress) {
  CreateUser("alice");
  CreateUser("bob");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Login("alice", "wrong-guess", "198.51.100.7").status().code(), absl::StatusCode::kUnauthenticated);
  }
  // The 6th try within the minute is refused before any password check: even
  // the right password, from any address.
  absl::Status refused = Login("alice", "alice-password", "203.0.113.9").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("user name"));
  EXPECT_TRUE(refused.GetPayload("type.googleapis.com/google.rpc.RetryInfo").has_value());
  EXPECT_EQ(Login("ALICE", "alice-password").status().code(), absl::StatusCode::kResourceExhausted);
  // Another user is not locked out by alice's guesser.
  EXPECT_TRUE(Login("bob", "bob-password", "203.0.113.9").ok());

  // One address guessing many names is stopped by its own count.
  for (int i = 0; i < 30; ++i) {
    (void)Login(absl::StrCat("user", i), "wrong-guess", "192.0.2.1");
  }
  absl::Status sprayed = Login("bob", "bob-password", "192.0.2.1").status();
  EXPECT_EQ(sprayed.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(sprayed.message(), HasSubstr("client address"));
  EXPECT_TRUE(Login("bob", "bob-password", "203.0.113.9").ok());
}

TEST_F(AuthServiceTest, OversizedCredentialsAreRefusedBeforeHashing) {
  CreateUser("alice");
  absl::Status s = Login("alice", std::string(2 << 20, 'p')).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status::FieldViolationsOf(s), ::testing::Contains(::testing::Field(
                                                &status::FieldViolation::field, "password")));
  EXPECT_EQ(Login(std::string(300, 'a'), "alice-password").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Login("alice", "alice-password").ok());
}

TEST_F(AuthServiceTest, AKeyCannotMintABroaderOrLongerLivedKey) {
  trainmesh::v1::User alice = CreateUser("alice");
  trainmesh::v1::CreateApiKeyRequest narrow;
  narrow.mutable_api_key()->add_scopes("jobs:read");
  narrow.mutable_api_key()->mutable_expire_time()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  auto made = service_->CreateApiKey(As(alice, {"jobs:read", "jobs:write"}), narrow);
  ASSERT_TRUE(made.ok()) << made.status();
  absl::StatusOr<Principal> key = service_->ResolveApiKey(made->secret());
  ASSERT_TRUE(key.ok()) << key.status();

  // Broader: a scope the key does not hold.
  trainmesh::v1::CreateApiKeyRequest broader;
  broader.mutable_api_key()->add_scopes("jobs:write");
  absl::Status s = service_->CreateApiKey(*key, broader).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("jobs:write"));
  // Defaults (read + write) are broader too.
  EXPECT_EQ(service_->CreateApiKey(*key, {}).status().code(), absl::StatusCode::kPermissionDenied);
  // Longer-lived: an expiry after its own.
  trainmesh::v1::CreateApiKeyRequest longer;
  longer.mutable_api_key()->add_scopes("jobs:read");
  longer.mutable_api_key()->mutable_expire_time()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(48)));
  s = service_->CreateApiKey(*key, longer).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("expires after"));
  // The same scopes without an expiry: made, and it dies with its maker.
  trainmesh::v1::CreateApiKeyRequest same;
  same.mutable_api_key()->add_scopes("jobs:read");
  auto child = service_->CreateApiKey(*key, same);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(child->api_key().expire_time().seconds(), key->expire_time().seconds());
  // Nothing was stored for the refused requests: the maker and its one child.
  auto listed = service_->ListApiKeys(As(alice, {"jobs:read"}), {});
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->api_keys_size(), 2);
  // A job token makes no keys at all.
  Principal job;
  job.set_kind(Principal::JOB);
  job.set_subject(alice.id());
  job.add_scopes("jobs:read");
  EXPECT_EQ(service_->CreateApiKey(job, same).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(AuthServiceTest, AuthenticateSaysWhyACredentialIsRefused) {
  trainmesh::v1::AuthenticateRequest request;
  request.set_credential("tm_aaaaaaaa_0123456789012345678901234567890123456789");
  absl::Status s = service_->Authenticate(request).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(status::FieldViolationsOf(s).size(), 1u);
  EXPECT_EQ(status::FieldViolationsOf(s)[0].field, "credential");
  CreateUser("alice");
  request.set_credential(Login("alice", "alice-password")->access_token());
  EXPECT_TRUE(service_->Authenticate(request).ok());
}

TEST_F(AuthServiceTest, JobTokensAreBoundAndRenewable) {
  trainmesh::v1::MintJobTokenRequest mint;
  mint.set_job_id("job-1");
  mint.set_attempt(2);
  mint.set_agent_id("agent-1");
  mint.set_owner("owner-1");
  absl::StatusOr<trainmesh::v1::JobToken> token = service_->MintJobToken(mint);
  ASSERT_TRUE(token.ok()) << token.status();
  absl::StatusOr<Principal> p = verifier_->Verify(token->token());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind(), Principal::JOB);
  EXPECT_EQ(p->subject(), "owner-1");
  EXPECT_EQ(p->job_id(), "job-1");
  EXPECT_EQ(p->attempt(), 2);
  EXPECT_THAT(p->scopes(), ElementsAre("job:report"));
  EXPECT_TRUE(identity::CheckJobToken(*p, "job-1", 2).ok());
  EXPECT_EQ(identity::CheckJobToken(*p, "job-2", 2).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(identity::CheckJobToken(*p, "job-1", 3).code(), absl::StatusCode::kPermissionDenied);

  trainmesh::v1::RenewJobTokenRequest renew;
  renew.set_token(token->token());
  absl::StatusOr<trainmesh::v1::JobToken> renewed = service_->RenewJobToken(renew);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  absl::StatusOr<Principal> q = verifier_->Verify(renewed->token());
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->job_id(), "job-1");
  EXPECT_EQ(q->attempt(), 2);
  // A user's token cannot be turned into a job token.
  CreateUser("alice");
  renew.set_token(Login("alice", "alice-password")->access_token());
  EXPECT_EQ(service_->RenewJobToken(renew).status().code(), absl::StatusCode::kInvalidArgument);
  mint.set_attempt(0);
  EXPECT_EQ(service_->MintJobToken(mint).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AuthServiceTest, ListUsersPages) {
  for (const char* n : {"carol", "alice", "bob"}) CreateUser(n);
  trainmesh::v1::ListUsersRequest request;
  request.set_page_size(2);
  auto page = service_->ListUsers(request);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->users_size(), 2);
  EXPECT_EQ(page->users(0).name(), "alice");
  request.set_page_token(page->next_page_token());
  page = service_->ListUsers(request);
  ASSERT_EQ(page->users_size(), 1);
  EXPECT_EQ(page->users(0).name(), "carol");
  EXPECT_TRUE(page->next_page_token().empty());
}

TEST_F(AuthServiceTest, ConcurrentReplicasAgreeOnOneSigningKey) {
  // Several fresh replicas start at once on an empty schema.
  Sql("DELETE FROM auth.signing_keys");
  std::vector<std::unique_ptr<AuthService>> replicas;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    replicas.push_back(std::make_unique<AuthService>(store_.get(), AuthOptions{}));
  }
  std::vector<absl::Status> results(4);
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { results[i] = replicas[i]->Init(); });
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s;
  pqxx::connection conn(dsn_);
  EXPECT_EQ(pqxx::nontransaction(conn).exec("SELECT count(*) FROM auth.signing_keys")[0][0].as<int>(), 1);
}

}  // namespace
}  // namespace trainmesh::auth
