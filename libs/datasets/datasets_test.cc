#include "libs/datasets/datasets.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::datasets {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Dirs {
  Dirs() {
    std::string t = absl::StrCat(::testing::TempDir(), "/data-XXXXXX");
    base = mkdtemp(t.data());
    root = base + "/root";
    mkdir(root.c_str(), 0755);
    mkdir((root + "/sub").c_str(), 0755);
    std::ofstream(root + "/sub/train.csv") << "a,b,label\n1,2,x\n3,\"4,5\",y\n";
    std::ofstream(base + "/secret.txt") << "outside";
    symlink((base + "/secret.txt").c_str(), (root + "/escape.txt").c_str());
  }
  DatasetOptions Options() const { return {.data_root = root, .cache_dir = base + "/cache"}; }
  std::string base, root;
};

TEST(DatasetsTest, FilesStayInsideTheDataRoot) {
  Dirs d;
  auto ok = Resolve("file:///sub/train.csv", d.Options());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(ok->path, HasSubstr("/root/sub/train.csv"));
  EXPECT_EQ(Resolve("file:///../secret.txt", d.Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Resolve("file:///escape.txt", d.Options()).status().message(),
              HasSubstr("outside the data root"));
  EXPECT_EQ(Resolve("file:///nope.csv", d.Options()).status().code(), absl::StatusCode::kNotFound);
}

TEST(DatasetsTest, SyntheticParameters) {
  auto s = Resolve("synthetic://reach?samples=2000&obs_dim=8&name=a%20b", {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->generator, "reach");
  EXPECT_EQ(*s->Number("samples", 1), 2000);
  EXPECT_EQ(*s->Number("missing", 7), 7);
  EXPECT_EQ(s->params.at("name"), "a b");
  EXPECT_FALSE(Resolve("synthetic://reach?samples=many", {})->Number("samples", 1).ok());
}

TEST(DatasetsTest, UnreachableDownloadIsAClearError) {
  Dirs d;
  auto s = Resolve("http://127.0.0.1:1/data.csv", d.Options());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.status().message(), HasSubstr("cannot download dataset"));
}

TEST(DatasetsTest, CsvWithQuotes) {
  Dirs d;
  auto t = ReadCsv(d.root + "/sub/train.csv");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->header, ElementsAre("a", "b", "label"));
  ASSERT_EQ(t->rows.size(), 2u);
  EXPECT_THAT(t->rows[1], ElementsAre("3", "4,5", "y"));
  std::ofstream(d.root + "/bad.csv") << "a,b\n1\n";
  EXPECT_THAT(ReadCsv(d.root + "/bad.csv").status().message(), HasSubstr("row 2 has 1 fields"));
}

}  // namespace
}  // namespace trainmesh::datasets
