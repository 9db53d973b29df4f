#include "services/metrics/price_table.h"

#include "gtest/gtest.h"

namespace trainmesh::metrics {
namespace {

TEST(PriceTableTest, ExactThenKindThenDefault) {
  auto table = PriceTable::Parse("cpu=0.05, cuda=2.5, cuda:NVIDIA H100 80GB HBM3=4, default=0.01", "EUR");
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->PerHour("cuda:NVIDIA H100 80GB HBM3"), 4);
  EXPECT_EQ(table->PerHour("cuda:NVIDIA A10"), 2.5);
  EXPECT_EQ(table->PerHour("cpu"), 0.05);
  EXPECT_EQ(table->PerHour("tpu"), 0.01);
  EXPECT_EQ(table->currency(), "EUR");
  EXPECT_EQ(PriceTable::Parse("", "USD")->PerHour("cpu"), 0);
}

TEST(PriceTableTest, BadEntriesAreNamed) {
  auto bad = PriceTable::Parse("cpu=cheap", "USD");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(PriceTable::Parse("cpu=-1", "USD").ok());
  EXPECT_FALSE(PriceTable::Parse("cpu", "USD").ok());
}

}  // namespace
}  // namespace trainmesh::metrics
