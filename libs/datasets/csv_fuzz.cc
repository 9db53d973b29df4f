// libFuzzer target for the CSV reader, as far as a downloaded file's bytes go:
// the table, its typed columns and the demonstrations made of them. Any input
// is an error or a table that keeps the parser's promises (every row as wide
// as the header, no more text than the input held), never a crash or an
// error quoting the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "libs/datasets/formats.h"
#include "libs/datasets/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trainmesh::datasets;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  CsvLimits limits;
  limits.max_rows = 1000;
  limits.max_columns = 100;
  limits.max_field_bytes = 256;
  auto table = ParseCsv(input, limits);
  if (!table.ok()) {
    fuzzing::CheckError(table.status());
    return 0;
  }
  if (table->header.empty() || table->header.size() > limits.max_columns) std::abort();
  if (table->rows.size() > limits.max_rows) std::abort();
  size_t bytes = 0;
  for (const std::string& h : table->header) bytes += h.size();
  for (const auto& row : table->rows) {
    if (row.size() != table->header.size()) std::abort();
    for (const std::string& cell : row) bytes += cell.size();
  }
  if (bytes > size) std::abort();
  const Frame frame = FromTable(*table);
  if (frame.columns.size() != table->header.size()) std::abort();
  for (const Column& c : frame.columns) {
    if (c.size() != table->rows.size()) std::abort();
  }
  fuzzing::CheckDemonstrations(DemonstrationsFromTable(*table));
  return 0;
}
