// Dataset bytes, parsed (torch-free, no I/O): CSV text into a table, a numpy
// .npz archive into named matrices, and those into the frames and
// demonstrations the recipes read. The bytes come from outside (a user's
// download), so every parser here is bounded (rows, columns, archive members,
// header and data sizes are checked against limits and against the bytes
// really there; nothing is allocated that the input does not hold) and its
// errors say where a problem is (a row, a column number, an archive member),
// never quoting the input. Fuzzed by csv_fuzz and npz_fuzz.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace trainmesh::datasets {

// A CSV file with a header row (RFC 4180 quoting).
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct CsvLimits {
  size_t max_rows = 50'000'000;
  size_t max_columns = 100'000;
  size_t max_field_bytes = size_t{1} << 20;
};

// INVALID_ARGUMENT (with a row or line number) for an empty text, an
// unterminated quote, a row whose field count differs from the header's, or
// a limit passed.
absl::StatusOr<Table> ParseCsv(absl::string_view text, const CsvLimits& limits = {});

struct Column {
  std::string name;
  bool numeric = true;
  std::vector<double> numbers;     // when numeric (NaN for an empty cell)
  std::vector<std::string> texts;  // when not
  size_t size() const { return numeric ? numbers.size() : texts.size(); }
};

struct Frame {
  std::vector<Column> columns;
  size_t rows() const { return columns.empty() ? 0 : columns[0].size(); }
  // nullptr when absent.
  const Column* Find(const std::string& name) const;
};

// A column is numeric when every non-empty cell parses as a number.
Frame FromTable(const Table& table);

struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data;  // row-major
};

// Observation/action pairs for behaviour cloning.
struct Demonstrations {
  Matrix obs;
  Matrix act;
};

struct NpzLimits {
  size_t max_arrays = 1024;
  // Decoded float32 bytes of all arrays together.
  int64_t max_total_bytes = int64_t{8} << 30;
};

// The named arrays (member names without ".npy") of an uncompressed .npz
// archive (numpy.savez; zip64 records as numpy writes them): .npy versions
// 1-3, dtypes float32/float64/int32/int64 little-endian, C order, 1-D or 2-D
// (1-D arrays become one column). Members not named *.npy are skipped.
// INVALID_ARGUMENT for anything else: compressed or encrypted members,
// multi-disk archives, members that overlap or run past the end, a header
// that is not numpy's, a shape that disagrees with the data, a limit passed.
absl::StatusOr<std::map<std::string, Matrix>> ParseNpz(absl::string_view bytes,
                                                       const NpzLimits& limits = {});

// Demonstrations from arrays named "obs" and "act", or from a table whose
// columns are named obs_* and act_*. INVALID_ARGUMENT when they are missing,
// not numeric, of different lengths, shorter than 2 rows, or not finite.
absl::StatusOr<Demonstrations> DemonstrationsFromArrays(std::map<std::string, Matrix> arrays);
absl::StatusOr<Demonstrations> DemonstrationsFromTable(const Table& table);

}  // namespace trainmesh::datasets
