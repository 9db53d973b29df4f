#include "libs/identity/keys.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::identity {
namespace {

using ::testing::HasSubstr;

class KeysTest : public ::testing::TestWithParam<const char*> {};

TEST_P(KeysTest, JwkRoundTripsToTheSamePublicKey) {
  absl::StatusOr<SigningKey> key = GenerateSigningKey(GetParam());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_THAT(key->private_pem, HasSubstr("BEGIN PRIVATE KEY"));
  EXPECT_FALSE(key->kid.empty());
  absl::StatusOr<trainmesh::v1::Jwk> jwk = PublicJwk(*key);
  ASSERT_TRUE(jwk.ok()) << jwk.status();
  EXPECT_EQ(jwk->alg(), GetParam());
  EXPECT_EQ(jwk->use(), "sig");
  EXPECT_EQ(jwk->kid(), key->kid);
  absl::StatusOr<std::string> pem = JwkToPem(*jwk);
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_EQ(*pem, key->public_pem);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, KeysTest, ::testing::Values("RS256", "ES256"));

TEST(KeysTest, RejectsBadKeys) {
  EXPECT_EQ(GenerateSigningKey("HS256").status().code(), absl::StatusCode::kInvalidArgument);
  trainmesh::v1::Jwk jwk;
  jwk.set_kty("oct");
  EXPECT_EQ(JwkToPem(jwk).status().code(), absl::StatusCode::kInvalidArgument);
  jwk.set_kty("RSA");
  jwk.set_n("AQAB");  // far too short a modulus
  jwk.set_e("AQAB");
  EXPECT_EQ(JwkToPem(jwk).status().code(), absl::StatusCode::kInvalidArgument);
  jwk.set_kty("EC");
  jwk.set_crv("P-256");
  jwk.set_x(Base64UrlEncode(std::string(32, '\x01')));
  jwk.set_y(Base64UrlEncode(std::string(32, '\x02')));  // not a point on the curve
  EXPECT_EQ(JwkToPem(jwk).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace trainmesh::identity
