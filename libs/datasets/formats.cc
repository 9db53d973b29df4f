#include "libs/datasets/formats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace trainmesh::datasets {
namespace {

// ---- CSV -------------------------------------------------------------------

class CsvParser {
 public:
  explicit CsvParser(const CsvLimits& limits) : limits_(limits) {}

  absl::StatusOr<Table> Parse(absl::string_view text) {
    for (size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (quoted_) {
        if (c == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field_.push_back('"');
            ++i;
          } else {
            quoted_ = false;
          }
        } else {
          field_.push_back(c);
        }
      } else if (c == '"') {
        quoted_ = true;
        quote_line_ = line_;
      } else if (c == ',') {
        if (auto s = EndField(); !s.ok()) return s;
      } else if (c == '\n') {
        if (auto s = EndRow(); !s.ok()) return s;
      } else if (c != '\r') {
        field_.push_back(c);
      }
      if (c == '\n') ++line_;
      if (field_.size() > limits_.max_field_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "CSV line ", line_, " has a field longer than ", limits_.max_field_bytes, " bytes"));
      }
    }
    if (quoted_) {
      return absl::InvalidArgumentError(
          absl::StrCat("CSV has an unterminated quoted field starting on line ", quote_line_));
    }
    if (!field_.empty() || !row_.empty()) {
      if (auto s = EndRow(); !s.ok()) return s;
    }
    if (table_.header.empty())
      return absl::InvalidArgumentError("the CSV is empty (no header row)");
    return std::move(table_);
  }

 private:
  absl::Status EndField() {
    if (row_.size() >= limits_.max_columns) {
      return absl::InvalidArgumentError(
          absl::StrCat("CSV line ", line_, " has more than ", limits_.max_columns, " fields"));
    }
    row_.push_back(std::move(field_));
    field_.clear();
    return absl::OkStatus();
  }

  absl::Status EndRow() {
    if (auto s = EndField(); !s.ok()) return s;
    std::vector<std::string> row = std::move(row_);
    row_.clear();
    if (row.size() == 1 && row[0].empty()) return absl::OkStatus();  // a blank line
    if (table_.header.empty()) {
      table_.header = std::move(row);
      return absl::OkStatus();
    }
    if (row.size() != table_.header.size()) {
      return absl::InvalidArgumentError(absl::StrCat("CSV row ", table_.rows.size() + 2, " has ",
                                                     row.size(), " fields; the header has ",
                                                     table_.header.size()));
    }
    if (table_.rows.size() >= limits_.max_rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("CSV has more than ", limits_.max_rows, " rows"));
    }
    table_.rows.push_back(std::move(row));
    return absl::OkStatus();
  }

  const CsvLimits& limits_;
  Table table_;
  std::vector<std::string> row_;
  std::string field_;
  bool quoted_ = false;
  size_t line_ = 1;
  size_t quote_line_ = 0;
};

// ---- .npz ------------------------------------------------------------------

// Whether [at, at + len) lies inside a buffer of `size` bytes (no overflow).
bool Fits(size_t size, uint64_t at, uint64_t len) { return at <= size && len <= size - at; }

// A little-endian integer; the caller has checked Fits.
uint64_t Le(absl::string_view b, uint64_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEnd = 0x06054b50;
constexpr uint32_t kEnd64 = 0x06064b50;
constexpr uint32_t kEnd64Locator = 0x07064b50;
constexpr size_t kMaxNpyHeader = 1 << 16;
constexpr int64_t kMaxDimension = int64_t{1} << 40;

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("not a readable .npz archive: ", why));
}

// How an archive member is named in errors: its name when it is a plain
// identifier ("array obs"), else its position, so that no arbitrary bytes of
// the file end up in a message.
std::string Describe(const std::string& name, size_t index) {
  const bool plain =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
               c == '.';
      });
  return plain ? absl::StrCat("array ", name)
               : absl::StrCat("array ", index + 1, " of the archive");
}

// numpy's header: a Python dict literal with exactly the keys descr (a
// string), fortran_order (True/False) and shape (a tuple of integers), then
// spaces and a newline.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

class HeaderParser {
 public:
  explicit HeaderParser(absl::string_view text) : s_(text) {}

  absl::StatusOr<NpyHeader> Parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    Space();
    if (!Eat('{')) return Error();
    while (true) {
      Space();
      if (Eat('}')) break;
      std::string key;
      if (!String(&key)) return Error();
      Space();
      if (!Eat(':')) return Error();
      Space();
      if (key == "descr" && !have_descr) {
        if (!String(&h.descr)) return Error();
        have_descr = true;
      } else if (key == "fortran_order" && !have_order) {
        if (Word("True")) {
          h.fortran_order = true;
        } else if (!Word("False")) {
          return Error();
        }
        have_order = true;
      } else if (key == "shape" && !have_shape) {
        if (!Shape(&h.shape)) return Error();
        have_shape = true;
      } else {
        return Error();
      }
      Space();
      if (Eat(',')) continue;
      Space();
      if (Eat('}')) break;
      return Error();
    }
    if (!have_descr || !have_order || !have_shape) return Error();
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\n' || s_[at_] == '\0')) ++at_;
    if (at_ != s_.size()) return Error();
    return h;
  }

 private:
  absl::Status Error() const { return absl::InvalidArgumentError("its header is not numpy's"); }
  void Space() {
    while (at_ < s_.size() && s_[at_] == ' ') ++at_;
  }
  bool Eat(char c) {
    if (at_ < s_.size() && s_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  bool Word(absl::string_view w) {
    if (!absl::StartsWith(s_.substr(at_), w)) return false;
    at_ += w.size();
    return true;
  }
  // A quoted string without escapes (numpy's keys and dtype strings).
  bool String(std::string* out) {
    if (at_ >= s_.size() || (s_[at_] != '\'' && s_[at_] != '"')) return false;
    const char quote = s_[at_++];
    const size_t end = s_.find(quote, at_);
    if (end == absl::string_view::npos || end - at_ > 64) return false;
    *out = std::string(s_.substr(at_, end - at_));
    if (out->find('\\') != std::string::npos) return false;
    at_ = end + 1;
    return true;
  }
  // "()", "(n,)", "(n, m)", "(n, m,)"; Python 2 numpy wrote "3L".
  bool Shape(std::vector<int64_t>* shape) {
    if (!Eat('(')) return false;
    while (true) {
      Space();
      if (Eat(')')) return true;
      const size_t start = at_;
      while (at_ < s_.size() && absl::ascii_isdigit(static_cast<unsigned char>(s_[at_]))) ++at_;
      int64_t n = 0;
      if (at_ == start || at_ - start > 13 ||
          !absl::SimpleAtoi(s_.substr(start, at_ - start), &n) || n > kMaxDimension ||
          shape->size() >= 8) {
        return false;
      }
      Eat('L');
      shape->push_back(n);
      Space();
      if (Eat(',')) continue;
      Space();
      return Eat(')');
    }
  }

  absl::string_view s_;
  size_t at_ = 0;
};

absl::StatusOr<Matrix> ParseNpy(const std::string& what, absl::string_view npy) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, " in the .npz: ", why));
  };
  if (npy.size() < 10 || npy.substr(0, 6) != "\x93NUMPY") return bad("not a .npy array");
  const int major = static_cast<unsigned char>(npy[6]);
  uint64_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = Le(npy, 8, 2);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (npy.size() < 12) return bad("truncated header");
    header_len = Le(npy, 8, 4);
    start = 12;
  } else {
    return bad("unknown .npy format version");
  }
  if (header_len > kMaxNpyHeader) return bad("header too large");
  if (!Fits(npy.size(), start, header_len)) return bad("truncated header");
  auto header = HeaderParser(npy.substr(start, header_len)).Parse();
  if (!header.ok()) return bad(header.status().message());
  if (header->fortran_order) return bad("Fortran order is not supported");
  int width = 0;
  const std::string& descr = header->descr;
  if (descr == "<f4" || descr == "<i4") width = 4;
  if (descr == "<f8" || descr == "<i8") width = 8;
  if (width == 0) {
    // A dtype string is named only when it looks like one.
    const bool plain = descr.size() >= 2 && descr.size() <= 5 &&
                       std::all_of(descr.begin(), descr.end(), [](char c) {
                         return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '<' ||
                                c == '>' || c == '|' || c == '=';
                       });
    return bad(absl::StrCat("dtype ", plain ? descr + " " : "",
                            "is not supported (use float32/64 or int32/64, little-endian)"));
  }
  const std::vector<int64_t>& shape = header->shape;
  if (shape.empty() || shape.size() > 2) return bad("only 1-D and 2-D arrays are supported");
  Matrix m;
  m.rows = shape[0];
  m.cols = shape.size() == 2 ? shape[1] : 1;
  if (m.cols == 0 && m.rows > 0) return bad("a 2-D array needs at least one column");
  const absl::string_view body = npy.substr(start + header_len);
  // rows * cols is computed only once it is known to fit in the data.
  const uint64_t room = body.size() / static_cast<uint64_t>(width);
  const uint64_t rows = static_cast<uint64_t>(m.rows), cols = static_cast<uint64_t>(m.cols);
  if ((cols != 0 && rows > room / cols) || rows * cols * width != body.size()) {
    return bad(absl::StrCat("its shape does not match its data (", body.size(), " bytes of ", width,
                            "-byte values)"));
  }
  const uint64_t n = rows * cols;
  m.data.resize(static_cast<size_t>(n));
  for (size_t i = 0; i < n; ++i) {
    const char* p = body.data() + i * width;
    if (descr == "<f4") {
      std::memcpy(&m.data[i], p, 4);
    } else if (descr == "<f8") {
      double d;
      std::memcpy(&d, p, 8);
      m.data[i] = static_cast<float>(d);  // beyond float's range: infinite, then refused
    } else if (descr == "<i4") {
      int32_t v;
      std::memcpy(&v, p, 4);
      m.data[i] = static_cast<float>(v);
    } else {
      int64_t v;
      std::memcpy(&v, p, 8);
      m.data[i] = static_cast<float>(v);
    }
  }
  return m;
}

struct Member {
  std::string name;
  uint64_t local = 0;  // offset of its local header
  uint64_t data = 0;   // offset of its bytes
  uint64_t size = 0;
};

// The central directory: where each .npy member is and how large.
absl::StatusOr<std::vector<Member>> Members(absl::string_view b, const NpzLimits& limits) {
  if (b.size() < 22) return Bad("too short");
  // The end record is in the last 22 + 65535 (comment) bytes.
  size_t eocd = std::string::npos;
  for (size_t i = b.size() - 22 + 1; i-- > 0 && b.size() - i <= 22 + 0xFFFF;) {
    if (Le(b, i, 4) == kEnd) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return Bad("no end of central directory");
  uint64_t disk = Le(b, eocd + 4, 2), cd_disk = Le(b, eocd + 6, 2);
  uint64_t disk_entries = Le(b, eocd + 8, 2), entries = Le(b, eocd + 10, 2);
  uint64_t cd_size = Le(b, eocd + 12, 4), cd = Le(b, eocd + 16, 4);
  if (disk == 0xFFFF || cd_disk == 0xFFFF || disk_entries == 0xFFFF || entries == 0xFFFF ||
      cd_size == 0xFFFFFFFF || cd == 0xFFFFFFFF) {
    if (eocd < 20 || Le(b, eocd - 20, 4) != kEnd64Locator) return Bad("no zip64 end record");
    const uint64_t z = Le(b, eocd - 20 + 8, 8);
    if (!Fits(b.size(), z, 56) || Le(b, z, 4) != kEnd64) return Bad("bad zip64 end record");
    disk = Le(b, z + 16, 4);
    cd_disk = Le(b, z + 20, 4);
    disk_entries = Le(b, z + 24, 8);
    entries = Le(b, z + 32, 8);
    cd_size = Le(b, z + 40, 8);
    cd = Le(b, z + 48, 8);
  }
  if (disk != 0 || cd_disk != 0 || disk_entries != entries) {
    return Bad("multi-disk archives are not supported");
  }
  if (entries > limits.max_arrays) {
    return Bad(absl::StrCat("more than ", limits.max_arrays, " members"));
  }
  if (!Fits(b.size(), cd, cd_size)) return Bad("the central directory runs past the end");
  const absl::string_view dir = b.substr(cd, cd_size);
  std::vector<Member> members;
  uint64_t at = 0;
  for (uint64_t e = 0; e < entries; ++e) {
    if (!Fits(dir.size(), at, 46) || Le(dir, at, 4) != kCentralHeader) {
      return Bad("bad central directory");
    }
    const uint64_t flags = Le(dir, at + 8, 2), method = Le(dir, at + 10, 2);
    uint64_t csize = Le(dir, at + 20, 4), size = Le(dir, at + 24, 4);
    const uint64_t name_len = Le(dir, at + 28, 2), extra_len = Le(dir, at + 30, 2),
                   comment_len = Le(dir, at + 32, 2), start_disk = Le(dir, at + 34, 2);
    uint64_t local = Le(dir, at + 42, 4);
    if (!Fits(dir.size(), at + 46, name_len + extra_len + comment_len)) {
      return Bad("bad central directory");
    }
    Member m;
    m.name = std::string(dir.substr(at + 46, name_len));
    // Zip64 extra field: the 64-bit values of the fields that are 0xFFFFFFFF,
    // in this order.
    const absl::string_view extra = dir.substr(at + 46 + name_len, extra_len);
    for (uint64_t x = 0; x + 4 <= extra.size();) {
      const uint64_t id = Le(extra, x, 2), len = Le(extra, x + 2, 2);
      if (!Fits(extra.size(), x + 4, len)) return Bad("bad extra field");
      if (id == 1) {
        uint64_t v = x + 4;
        for (uint64_t* field : {&size, &csize, &local}) {
          if (*field != 0xFFFFFFFF) continue;
          if (v + 8 > x + 4 + len) return Bad("bad zip64 extra field");
          *field = Le(extra, v, 8);
          v += 8;
        }
      }
      x += 4 + len;
    }
    at += 46 + name_len + extra_len + comment_len;
    if (!absl::EndsWith(m.name, ".npy")) continue;  // not an array
    m.name.resize(m.name.size() - 4);
    const std::string what = Describe(m.name, members.size());
    if (flags & 1) return Bad(absl::StrCat(what, " is encrypted"));
    if (method != 0) {
      return absl::InvalidArgumentError(
          "compressed .npz archives (numpy.savez_compressed) are not supported; save with "
          "numpy.savez");
    }
    if (start_disk != 0 && start_disk != 0xFFFF) {
      return Bad("multi-disk archives are not supported");
    }
    if (csize != size) return Bad(absl::StrCat(what, " has inconsistent sizes"));
    if (!Fits(b.size(), local, 30) || Le(b, local, 4) != kLocalHeader) {
      return Bad(absl::StrCat(what, " has a bad local header"));
    }
    if (Le(b, local + 8, 2) != 0) {
      return absl::InvalidArgumentError(
          "compressed .npz archives (numpy.savez_compressed) are not supported; save with "
          "numpy.savez");
    }
    m.local = local;
    m.data = local + 30 + Le(b, local + 26, 2) + Le(b, local + 28, 2);
    m.size = size;
    if (!Fits(b.size(), m.data, m.size)) return Bad(absl::StrCat(what, " runs past the end"));
    for (const Member& other : members) {
      if (other.name == m.name) return Bad(absl::StrCat(what, " appears twice"));
    }
    members.push_back(std::move(m));
  }
  // Members may not share bytes: each byte of the file decodes at most once,
  // so what is allocated stays within the file's size.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const Member& m : members) spans.emplace_back(m.local, m.data + m.size);
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) return Bad("members overlap");
  }
  return members;
}

absl::Status CheckFinite(const Matrix& m, const std::string& what) {
  for (size_t i = 0; i < m.data.size(); ++i) {
    if (!std::isfinite(m.data[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has a missing or non-finite value in row ", i / static_cast<size_t>(m.cols) + 1));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Demonstrations> Checked(Demonstrations d) {
  if (d.obs.rows != d.act.rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("obs has ", d.obs.rows, " rows but act has ", d.act.rows));
  }
  if (d.obs.rows < 2) return absl::InvalidArgumentError("the dataset needs at least 2 rows");
  if (auto s = CheckFinite(d.obs, "obs"); !s.ok()) return s;
  if (auto s = CheckFinite(d.act, "act"); !s.ok()) return s;
  return d;
}

}  // namespace

absl::StatusOr<Table> ParseCsv(absl::string_view text, const CsvLimits& limits) {
  return CsvParser(limits).Parse(text);
}

const Column* Frame::Find(const std::string& name) const {
  for (const Column& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Frame FromTable(const Table& table) {
  Frame f;
  for (size_t j = 0; j < table.header.size(); ++j) {
    Column c;
    c.name = table.header[j];
    c.numbers.reserve(table.rows.size());
    for (const auto& row : table.rows) {
      const absl::string_view cell = absl::StripAsciiWhitespace(row[j]);
      double v = std::numeric_limits<double>::quiet_NaN();
      if (!cell.empty() && (!absl::SimpleAtod(cell, &v) || !std::isfinite(v))) {
        c.numeric = false;
        break;
      }
      c.numbers.push_back(v);
    }
    if (!c.numeric) {
      c.numbers.clear();
      c.texts.reserve(table.rows.size());
      for (const auto& row : table.rows) c.texts.emplace_back(absl::StripAsciiWhitespace(row[j]));
    }
    f.columns.push_back(std::move(c));
  }
  return f;
}

absl::StatusOr<std::map<std::string, Matrix>> ParseNpz(absl::string_view bytes,
                                                       const NpzLimits& limits) {
  auto members = Members(bytes, limits);
  if (!members.ok()) return members.status();
  std::map<std::string, Matrix> out;
  int64_t total = 0;
  for (size_t i = 0; i < members->size(); ++i) {
    const Member& m = (*members)[i];
    const std::string what = Describe(m.name, i);
    auto matrix = ParseNpy(what, bytes.substr(m.data, m.size));
    if (!matrix.ok()) return matrix.status();
    total += static_cast<int64_t>(matrix->data.size() * sizeof(float));
    if (total > limits.max_total_bytes) {
      return Bad(absl::StrCat("its arrays hold more than ", limits.max_total_bytes, " bytes"));
    }
    out[m.name] = std::move(*matrix);
  }
  return out;
}

absl::StatusOr<Demonstrations> DemonstrationsFromArrays(std::map<std::string, Matrix> arrays) {
  auto obs = arrays.find("obs"), act = arrays.find("act");
  if (obs == arrays.end() || act == arrays.end()) {
    return absl::InvalidArgumentError("the .npz needs arrays named \"obs\" and \"act\"");
  }
  Demonstrations d;
  d.obs = std::move(obs->second);
  d.act = std::move(act->second);
  return Checked(std::move(d));
}

absl::StatusOr<Demonstrations> DemonstrationsFromTable(const Table& table) {
  // Columns are named by position: their names are the file's content.
  std::vector<size_t> obs, act;
  for (size_t j = 0; j < table.header.size(); ++j) {
    if (absl::StartsWith(table.header[j], "obs")) obs.push_back(j);
    if (absl::StartsWith(table.header[j], "act")) act.push_back(j);
  }
  if (obs.empty() || act.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the CSV needs observation columns named obs_* and action columns named act_*; its ",
        table.header.size(), " columns include ", obs.size(), " obs_* and ", act.size(),
        " act_* columns"));
  }
  auto fill = [&](const std::vector<size_t>& cols, Matrix* m) -> absl::Status {
    m->rows = static_cast<int64_t>(table.rows.size());
    m->cols = static_cast<int64_t>(cols.size());
    m->data.resize(table.rows.size() * cols.size());
    for (size_t i = 0; i < table.rows.size(); ++i) {
      for (size_t j = 0; j < cols.size(); ++j) {
        const absl::string_view cell = absl::StripAsciiWhitespace(table.rows[i][cols[j]]);
        double v = std::numeric_limits<double>::quiet_NaN();  // empty: missing
        if (!cell.empty() && !absl::SimpleAtod(cell, &v)) {
          return absl::InvalidArgumentError(
              absl::StrCat("CSV row ", i + 2, ", column ", cols[j] + 1, " is not a number"));
        }
        m->data[i * cols.size() + j] = static_cast<float>(v);
      }
    }
    return absl::OkStatus();
  };
  Demonstrations d;
  if (auto s = fill(obs, &d.obs); !s.ok()) return s;
  if (auto s = fill(act, &d.act); !s.ok()) return s;
  return Checked(std::move(d));
}

}  // namespace trainmesh::datasets
