#pragma once
/// The evaluation report (METHOD.md §6): the poster's tables in Markdown and one self-contained HTML
/// page with the tables and SVG plots.
///
/// Inputs are plain data (numbers, strings, point lists), so the report depends on nothing else in
/// eval/: callers fill the structures from eval/auc, eval/bootstrap, eval/invariance and eval/tsne.
///
/// Each table type converts to a `text_table` (formatted cells), which renders as Markdown or as an
/// HTML table. Formatting refuses values that would put a silent NaN or infinity in a table: it throws
/// numeric_error naming the table, row, column and field. Output is deterministic (locale-independent
/// number formatting, no time stamps): the same input gives byte-identical text.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/eval/svg.hpp"

namespace mammocl::eval {

// ------------------------------------------------------------------------------------------------
// Cells
// ------------------------------------------------------------------------------------------------

/// A point estimate with optional standard error, optional confidence interval and optional p-value.
/// Rendered "0.812 ± 0.014 [0.784, 0.840] (p = 0.031)", each optional part left out when unset.
struct estimate {
  double value = 0;
  std::optional<double> se;                        ///< finite, >= 0
  std::optional<std::pair<double, double>> ci;     ///< finite, low <= high
  std::optional<double> p;                         ///< in [0, 1]
};

/// "p = 0.031" with three decimals, or "p < 0.001" below 0.001. Throws numeric_error unless p is in
/// [0, 1]; `where` names the cell in the message.
[[nodiscard]] inline std::string format_p(double p, std::string_view where = "p-value") {
  MAMMOCL_CHECK(std::isfinite(p) && p >= 0 && p <= 1, numeric_error, where, ": the p-value ", p,
                " is not in [0, 1]");
  if (p < 0.001) return "p < 0.001";
  return "p = " + format_fixed(p, 3);
}

/// The cell text of `e` with `decimals` digits for value, s.e. and interval; `show_p` false leaves the
/// p-value out (the reference column). Throws numeric_error naming `where` for a non-finite value,
/// s.e. or interval end, a negative s.e., an interval with low > high, or a p outside [0, 1].
[[nodiscard]] inline std::string format_estimate(const estimate& e, int decimals = 3, bool show_p = true,
                                                 std::string_view where = "estimate") {
  MAMMOCL_CHECK(!std::isnan(e.value), numeric_error, where, ": the estimate is NaN");
  MAMMOCL_CHECK(std::isfinite(e.value), numeric_error, where, ": the estimate is infinite (", e.value, ")");
  std::string s = format_fixed(e.value, decimals);
  if (e.se) {
    MAMMOCL_CHECK(std::isfinite(*e.se) && *e.se >= 0, numeric_error, where, ": the standard error ", *e.se,
                  " is not a finite non-negative number");
    s += " ± " + format_fixed(*e.se, decimals);
  }
  if (e.ci) {
    const auto [lo, hi] = *e.ci;
    MAMMOCL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, numeric_error, where, ": the interval [", lo,
                  ", ", hi, "] is not finite and ordered");
    s += " [" + format_fixed(lo, decimals) + ", " + format_fixed(hi, decimals) + "]";
  }
  if (e.p && show_p) s += " (" + format_p(*e.p, where) + ")";
  return s;
}

/// The text of a missing cell.
inline constexpr std::string_view missing_cell = "–";

// ------------------------------------------------------------------------------------------------
// Formatted tables
// ------------------------------------------------------------------------------------------------

/// A table of formatted cells: the common form that renders as Markdown or HTML. Every row has as many
/// cells as the header. The first `label_columns` cells of a row are labels (dataset or strategy
/// names); the others are values the library formatted ("0.812 ± 0.014 (p < 0.001)").
struct text_table {
  std::string caption;              ///< shown above the table; empty for none
  std::vector<std::string> header;  ///< at least one column
  std::vector<std::vector<std::string>> rows;
  std::string note;                 ///< shown below the table; empty for none
  std::size_t label_columns = 1;
};

/// `text` with the characters that Markdown (CommonMark and GitHub tables) would interpret escaped by
/// a backslash: \ ` * _ [ ] < > | ~ #; line breaks become spaces (a table cell is one line).
[[nodiscard]] inline std::string markdown_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    if (std::strchr("\\`*_[]<>|~#", c) != nullptr && c != '\0') out += '\\';
    out += c;
  }
  return out;
}

/// A formatted value for a Markdown table cell: only the characters that would break the table are
/// escaped ('|' and '\\' by a backslash, line breaks become spaces), so "p < 0.001" and "[0.784, 0.840]"
/// stay as written (neither is markup in CommonMark: no tag, no link target follows).
[[nodiscard]] inline std::string markdown_escape_value(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    if (c == '|' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

namespace detail {
inline void check_table(const text_table& t) {
  MAMMOCL_EXPECTS(!t.header.empty(), "table '", t.caption, "': no columns");
  for (std::size_t r = 0; r < t.rows.size(); ++r)
    MAMMOCL_EXPECTS(t.rows[r].size() == t.header.size(), "table '", t.caption, "': row ", r, " has ",
                    t.rows[r].size(), " cells, the header ", t.header.size());
}
}  // namespace detail

/// The table as GitHub-flavoured Markdown: "**caption**", a blank line, the header, the `|---|` rule,
/// one line per row, then (if set) a blank line and the note in italics. Caption, note, header and
/// label cells go through markdown_escape, value cells through markdown_escape_value.
[[nodiscard]] inline std::string to_markdown(const text_table& t) {
  detail::check_table(t);
  std::string s;
  if (!t.caption.empty()) s += "**" + markdown_escape(t.caption) + "**\n\n";
  const auto line = [&](const std::vector<std::string>& cells, bool header) {
    s += '|';
    for (std::size_t c = 0; c < cells.size(); ++c)
      s += ' ' + (header || c < t.label_columns ? markdown_escape(cells[c]) : markdown_escape_value(cells[c])) + " |";
    s += '\n';
  };
  line(t.header, true);
  s += '|';
  for (std::size_t c = 0; c < t.header.size(); ++c) s += "---|";
  s += '\n';
  for (const auto& r : t.rows) line(r, false);
  if (!t.note.empty()) s += "\n_" + markdown_escape(t.note) + "_\n";
  return s;
}

/// The table as an HTML <table> (caption in <caption>, header cells <th scope="col">, the label cells
/// of each row <th scope="row">), well-formed XML, every text XML-escaped; the note follows as a
/// <p class="note">.
[[nodiscard]] inline std::string to_html(const text_table& t) {
  detail::check_table(t);
  std::string s = "<table>\n";
  if (!t.caption.empty()) s += "<caption>" + xml_escape(t.caption) + "</caption>\n";
  s += "<thead><tr>";
  for (const auto& h : t.header) s += "<th scope=\"col\">" + xml_escape(h) + "</th>";
  s += "</tr></thead>\n<tbody>\n";
  for (const auto& r : t.rows) {
    s += "<tr>";
    for (std::size_t c = 0; c < r.size(); ++c)
      s += c < t.label_columns ? "<th scope=\"row\">" + xml_escape(r[c]) + "</th>"
                  : (r[c] == missing_cell ? "<td class=\"missing\">" : "<td>") + xml_escape(r[c]) + "</td>";
    s += "</tr>\n";
  }
  s += "</tbody>\n</table>\n";
  if (!t.note.empty()) s += "<p class=\"note\">" + xml_escape(t.note) + "</p>\n";
  return s;
}

// ------------------------------------------------------------------------------------------------
// The poster table: rows datasets, columns strategies
// ------------------------------------------------------------------------------------------------

/// Rows are datasets ("augmented", "mixed 1", "mixed down-sampled 0.6"), columns strategies ("CE",
/// "SupContr", "SupContr+CE", "DANN", "MMD"); cells[r][c] is the estimate for row r and column c, or
/// empty (shown "–"). The reference column (named by `reference_column`; empty for none) is shown
/// without p; the other columns show their p-value (vs the reference) where set.
struct poster_table {
  std::string caption;
  std::string row_header = "Dataset";
  std::vector<std::string> rows;
  std::vector<std::string> columns;
  std::string reference_column = "CE";
  std::vector<std::vector<std::optional<estimate>>> cells;
  int decimals = 3;

  /// An empty table of the given rows and columns (every cell missing).
  [[nodiscard]] static poster_table make(std::string caption, std::vector<std::string> rows,
                                         std::vector<std::string> columns, std::string reference_column = "CE") {
    poster_table t;
    t.caption = std::move(caption);
    t.rows = std::move(rows);
    t.columns = std::move(columns);
    t.reference_column = std::move(reference_column);
    t.cells.assign(t.rows.size(), std::vector<std::optional<estimate>>(t.columns.size()));
    return t;
  }
  /// Sets the cell of the named row and column; throws config_error for an unknown name.
  void set(std::string_view row, std::string_view column, const estimate& e) {
    cells.resize(rows.size(), std::vector<std::optional<estimate>>(columns.size()));
    cells[index_of(rows, row, "row")].resize(columns.size());
    cells[index_of(rows, row, "row")][index_of(columns, column, "column")] = e;
  }

 private:
  [[nodiscard]] std::size_t index_of(const std::vector<std::string>& names, std::string_view name,
                                     const char* what) const {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return i;
    MAMMOCL_THROW(config_error, "poster table '", caption, "': no ", what, " named '", name, "'");
  }
};

/// Formats every cell. Throws shape_error when `cells` does not have rows x columns entries,
/// config_error when the reference column is set but not among the columns, numeric_error (naming the
/// table, row and column) for a cell that format_estimate refuses.
[[nodiscard]] inline text_table to_text_table(const poster_table& t) {
  MAMMOCL_EXPECTS(!t.columns.empty(), "poster table '", t.caption, "': no columns");
  MAMMOCL_EXPECTS(t.cells.size() == t.rows.size(), "poster table '", t.caption, "': ", t.cells.size(),
                  " rows of cells for ", t.rows.size(), " row names");
  std::size_t ref = t.columns.size();
  for (std::size_t c = 0; c < t.columns.size(); ++c)
    if (t.columns[c] == t.reference_column) ref = c;
  MAMMOCL_CHECK(t.reference_column.empty() || ref < t.columns.size(), config_error, "poster table '", t.caption,
                "': the reference column '", t.reference_column, "' is not among the columns");
  text_table out;
  out.caption = t.caption;
  out.header.push_back(t.row_header);
  out.header.insert(out.header.end(), t.columns.begin(), t.columns.end());
  bool any_p = false;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    MAMMOCL_EXPECTS(t.cells[r].size() == t.columns.size(), "poster table '", t.caption, "': row '", t.rows[r],
                    "' has ", t.cells[r].size(), " cells for ", t.columns.size(), " columns");
    std::vector<std::string> line{t.rows[r]};
    for (std::size_t c = 0; c < t.columns.size(); ++c) {
      const auto& cell = t.cells[r][c];
      if (!cell) {
        line.emplace_back(missing_cell);
        continue;
      }
      const std::string where = "poster table '" + t.caption + "', row '" + t.rows[r] + "', column '" +
                                t.columns[c] + "'";
      line.push_back(format_estimate(*cell, t.decimals, c != ref, where));
      any_p = any_p || (cell->p && c != ref);
    }
    out.rows.push_back(std::move(line));
  }
  if (any_p && ref < t.columns.size())
    out.note = "Estimate ± standard error; p: paired bootstrap vs " + t.reference_column + ".";
  return out;
}

// ------------------------------------------------------------------------------------------------
// Per-domain AUC and gap
// ------------------------------------------------------------------------------------------------

/// One row: AUC on domain A only, on domain B only, and the gap |AUC_A − AUC_B|, each with s.e. and/or
/// CI (METHOD.md §6.4.1).
struct domain_row {
  std::string label;
  estimate auc_a;
  estimate auc_b;
  estimate gap;
};

struct domain_table {
  std::string caption = "AUC per domain";
  std::string row_header = "Strategy";
  std::string domain_a = "A";
  std::string domain_b = "B";
  std::vector<domain_row> rows;
  int decimals = 3;
};

/// Columns: row header, "AUC on A", "AUC on B", "gap |A − B|". Throws numeric_error naming the row and
/// column for a value format_estimate refuses.
[[nodiscard]] inline text_table to_text_table(const domain_table& t) {
  text_table out;
  out.caption = t.caption;
  out.header = {t.row_header, "AUC on " + t.domain_a, "AUC on " + t.domain_b,
                "gap |" + t.domain_a + " − " + t.domain_b + "|"};
  for (const auto& r : t.rows) {
    const auto where = [&](const std::string& col) {
      return "domain table '" + t.caption + "', row '" + r.label + "', column '" + col + "'";
    };
    out.rows.push_back({r.label, format_estimate(r.auc_a, t.decimals, true, where(out.header[1])),
                        format_estimate(r.auc_b, t.decimals, true, where(out.header[2])),
                        format_estimate(r.gap, t.decimals, true, where(out.header[3]))});
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Invariance measures
// ------------------------------------------------------------------------------------------------

/// MMD²_u between the domains' features (of one class, or overall) with its permutation p-value.
struct mmd_result {
  double mmd2 = 0;
  double p = 1;
};

/// One row of invariance measures (METHOD.md §6.4.2–4): paired consistency (mean |p(s_A) − p(s_B)|,
/// argmax agreement, mean cosine similarity of the paired features), class-wise MMD² with permutation
/// p (one per class of the table, in class order) and optionally overall, and the proxy A-distance.
struct invariance_row {
  std::string label;
  double mean_abs_prob_diff = 0;   ///< in [0, 1]
  double argmax_agreement = 0;     ///< in [0, 1]
  double cosine_similarity = 0;    ///< in [−1, 1]
  std::vector<mmd_result> classwise_mmd;
  std::optional<mmd_result> overall_mmd;
  double pad = 0;                  ///< proxy A-distance, in [0, 2]
};

struct invariance_table {
  std::string caption = "Domain invariance";
  std::string row_header = "Strategy";
  std::vector<std::string> class_names;  ///< one MMD column per class
  std::vector<invariance_row> rows;
};

/// Columns: row header, "mean |Δp|", "argmax agreement", "cosine sim.", "MMD² <class>" for each class,
/// "MMD² overall" (when any row has it; "–" where a row lacks it), "PAD". Probability difference,
/// agreement, cosine and PAD with 3 decimals, MMD² with 3 significant digits and its p. Throws
/// shape_error when a row has not one MMD per class, numeric_error (naming row and column) for a
/// non-finite value or one outside its range.
[[nodiscard]] inline text_table to_text_table(const invariance_table& t) {
  text_table out;
  out.caption = t.caption;
  out.header = {t.row_header, "mean |Δp|", "argmax agreement", "cosine sim."};
  for (const auto& c : t.class_names) out.header.push_back("MMD² " + c);
  bool overall = false;
  for (const auto& r : t.rows) overall = overall || r.overall_mmd.has_value();
  if (overall) out.header.emplace_back("MMD² overall");
  out.header.emplace_back("PAD");
  for (const auto& r : t.rows) {
    MAMMOCL_EXPECTS(r.classwise_mmd.size() == t.class_names.size(), "invariance table '", t.caption, "': row '",
                    r.label, "' has ", r.classwise_mmd.size(), " class-wise MMD values for ", t.class_names.size(),
                    " classes");
    const auto where = [&](const std::string& col) {
      return "invariance table '" + t.caption + "', row '" + r.label + "', column '" + col + "'";
    };
    const auto ranged = [&](double v, double lo, double hi, const std::string& col) {
      MAMMOCL_CHECK(std::isfinite(v) && v >= lo && v <= hi, numeric_error, where(col), ": ", v,
                    " is not a finite number in [", lo, ", ", hi, "]");
      return format_fixed(v, 3);
    };
    const auto mmd = [&](const mmd_result& m, const std::string& col) {
      MAMMOCL_CHECK(std::isfinite(m.mmd2), numeric_error, where(col), ": MMD² ", m.mmd2, " is not finite");
      return format_significant(m.mmd2, 3) + " (" + format_p(m.p, where(col)) + ")";
    };
    std::vector<std::string> line{r.label, ranged(r.mean_abs_prob_diff, 0, 1, out.header[1]),
                                  ranged(r.argmax_agreement, 0, 1, out.header[2]),
                                  ranged(r.cosine_similarity, -1, 1, out.header[3])};
    for (std::size_t c = 0; c < t.class_names.size(); ++c) line.push_back(mmd(r.classwise_mmd[c], out.header[4 + c]));
    if (overall)
      line.push_back(r.overall_mmd ? mmd(*r.overall_mmd, "MMD² overall") : std::string(missing_cell));
    line.push_back(ranged(r.pad, 0, 2, "PAD"));
    out.rows.push_back(std::move(line));
  }
  out.note = "mean |Δp|, argmax agreement, cosine: paired A/B versions of each image; MMD²: unbiased, "
             "Gaussian kernel, permutation p; PAD: proxy A-distance 2(1 − 2ε) of a linear domain classifier "
             "(0 = invariant).";
  return out;
}

// ------------------------------------------------------------------------------------------------
// Per-class counts
// ------------------------------------------------------------------------------------------------

struct count_row {
  std::string label;               ///< e.g. "train A", "test B"
  std::vector<long long> counts;   ///< one per class, >= 0
};

struct class_counts_table {
  std::string caption = "Images per class";
  std::string row_header = "Split";
  std::vector<std::string> class_names;
  std::vector<count_row> rows;
};

/// Columns: row header, one per class, "total". Throws shape_error for a row without one count per
/// class, numeric_error for a negative count (naming row and class).
[[nodiscard]] inline text_table to_text_table(const class_counts_table& t) {
  text_table out;
  out.caption = t.caption;
  out.header.push_back(t.row_header);
  out.header.insert(out.header.end(), t.class_names.begin(), t.class_names.end());
  out.header.emplace_back("total");
  for (const auto& r : t.rows) {
    MAMMOCL_EXPECTS(r.counts.size() == t.class_names.size(), "class counts table '", t.caption, "': row '", r.label,
                    "' has ", r.counts.size(), " counts for ", t.class_names.size(), " classes");
    std::vector<std::string> line{r.label};
    long long total = 0;
    for (std::size_t c = 0; c < r.counts.size(); ++c) {
      MAMMOCL_CHECK(r.counts[c] >= 0, numeric_error, "class counts table '", t.caption, "', row '", r.label,
                    "', class '", t.class_names[c], "': negative count ", r.counts[c]);
      total += r.counts[c];
      line.push_back(std::to_string(r.counts[c]));
    }
    line.push_back(std::to_string(total));
    out.rows.push_back(std::move(line));
  }
  return out;
}

/// Markdown of any of the report tables (to_text_table, then to_markdown).
template <class Table>
  requires requires(const Table& t) { to_text_table(t); }
[[nodiscard]] std::string to_markdown(const Table& t) {
  return to_markdown(to_text_table(t));
}

// ------------------------------------------------------------------------------------------------
// Atomic file writing
// ------------------------------------------------------------------------------------------------

/// Writes `content` to `path` atomically: into a temporary file `.<name>.tmp-<pid>-<n>` in the same
/// directory, flushed to disk (fsync), then renamed over `path`, then the directory fsync'ed (best
/// effort). On any failure the temporary is removed, `path` is left as it was, and
/// io_error names `path` and the reason.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  static std::atomic<unsigned> counter{0};
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const auto tmp = dir / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                          std::to_string(counter++));
  const auto fail = [&](const std::string& why) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    MAMMOCL_THROW(io_error, "cannot write '", path.string(), "': ", why);
  };
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) fail("cannot create the temporary file '" + tmp.string() + "': " + std::strerror(errno));
  const bool written = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  const int write_errno = errno;
  const bool flushed = written && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!written) fail(std::string("writing the temporary file failed: ") + std::strerror(write_errno));
  if (!flushed || !closed) fail(std::string("flushing the temporary file failed: ") + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("renaming the temporary file failed: " + ec.message());
  // Make the rename itself durable. Best effort: the file is complete and in place at this point.
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

// ------------------------------------------------------------------------------------------------
// The HTML page
// ------------------------------------------------------------------------------------------------

/// One self-contained HTML page (UTF-8, inline CSS, inline SVG, no scripts, no external reference:
/// it opens offline). Blocks appear in the order they are added; each is rendered when added, so a bad
/// input throws at the add call. The page is well-formed XML (XHTML-compatible syntax).
class html_page {
 public:
  explicit html_page(std::string title) : title_(std::move(title)) {}

  /// A section heading (<h2>).
  html_page& heading(std::string_view text) {
    blocks_ += "<h2>" + xml_escape(text) + "</h2>\n";
    return *this;
  }
  /// A paragraph of plain text.
  html_page& paragraph(std::string_view text) {
    blocks_ += "<p>" + xml_escape(text) + "</p>\n";
    return *this;
  }
  /// A table (any of the report tables or a text_table).
  html_page& table(const text_table& t) {
    blocks_ += "<div class=\"table\">\n" + to_html(t) + "</div>\n";
    return *this;
  }
  template <class Table>
    requires requires(const Table& t) { to_text_table(t); }
  html_page& table(const Table& t) {
    return table(to_text_table(t));
  }
  /// A plot as an inline SVG figure (two fit side by side on a wide window).
  html_page& plot(const roc_plot& p) { return figure(svg_roc(p), p.title); }
  html_page& plot(const tsne_plot& p) { return figure(svg_tsne(p), p.title); }
  html_page& plot(const training_plot& p) { return figure(svg_training(p), p.title); }

  /// The whole page.
  [[nodiscard]] std::string str() const {
    std::string s =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>" +
        xml_escape(title_) + "</title>\n<style>\n" + css() + "</style>\n</head>\n<body>\n<h1>" + xml_escape(title_) +
        "</h1>\n" + blocks_ + "</body>\n</html>\n";
    return s;
  }
  /// Writes the page atomically (write_file_atomic); io_error names the file on failure.
  void write(const std::filesystem::path& path) const { write_file_atomic(path, str()); }

 private:
  html_page& figure(const std::string& svg, const std::string& caption) {
    blocks_ += "<figure aria-label=\"" + xml_escape(caption) + "\">\n" + svg + "</figure>\n";
    return *this;
  }
  [[nodiscard]] static std::string css() {
    return "body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1320px; "
           "color: #222222; background: #ffffff; padding: 0 16px; }\n"
           "h1 { font-size: 24px; border-bottom: 2px solid #1f77b4; padding-bottom: 6px; }\n"
           "h2 { font-size: 19px; margin-top: 32px; }\n"
           ".table { overflow-x: auto; margin: 12px 0; }\n"
           "table { border-collapse: collapse; font-size: 14px; }\n"
           "caption { text-align: left; font-weight: bold; padding: 4px 0; }\n"
           "th, td { border: 1px solid #cccccc; padding: 4px 10px; text-align: right; white-space: nowrap; }\n"
           "thead th { background: #eef3f8; text-align: center; }\n"
           "tbody th { text-align: left; font-weight: normal; background: #fafafa; }\n"
           "tbody tr:nth-child(even) td { background: #f7f7f7; }\n"
           "td.missing { color: #999999; text-align: center; }\n"
           "p.note { font-size: 12px; color: #555555; margin: 4px 0 16px 0; }\n"
           "figure { display: inline-block; margin: 8px 16px 16px 0; vertical-align: top; }\n"
           "svg { border: 1px solid #dddddd; }\n";
  }

  std::string title_;
  std::string blocks_;
};

}  // namespace mammocl::eval
