#pragma once
/// RFC 4180 CSV parsing for the dataset readers (CBIS-DDSM description CSVs, INbreast.csv), and the
/// report every dataset reader returns beside its records (what it skipped and why).
///
/// Accepted: LF or CRLF row ends (a lone CR also ends a line), quoted fields holding the delimiter,
/// doubled quotes ("") and line breaks, a configurable delimiter, a UTF-8 byte order mark, blank lines
/// (skipped). Rejected with an io_error naming the file, the line of the row's first line and the
/// column: a row whose field count differs from the header's, an unterminated quoted field, text after a
/// closing quote, and (on lookup) a column the header lacks.
#include <cctype>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mammocl/core/error.hpp"

namespace mammocl::data {

/// One entry a dataset reader left out of its records, with the reason in words.
struct skipped_entry {
  std::string item;    ///< what was skipped: an image, a row ("file:line"), an ROI
  std::string reason;  ///< why, as a sentence fragment
};

/// What a dataset reader read and what it left out.
struct dataset_report {
  std::size_t rows_read = 0;            ///< annotation rows (or entries) parsed
  std::vector<skipped_entry> skipped;   ///< everything left out, in reading order
  std::vector<std::string> warnings;    ///< kept, but odd (e.g. a missing optional file)

  void skip(std::string item, std::string reason) { skipped.push_back({std::move(item), std::move(reason)}); }
};

/// How to split a CSV text into fields.
struct csv_options {
  char delimiter = ',';          ///< ',' for CBIS-DDSM, ';' for INbreast.csv
  char quote = '"';              ///< RFC 4180 quote character
  bool has_header = true;        ///< first non-blank row is the header
  bool skip_blank_lines = true;  ///< lines with no characters at all are not rows
};

/// A parsed CSV file: the header and the rows, each row with the line its first character is on.
struct csv_table {
  std::string source;                          ///< file name used in messages
  std::vector<std::string> header;             ///< header fields as written
  std::size_t header_line = 0;                 ///< 1-based line of the header (0 without header)
  std::vector<std::vector<std::string>> rows;  ///< data rows, each with header.size() fields
  std::vector<std::size_t> row_lines;          ///< 1-based line where each row starts

  /// Index of the first column whose header matches one of `names` (trimmed, ASCII case-insensitive),
  /// or nullopt.
  [[nodiscard]] std::optional<std::size_t> find_column(std::initializer_list<std::string_view> names) const {
    for (const auto n : names)
      for (std::size_t i = 0; i < header.size(); ++i)
        if (same_name(header[i], n)) return i;
    return std::nullopt;
  }

  /// Like find_column, but a missing column is an io_error naming the file, the header line and every
  /// accepted spelling.
  [[nodiscard]] std::size_t column(std::initializer_list<std::string_view> names) const {
    if (auto i = find_column(names)) return *i;
    std::string spell;
    for (const auto n : names) {
      if (!spell.empty()) spell += "' or '";
      spell += n;
    }
    MAMMOCL_THROW(io_error, source, ":", header_line, ": no column '", spell, "' in the header");
  }

  /// Compares header names: surrounding spaces ignored, ASCII case-insensitive.
  [[nodiscard]] static bool same_name(std::string_view a, std::string_view b) noexcept {
    auto trim = [](std::string_view s) {
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
      return s;
    };
    a = trim(a);
    b = trim(b);
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
        return false;
    return true;
  }
};

/// `s` without leading and trailing whitespace (spaces, tabs, CR, LF): CBIS-DDSM path fields end in an
/// LF inside their quotes and INbreast pads blank fields with spaces.
[[nodiscard]] inline std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

/// Parses CSV text held in memory; `name` is used in error messages (the memory entry point, also used by
/// the fuzz target). Throws io_error on malformed input.
[[nodiscard]] inline csv_table parse_csv(std::string_view text, std::string_view name, const csv_options& opt = {}) {
  MAMMOCL_CHECK(opt.delimiter != opt.quote && opt.delimiter != '\n' && opt.delimiter != '\r', config_error,
                "parse_csv(", name, "): the delimiter must differ from the quote and from line ends");
  csv_table t;
  t.source = std::string(name);
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);

  std::size_t i = 0, line = 1;
  const std::size_t n = text.size();
  bool header_done = !opt.has_header;
  std::vector<std::string> fields;
  while (i < n) {
    const std::size_t row_line = line;
    // Blank line: nothing before the line end.
    if (opt.skip_blank_lines && (text[i] == '\n' || text[i] == '\r')) {
      if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
      ++i;
      ++line;
      continue;
    }
    fields.clear();
    std::string field;
    bool row_end = false;
    while (!row_end) {
      field.clear();
      const std::size_t column = fields.size() + 1;
      if (i < n && text[i] == opt.quote) {
        const std::size_t open_line = line;
        ++i;
        bool closed = false;
        while (i < n) {
          const char c = text[i];
          if (c == opt.quote) {
            if (i + 1 < n && text[i + 1] == opt.quote) {
              field += opt.quote;
              i += 2;
              continue;
            }
            ++i;
            closed = true;
            break;
          }
          if (c == '\n' || (c == '\r' && !(i + 1 < n && text[i + 1] == '\n'))) ++line;
          field += c;
          ++i;
        }
        MAMMOCL_CHECK(closed, io_error, name, ":", row_line, ": column ", column,
                      ": unterminated quoted field (opened on line ", open_line, ", the file ends inside it)");
        MAMMOCL_CHECK(i >= n || text[i] == opt.delimiter || text[i] == '\n' || text[i] == '\r', io_error, name,
                      ":", row_line, ": column ", column, ": unexpected character '", text[i],
                      "' after a closing quote (expected the delimiter or the end of the line)");
      } else {
        while (i < n && text[i] != opt.delimiter && text[i] != '\n' && text[i] != '\r') {
          MAMMOCL_CHECK(text[i] != opt.quote, io_error, name, ":", line, ": column ", column,
                        ": quote inside an unquoted field (RFC 4180 needs the whole field quoted)");
          field += text[i++];
        }
      }
      fields.push_back(field);
      if (i < n && text[i] == opt.delimiter) {
        ++i;
        continue;
      }
      // End of line or of text.
      if (i < n && text[i] == '\r') ++i;
      if (i < n && text[i] == '\n') ++i;
      ++line;
      row_end = true;
    }
    if (!header_done) {
      t.header = fields;
      t.header_line = row_line;
      header_done = true;
      continue;
    }
    if (opt.has_header && fields.size() != t.header.size()) {
      if (fields.size() > t.header.size())
        MAMMOCL_THROW(io_error, name, ":", row_line, ": column ", t.header.size() + 1, ": row has ", fields.size(),
                      " fields, the header (line ", t.header_line, ") has ", t.header.size());
      MAMMOCL_THROW(io_error, name, ":", row_line, ": column ", fields.size() + 1, " ('",
                    t.header[fields.size()], "') missing: row has ", fields.size(), " fields, the header (line ",
                    t.header_line, ") has ", t.header.size());
    }
    t.rows.push_back(fields);
    t.row_lines.push_back(row_line);
  }
  MAMMOCL_CHECK(!opt.has_header || header_done, io_error, name, ": empty file, expected a header row");
  return t;
}

/// Reads the whole file `path` as bytes; io_error naming the file when it cannot be opened or read.
[[nodiscard]] inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  MAMMOCL_CHECK(in.good(), io_error, path.string(), ": cannot open for reading");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MAMMOCL_CHECK(!in.bad(), io_error, path.string(), ": read error");
  return s;
}

/// Reads and parses the CSV file at `path` (messages name the path).
[[nodiscard]] inline csv_table read_csv(const std::filesystem::path& path, const csv_options& opt = {}) {
  return parse_csv(read_text_file(path), path.string(), opt);
}

}  // namespace mammocl::data
