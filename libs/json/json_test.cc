#include "libs/json/json.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace trainmesh::json {
namespace {

using ::testing::HasSubstr;

google::protobuf::Struct ViaProtobuf(const std::string& text) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &s).ok()) << text;
  return s;
}

TEST(JsonTest, ParsesLikeProtobufAndRoundTrips) {
  const std::string text = R"({"steps": 200, "lr": 3e-4, "neg": -1.5, "name": "a\"b\\c\n\u00e9\ud83d\ude00",
    "on": true, "off": false, "nothing": null, "sizes": [256, 128, []],
    "nested": {"k": {"deep": "x"}}, "empty": {}})";
  google::protobuf::Struct ours;
  ASSERT_TRUE(ToStruct(text, &ours).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ours, ViaProtobuf(text)));
  google::protobuf::Struct back;
  ASSERT_TRUE(ToStruct(FromStruct(ours), &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ours, back));
  // protobuf reads what we write, too.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ViaProtobuf(FromStruct(ours)), ours));
}

TEST(JsonTest, NumbersRoundTripExactly) {
  google::protobuf::Struct s;
  for (double d : {0.1, 1e-8, 123456789012345.0, 2.2250738585072014e-308, 1.0 / 3}) {
    (*s.mutable_fields())["x"].set_number_value(d);
    google::protobuf::Struct back;
    ASSERT_TRUE(ToStruct(FromStruct(s), &back).ok());
    EXPECT_EQ(back.fields().at("x").number_value(), d);
  }
  (*s.mutable_fields())["x"].set_number_value(50);
  EXPECT_EQ(FromStruct(s), R"({"x":50})");
  (*s.mutable_fields())["x"].set_number_value(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(FromStruct(s), R"({"x":null})");
}

TEST(JsonTest, RejectsMalformedInput) {
  google::protobuf::Struct s;
  for (const char* bad : {"", "[]", "{", R"({"a":})", R"({"a":1,})", R"({"a":tru})",
                          R"({"a":"\x"})", R"({"a":1} extra)", R"({a:1})", R"({"a":"\ud800"})",
                          R"({"a":--1})"}) {
    absl::Status status = ToStruct(bad, &s);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ToStruct(R"({"a": x})", &s).message(), HasSubstr("offset 6"));
}

TEST(JsonTest, NonFiniteLiteralsOnlyWhenAsked) {
  google::protobuf::Struct s;
  const char* text = R"({"a": NaN, "b": Infinity, "c": -Infinity})";
  EXPECT_FALSE(ToStruct(text, &s).ok());
  ASSERT_TRUE(ToStruct(text, &s, {.allow_nonfinite = true}).ok());
  EXPECT_TRUE(std::isnan(s.fields().at("a").number_value()));
  EXPECT_EQ(s.fields().at("b").number_value(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(s.fields().at("c").number_value(), -std::numeric_limits<double>::infinity());
}

TEST(JsonTest, DeepNestingIsRefused) {
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += R"({"a":)";
  deep += "1";
  for (int i = 0; i < 100; ++i) deep += "}";
  google::protobuf::Struct s;
  EXPECT_FALSE(ToStruct(deep, &s).ok());
}

}  // namespace
}  // namespace trainmesh::json
