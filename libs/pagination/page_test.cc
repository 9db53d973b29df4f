#include "libs/pagination/page.h"

#include "gmock/gmock.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "gtest/gtest.h"

namespace trainmesh::pagination {
namespace {

TEST(PageTest, TheExtraRowSaysWhetherMoreFollow) {
  EXPECT_EQ(RowsToRead(50), 51);
  std::vector<int> rows = {1, 2, 3, 4};  // read for a page of 3
  EXPECT_TRUE(CutToPage(rows, 3));
  EXPECT_THAT(rows, ::testing::ElementsAre(1, 2, 3));
  std::vector<int> last = {1, 2, 3};  // exactly a page: nothing follows
  EXPECT_FALSE(CutToPage(last, 3));
  EXPECT_THAT(last, ::testing::ElementsAre(1, 2, 3));
  std::vector<int> none;
  EXPECT_FALSE(CutToPage(none, 3));
  EXPECT_TRUE(none.empty());
}

TEST(PageTest, FillPageMovesThePageIntoTheResponse) {
  std::vector<std::string> rows = {"a", "b", "c"};  // read for a page of 2
  google::protobuf::RepeatedPtrField<std::string> out;
  EXPECT_TRUE(FillPage(rows, 2, &out));
  EXPECT_THAT(out, ::testing::ElementsAre("a", "b"));
  std::vector<std::string> last = {"d"};
  EXPECT_FALSE(FillPage(last, 2, &out));
  EXPECT_THAT(out, ::testing::ElementsAre("a", "b", "d"));
}

TEST(PageTest, PageSizeDefaultsZeroAndRefusesWhatIsOutOfRange) {
  status::FieldViolations v;
  EXPECT_EQ(PageSize(0, &v), 50);
  EXPECT_EQ(PageSize(7, &v), 7);
  EXPECT_EQ(PageSize(1000, &v), 1000);
  EXPECT_EQ(PageSize(0, &v, {.default_size = 100, .max = 10000}, "limit"), 100);
  EXPECT_TRUE(v.empty());
  PageSize(-1, &v);
  PageSize(1001, &v);
  PageSize(10001, &v, {.default_size = 100, .max = 10000}, "limit");
  EXPECT_THAT(v.violations(), ::testing::ElementsAre(
                                  status::FieldViolation{"page_size", "must be between 0 and 1000"},
                                  status::FieldViolation{"page_size", "must be between 0 and 1000"},
                                  status::FieldViolation{"limit", "must be between 0 and 10000"}));
}

}  // namespace
}  // namespace trainmesh::pagination
