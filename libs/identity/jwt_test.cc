#include "libs/identity/jwt.h"

#include <jwt.h>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::identity {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

JwtConfig Config() {
  JwtConfig config;
  config.hs256_secret = std::string(40, 's');
  return config;
}

TEST(JwtTest, MintedTokenVerifies) {
  absl::StatusOr<std::string> token =
      MintToken(Config(), "alice", {"jobs:read", "jobs:write"}, absl::Hours(1));
  ASSERT_TRUE(token.ok()) << token.status();
  absl::StatusOr<trainmesh::v1::Principal> p = VerifyToken(Config(), *token);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->subject(), "alice");
  EXPECT_EQ(p->kind(), trainmesh::v1::Principal::USER);
  EXPECT_THAT(p->scopes(), ElementsAre("jobs:read", "jobs:write"));
}

TEST(JwtTest, ShortSecretIsRefused) {
  JwtConfig config;
  config.hs256_secret = "short";
  EXPECT_EQ(ValidateJwtConfig(config).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MintToken(config, "a", {}, absl::Hours(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(JwtTest, ExpiredTokenIsRefusedBeyondTheSkew) {
  const absl::Time minted = absl::Now() - absl::Hours(2);
  std::string token = *MintToken(Config(), "alice", {}, absl::Hours(1), minted);
  absl::Status s = VerifyToken(Config(), token).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("expired"));
  // Within the skew it is still accepted.
  EXPECT_TRUE(VerifyToken(Config(), token, minted + absl::Hours(1) + absl::Seconds(30)).ok());
}

TEST(JwtTest, TokenFromTheFutureIsRefused) {
  std::string token = *MintToken(Config(), "alice", {}, absl::Hours(1), absl::Now() + absl::Hours(1));
  EXPECT_THAT(VerifyToken(Config(), token).status().message(), HasSubstr("not valid yet"));
}

TEST(JwtTest, WrongSecretIsRefused) {
  std::string token = *MintToken(Config(), "alice", {}, absl::Hours(1));
  JwtConfig other = Config();
  other.hs256_secret = std::string(40, 'x');
  absl::Status s = VerifyToken(other, token).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("bad signature"));
}

TEST(JwtTest, TamperedPayloadIsRefused) {
  std::string token = *MintToken(Config(), "alice", {}, absl::Hours(1));
  std::string forged_payload;
  absl::WebSafeBase64Escape(
      R"({"sub":"mallory","iss":"trainmesh","aud":"trainmesh","exp":99999999999})",
      &forged_payload);
  size_t a = token.find('.'), b = token.rfind('.');
  std::string forged = token.substr(0, a + 1) + forged_payload + token.substr(b);
  EXPECT_EQ(VerifyToken(Config(), forged).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(JwtTest, AlgorithmNoneIsRefused) {
  std::string header, payload;
  absl::WebSafeBase64Escape(R"({"alg":"none","typ":"JWT"})", &header);
  absl::WebSafeBase64Escape(
      R"({"sub":"mallory","iss":"trainmesh","aud":"trainmesh","exp":99999999999})", &payload);
  EXPECT_EQ(VerifyToken(Config(), header + "." + payload + ".").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(JwtTest, OtherHmacAlgorithmIsRefused) {
  // Same secret, HS512: a valid signature, but not the pinned algorithm.
  jwt_t* jwt = nullptr;
  ASSERT_EQ(jwt_new(&jwt), 0);
  jwt_add_grant(jwt, "sub", "alice");
  jwt_add_grant(jwt, "iss", "trainmesh");
  jwt_add_grant(jwt, "aud", "trainmesh");
  jwt_add_grant_int(jwt, "exp", static_cast<long>(absl::ToUnixSeconds(absl::Now()) + 3600));
  const std::string secret = Config().hs256_secret;
  jwt_set_alg(jwt, JWT_ALG_HS512, reinterpret_cast<const unsigned char*>(secret.data()),
              static_cast<int>(secret.size()));
  char* encoded = jwt_encode_str(jwt);
  std::string token(encoded);
  free(encoded);
  jwt_free(jwt);
  absl::Status s = VerifyToken(Config(), token).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("HS512"));
}

TEST(JwtTest, WrongAudienceOrIssuerIsRefused) {
  std::string token = *MintToken(Config(), "alice", {}, absl::Hours(1));
  JwtConfig other_audience = Config();
  other_audience.audience = "someone-else";
  EXPECT_THAT(VerifyToken(other_audience, token).status().message(), HasSubstr("audience"));
  JwtConfig other_issuer = Config();
  other_issuer.issuer = "evil";
  EXPECT_THAT(VerifyToken(other_issuer, token).status().message(), HasSubstr("issuer"));
}

}  // namespace
}  // namespace trainmesh::identity
