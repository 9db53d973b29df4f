#include "libs/pagination/page_token.h"

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/status/field_violations.h"

namespace trainmesh::pagination {
namespace {

TEST(PageTokenTest, RoundTrips) {
  PageTokenCodec codec("secret-secret-secret-secret-1234");
  std::string token = codec.Encode("alice|state=RUNNING", "1700000000000000|abc");
  absl::StatusOr<std::string> position = codec.Decode("alice|state=RUNNING", token);
  ASSERT_TRUE(position.ok()) << position.status();
  EXPECT_EQ(*position, "1700000000000000|abc");
  // URL-safe: no characters that need escaping in a query string.
  EXPECT_EQ(token.find_first_of("+/="), std::string::npos);
}

TEST(PageTokenTest, OtherQueryOrUserIsRefused) {
  PageTokenCodec codec("secret-secret-secret-secret-1234");
  std::string token = codec.Encode("alice|", "p");
  absl::Status s = codec.Decode("bob|", token).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(status::FieldViolationsOf(s).size(), 1u);
  EXPECT_EQ(status::FieldViolationsOf(s)[0].field, "page_token");
  EXPECT_FALSE(codec.Decode("alice|state=FAILED", token).ok());
}

TEST(PageTokenTest, AlteredTokenIsRefused) {
  PageTokenCodec codec("secret-secret-secret-secret-1234");
  std::string raw;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(codec.Encode("q", "1700000000000000|abc"), &raw));
  raw[0] = '2';  // move the cursor
  std::string forged;
  absl::WebSafeBase64Escape(raw, &forged);
  EXPECT_EQ(codec.Decode("q", forged).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(codec.Decode("q", "garbage!!").ok());
  EXPECT_FALSE(codec.Decode("q", "").ok());
}

TEST(PageTokenTest, OtherSecretIsRefused) {
  std::string token = PageTokenCodec("secret-one-secret-one-secret-one").Encode("q", "p");
  EXPECT_FALSE(PageTokenCodec("secret-two-secret-two-secret-two").Decode("q", token).ok());
}

}  // namespace
}  // namespace trainmesh::pagination
