#include "libs/datasets/formats.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::datasets {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A file under libs/datasets/testdata (or another folder of libs/datasets).
std::string TestData(const std::string& name, const std::string& folder = "testdata") {
  const char* src = std::getenv("TRAINMESH_SOURCE_DIR");
  std::ifstream in(absl::StrCat(src != nullptr ? src : ".", "/libs/datasets/", folder, "/", name),
                   std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string U16(uint64_t v) { return std::string{char(v), char(v >> 8)}; }
std::string U32(uint64_t v) { return U16(v) + U16(v >> 16); }
std::string U64(uint64_t v) { return U32(v) + U32(v >> 32); }

// A .npy array: a version-1 header and raw data.
std::string Npy(const std::string& header, const std::string& data) {
  std::string h = header;
  while ((10 + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  return absl::StrCat("\x93NUMPY\x01", std::string(1, '\0'), U16(h.size()), h, data);
}

std::string Floats(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

struct Entry {
  std::string name;
  std::string data;
  int method = 0;
};

// A stored (uncompressed) zip archive, as numpy.savez writes one; `zip64`
// puts the sizes and offsets in zip64 extra fields and records.
std::string Zip(const std::vector<Entry>& entries, bool zip64 = false) {
  std::string out, dir;
  for (const Entry& e : entries) {
    const uint64_t local = out.size();
    const std::string extra64 = U16(1) + U16(16) + U64(e.data.size()) + U64(e.data.size());
    out += U32(0x04034b50) + U16(20) + U16(0) + U16(e.method) + U32(0) + U32(0) +
           (zip64 ? U32(0xFFFFFFFF) + U32(0xFFFFFFFF) : U32(e.data.size()) + U32(e.data.size())) +
           U16(e.name.size()) + U16(zip64 ? extra64.size() : 0) + e.name + (zip64 ? extra64 : "") +
           e.data;
    const std::string cd_extra =
        U16(1) + U16(24) + U64(e.data.size()) + U64(e.data.size()) + U64(local);
    dir += U32(0x02014b50) + U16(20) + U16(20) + U16(0) + U16(e.method) + U32(0) + U32(0) +
           (zip64 ? U32(0xFFFFFFFF) + U32(0xFFFFFFFF) + U16(e.name.size()) + U16(cd_extra.size())
                  : U32(e.data.size()) + U32(e.data.size()) + U16(e.name.size()) + U16(0)) +
           U16(0) + U16(0) + U16(0) + U32(0) + U32(zip64 ? 0xFFFFFFFF : local) + e.name +
           (zip64 ? cd_extra : "");
  }
  const uint64_t cd = out.size();
  out += dir;
  if (zip64) {
    const uint64_t end64 = out.size();
    out += U32(0x06064b50) + U64(44) + U16(45) + U16(45) + U32(0) + U32(0) + U64(entries.size()) +
           U64(entries.size()) + U64(dir.size()) + U64(cd);
    out += U32(0x07064b50) + U32(0) + U64(end64) + U32(1);
    out += U32(0x06054b50) + U16(0) + U16(0) + U16(0xFFFF) + U16(0xFFFF) + U32(0xFFFFFFFF) +
           U32(0xFFFFFFFF) + U16(0);
  } else {
    out += U32(0x06054b50) + U16(0) + U16(0) + U16(entries.size()) + U16(entries.size()) +
           U32(dir.size()) + U32(cd) + U16(0);
  }
  return out;
}

const std::string kObs =
    Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", Floats({1, 2, 3, 4}));
const std::string kAct =
    Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", Floats({5, 6}));

std::string NpzError(const std::string& bytes, const NpzLimits& limits = {}) {
  auto arrays = ParseNpz(bytes, limits);
  EXPECT_FALSE(arrays.ok());
  EXPECT_EQ(arrays.status().code(), absl::StatusCode::kInvalidArgument) << arrays.status();
  return std::string(arrays.status().message());
}

std::string Header(const std::string& dict) {
  return NpzError(Zip({{"obs.npy", Npy(dict, Floats({1, 2}))}}));
}

TEST(NpzTest, ReadsWhatNumpyWrites) {
  // demos.npz is numpy.savez's: zip64 extra fields in the local headers.
  auto arrays = ParseNpz(TestData("demos.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  EXPECT_EQ(arrays->at("obs").rows, 4);
  EXPECT_EQ(arrays->at("obs").cols, 3);
  EXPECT_THAT(arrays->at("act").data, ElementsAre(0.5f, 1.5f, 2.5f, 3.5f));
  EXPECT_THAT(arrays->at("steps").data, ElementsAre(0, 1, 2, 3));
}

// The fuzz seeds are what numpy writes: savez (zip64 extra fields), a plain
// zip of version 1 and 2 arrays, every dtype, an empty array.
TEST(NpzTest, ReadsTheFuzzSeeds) {
  auto demos = ParseNpz(TestData("demos.npz", "fuzz_corpus/npz"));
  ASSERT_TRUE(demos.ok()) << demos.status();
  EXPECT_THAT(demos->at("obs").data, ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_THAT(demos->at("steps").data, ElementsAre(0, 1, 2));
  auto ints = ParseNpz(TestData("ints.npz", "fuzz_corpus/npz"));
  ASSERT_TRUE(ints.ok()) << ints.status();
  EXPECT_THAT(ints->at("obs").data, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(ints->at("empty").rows, 0);
  auto v2 = ParseNpz(TestData("v2.npz", "fuzz_corpus/npz"));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_THAT(v2->at("obs").data, ElementsAre(1, 2, 3, 4));
  EXPECT_TRUE(DemonstrationsFromArrays(std::move(*v2)).ok());
  EXPECT_THAT(NpzError(TestData("compressed.npz", "fuzz_corpus/npz")), HasSubstr("numpy.savez"));
}

TEST(NpzTest, ReadsPlainAndZip64Archives) {
  for (bool zip64 : {false, true}) {
    auto arrays = ParseNpz(Zip({{"obs.npy", kObs}, {"act.npy", kAct}, {"README", "hi"}}, zip64));
    ASSERT_TRUE(arrays.ok()) << arrays.status();
    EXPECT_EQ(arrays->size(), 2u);  // not an array: skipped
    EXPECT_THAT(arrays->at("obs").data, ElementsAre(1, 2, 3, 4));
    EXPECT_EQ(arrays->at("act").cols, 1);
    auto demos = DemonstrationsFromArrays(std::move(*arrays));
    ASSERT_TRUE(demos.ok()) << demos.status();
    EXPECT_EQ(demos->obs.rows, 2);
  }
}

TEST(NpzTest, HeadersParseStrictly) {
  // Python 2 numpy wrote long integers; trailing commas are optional.
  EXPECT_TRUE(ParseNpz(Zip({{"a.npy", Npy("{'shape': (2L,), 'fortran_order': False, 'descr': "
                                          "'<f4'}",
                                          Floats({1, 2}))}}))
                  .ok());
  EXPECT_THAT(Header("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"),
              HasSubstr("Fortran order"));
  EXPECT_THAT(Header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }"),
              HasSubstr("array obs in the .npz: dtype >f4 is not supported"));
  EXPECT_THAT(
      Header("{'descr': 'SECRET-TOKEN-123', 'fortran_order': False, 'shape': (2,), }"),
      ::testing::AllOf(HasSubstr("dtype is not supported"), ::testing::Not(HasSubstr("SECRET"))));
  EXPECT_THAT(Header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2), }"),
              HasSubstr("only 1-D and 2-D"));
  EXPECT_THAT(Header("{'descr': '<f4', 'fortran_order': False, 'shape': (), }"),
              HasSubstr("only 1-D and 2-D"));
  for (const char* dict : {
           "{'descr': '<f4', 'fortran_order': False}",  // no shape
           "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",  // unknown key
           "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2,}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing",
           "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999,)}",
           "",
       }) {
    EXPECT_THAT(Header(dict), HasSubstr("header is not numpy's")) << dict;
  }
}

TEST(NpzTest, ShapesMustMatchTheData) {
  auto shaped = [](const std::string& shape, const std::string& data) {
    return NpzError(
        Zip({{"obs.npy",
              Npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }", data)}}));
  };
  const std::string mismatch = "its shape does not match its data (";
  EXPECT_THAT(shaped("(3,)", Floats({1, 2})), HasSubstr(mismatch + "8 bytes of 4-byte values)"));
  EXPECT_THAT(shaped("(1,)", Floats({1, 2})), HasSubstr(mismatch + "8 bytes"));
  // 2^40 * 2^40 wraps around to 0 in 64 bits: it must not match 0 bytes.
  EXPECT_THAT(shaped("(1099511627776, 1099511627776)", ""), HasSubstr(mismatch + "0 bytes"));
  EXPECT_THAT(shaped("(1099511627776, 1099511627776)", Floats({1})), HasSubstr(mismatch));
  EXPECT_THAT(shaped("(1099511627776, 0)", ""), HasSubstr("at least one column"));
  EXPECT_THAT(shaped("(2,)", Floats({1, 2}).substr(0, 7)), HasSubstr(mismatch + "7 bytes"));
  auto empty = ParseNpz(Zip({{"e.npy", Npy("{'descr': '<i8', 'fortran_order': False, "
                                           "'shape': (0,), }",
                                           "")}}));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->at("e").rows, 0);
}

TEST(NpzTest, ArchivesAreBounded) {
  EXPECT_THAT(NpzError("PK"), HasSubstr("too short"));
  EXPECT_THAT(NpzError(std::string(100, 'x')), HasSubstr("no end of central directory"));
  EXPECT_THAT(NpzError(TestData("compressed.npz")), HasSubstr("numpy.savez"));
  EXPECT_THAT(NpzError(Zip({{"obs.npy", kObs, 8}})), HasSubstr("numpy.savez_compressed"));
  // Too many members.
  std::vector<Entry> many;
  for (int i = 0; i < 5; ++i) many.push_back({absl::StrCat("a", i, ".npy"), kAct});
  NpzLimits limits;
  limits.max_arrays = 4;
  EXPECT_THAT(NpzError(Zip(many), limits), HasSubstr("more than 4 members"));
  limits.max_arrays = 1024;
  limits.max_total_bytes = 20;
  EXPECT_THAT(NpzError(Zip(many), limits), HasSubstr("more than 20 bytes"));
  EXPECT_THAT(NpzError(Zip({{"a.npy", kAct}, {"a.npy", kAct}})), HasSubstr("appears twice"));
  // Every truncation of a good archive is an error, never a crash.
  const std::string good = Zip({{"obs.npy", kObs}, {"act.npy", kAct}}, true);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParseNpz(good.substr(0, n)).ok()) << n;
  }
  // Every corrupted byte is an error or arrays that match their data.
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0xA5);
    auto arrays = ParseNpz(bad);
    if (!arrays.ok()) continue;
    for (const auto& [name, m] : *arrays) {
      EXPECT_EQ(m.data.size(), static_cast<size_t>(m.rows * m.cols)) << i;
    }
  }
}

TEST(NpzTest, MembersMayNotShareBytes) {
  // Two central entries naming the same local member: a zip "bomb" that
  // would decode the same bytes twice.
  std::string one = Zip({{"a.npy", kAct}});
  const size_t cd = one.find(std::string("PK\x01\x02", 4));
  const size_t end = one.find(std::string("PK\x05\x06", 4));
  std::string entry = one.substr(cd, end - cd);
  std::string twin = entry;
  twin.replace(46, 1, "b");  // "b.npy", same local offset
  std::string bomb = one.substr(0, cd) + entry + twin + U32(0x06054b50) + U16(0) + U16(0) + U16(2) +
                     U16(2) + U32(entry.size() * 2) + U32(cd) + U16(0);
  EXPECT_THAT(NpzError(bomb), HasSubstr("members overlap"));
}

TEST(NpzTest, DemonstrationsNeedObsAndAct) {
  auto only_obs = ParseNpz(Zip({{"obs.npy", kObs}}));
  ASSERT_TRUE(only_obs.ok());
  EXPECT_THAT(std::string(DemonstrationsFromArrays(std::move(*only_obs)).status().message()),
              HasSubstr("\"obs\" and \"act\""));
  const std::string nan =
      Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", Floats({1, std::nanf("")}));
  auto with_nan = ParseNpz(Zip({{"obs.npy", kObs}, {"act.npy", nan}}));
  ASSERT_TRUE(with_nan.ok());
  EXPECT_THAT(std::string(DemonstrationsFromArrays(std::move(*with_nan)).status().message()),
              HasSubstr("act has a missing or non-finite value in row 2"));
}

TEST(CsvTest, ParsesQuotesAndBlankLines) {
  auto t = ParseCsv("a,b,label\r\n1,2,x\n\n3,\"4,5\n6\",\"say \"\"hi\"\"\"\n");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->header, ElementsAre("a", "b", "label"));
  ASSERT_EQ(t->rows.size(), 2u);
  EXPECT_THAT(t->rows[1], ElementsAre("3", "4,5\n6", "say \"hi\""));
  auto no_newline = ParseCsv("a\n1");
  ASSERT_TRUE(no_newline.ok());
  EXPECT_THAT(no_newline->rows, ElementsAre(ElementsAre("1")));
}

// Errors say where, never what: the file may be anyone's.
TEST(CsvTest, ErrorsDescribePositionsNotContent) {
  auto error = [](absl::string_view text, const CsvLimits& limits = {}) {
    auto t = ParseCsv(text, limits);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(t.status().message());
    EXPECT_THAT(message, ::testing::Not(HasSubstr("secret")));
    return message;
  };
  EXPECT_EQ(error(""), "the CSV is empty (no header row)");
  EXPECT_EQ(error("\n\n"), "the CSV is empty (no header row)");
  EXPECT_EQ(error("secret,b\n1\n"), "CSV row 2 has 1 fields; the header has 2");
  EXPECT_EQ(error("a\nsecret\n\"secret\n"),
            "CSV has an unterminated quoted field starting on line 3");
  CsvLimits small;
  small.max_rows = 1;
  small.max_columns = 2;
  small.max_field_bytes = 4;
  EXPECT_EQ(error("a\n1\n2\n", small), "CSV has more than 1 rows");
  EXPECT_EQ(error("a,b,c\n", small), "CSV line 1 has more than 2 fields");
  EXPECT_EQ(error("a\nsecret\n", small), "CSV line 2 has a field longer than 4 bytes");
}

TEST(CsvTest, DemonstrationsNameColumnsByPosition) {
  auto table = [](absl::string_view text) {
    auto t = ParseCsv(text);
    EXPECT_TRUE(t.ok()) << t.status();
    return *t;
  };
  auto ok = DemonstrationsFromTable(table("obs_0,obs_1,act_0\n1,2,3\n4,5,6\n"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(ok->obs.data, ElementsAre(1, 2, 4, 5));
  EXPECT_THAT(ok->act.data, ElementsAre(3, 6));
  // The header is the file's first line: it is counted, not quoted.
  EXPECT_EQ(DemonstrationsFromTable(table("secret,token\n1,2\n3,4\n")).status().message(),
            "the CSV needs observation columns named obs_* and action columns named act_*; its 2 "
            "columns include 0 obs_* and 0 act_* columns");
  EXPECT_EQ(DemonstrationsFromTable(table("obs_0,act_0\n1,2\n3,secret\n")).status().message(),
            "CSV row 3, column 2 is not a number");
  EXPECT_THAT(
      std::string(DemonstrationsFromTable(table("obs_0,act_0\n1,\n3,4\n")).status().message()),
      HasSubstr("act has a missing or non-finite value in row 1"));
  EXPECT_THAT(std::string(DemonstrationsFromTable(table("obs_0,act_0\n1,2\n")).status().message()),
              HasSubstr("at least 2 rows"));
}

}  // namespace
}  // namespace trainmesh::datasets
