#pragma once
/// mini-MIAS reader: `Info.txt` (DATA-FORMATS.md §1.2) to one `case_record` per image.
///
/// - Row shapes: 3 tokens (NORM), 4 (lesion without centre), 6 (`*NOTE 3*`: spread calcifications,
///   no centre) and 7 (centre X, Y and radius). Trailing spaces are ignored.
/// - Coordinates have their origin at the bottom-left corner: row = height - Y, column = X, with the
///   height read from the PGM header (1024 for every mini-MIAS file) or `options.image_height`.
/// - Several rows of one image become the ROIs of one record.
/// - CALC -> calcification; CIRC, SPIC, MISC -> mass; SEVERITY B -> benign, M -> malignant; NORM -> no
///   ROI; ARCH and ASYM: the whole image is excluded (default) or the row maps to a mass (option).
/// - Patient k owns mdb(2k-1) (right view) and mdb(2k) (left view): patient_id "mias-<k>" with k on
///   three digits, laterality from the parity of the number.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/csv.hpp"

namespace mammocl::data {

/// What to do with ARCH (architectural distortion) and ASYM (asymmetry) rows, which are none of the five
/// classes (DATA-FORMATS.md §1.2).
enum class mias_arch_asym {
  exclude_image,  ///< leave out every image that has such a row (default)
  as_mass         ///< treat the row as a mass of its severity
};

/// Options of `read_mini_mias`.
struct mini_mias_options {
  mias_arch_asym arch_asym = mias_arch_asym::exclude_image;
  /// Height used for row = height - Y when the image is not a PGM whose header can be read.
  int image_height = 1024;
  /// Read the height from each PGM header (true) or always use `image_height`.
  bool height_from_pgm = true;
  /// A listed image that is not on disk: error (false, default) or skip with a report entry (true).
  bool skip_missing_images = false;
};

/// One row of Info.txt, as written.
struct mias_row {
  std::string refnum;                ///< "mdb001"
  int number = 0;                    ///< 1 for mdb001
  std::string background;            ///< F, G or D
  std::string abnormality;           ///< CALC, CIRC, SPIC, MISC, ARCH, ASYM or NORM
  char severity = 0;                 ///< 'B', 'M', or 0 for NORM
  std::optional<double> x, y, radius;  ///< bottom-left origin; present only in 7-token rows
  bool note3 = false;                ///< 6-token row with `*NOTE 3*`
  std::size_t tokens = 0;            ///< 3, 4, 6 or 7
  std::size_t line = 0;              ///< 1-based line in the file
};

namespace detail {
[[nodiscard]] inline std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    const std::size_t b = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > b) out.push_back(s.substr(b, i - b));
  }
  return out;
}

[[nodiscard]] inline std::optional<double> parse_number(std::string_view s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

[[nodiscard]] inline std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace detail

/// Parses the text of an Info.txt held in memory (`name` is used in messages); the memory entry point,
/// also used by the fuzz target. The header line (first token REFNUM) and blank lines are skipped.
/// Throws io_error naming the file, the line and the field on anything else that is malformed.
[[nodiscard]] inline std::vector<mias_row> parse_mini_mias_info(std::string_view text, std::string_view name) {
  std::vector<mias_row> rows;
  std::size_t line = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view ln = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    const auto tok = detail::split_ws(ln);
    if (tok.empty() || tok[0] == "REFNUM") continue;
    mias_row r;
    r.line = line;
    r.tokens = tok.size();
    MAMMOCL_CHECK(tok.size() == 3 || tok.size() == 4 || tok.size() == 6 || tok.size() == 7, io_error, name, ":",
                  line, ": ", tok.size(), " fields; expected 3 (NORM), 4 (no centre), 6 (*NOTE 3*) or 7");
    r.refnum = std::string(tok[0]);
    const bool mdb = r.refnum.size() > 3 && r.refnum.compare(0, 3, "mdb") == 0;
    const auto num = mdb ? detail::parse_int(std::string_view(r.refnum).substr(3)) : std::nullopt;
    MAMMOCL_CHECK(num && *num > 0, io_error, name, ":", line, ": REFNUM '", r.refnum,
                  "' is not 'mdb' followed by a positive number");
    r.number = *num;
    r.background = std::string(tok[1]);
    MAMMOCL_CHECK(r.background == "F" || r.background == "G" || r.background == "D", io_error, name, ":", line,
                  ": BG '", r.background, "' is not F, G or D");
    r.abnormality = std::string(tok[2]);
    static constexpr std::string_view classes[] = {"CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM"};
    MAMMOCL_CHECK(std::find(std::begin(classes), std::end(classes), r.abnormality) != std::end(classes), io_error,
                  name, ":", line, ": CLASS '", r.abnormality, "' is not CALC, CIRC, SPIC, MISC, ARCH, ASYM or NORM");
    if (r.abnormality == "NORM") {
      MAMMOCL_CHECK(tok.size() == 3, io_error, name, ":", line, ": NORM row with ", tok.size(),
                    " fields; expected 3 (no severity, no centre)");
      rows.push_back(std::move(r));
      continue;
    }
    MAMMOCL_CHECK(tok.size() > 3, io_error, name, ":", line, ": ", r.abnormality,
                  " row without SEVERITY (only NORM rows have 3 fields)");
    MAMMOCL_CHECK(tok[3] == "B" || tok[3] == "M", io_error, name, ":", line, ": SEVERITY '", tok[3],
                  "' is not B or M");
    r.severity = tok[3][0];
    if (tok.size() == 6) {
      MAMMOCL_CHECK(tok[4] == "*NOTE" && tok[5] == "3*", io_error, name, ":", line, ": fields 5-6 are '", tok[4],
                    " ", tok[5], "'; a 6-field row must end in '*NOTE 3*'");
      r.note3 = true;
    } else if (tok.size() == 7) {
      const char* names[] = {"X", "Y", "RADIUS"};
      std::optional<double> v[3];
      for (int k = 0; k < 3; ++k) {
        v[k] = detail::parse_number(tok[4 + k]);
        MAMMOCL_CHECK(v[k] && *v[k] >= 0, io_error, name, ":", line, ": ", names[k], " '", tok[4 + k],
                      "' is not a non-negative number");
      }
      r.x = v[0];
      r.y = v[1];
      r.radius = v[2];
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

/// The patient a mini-MIAS image belongs to: mdb(2k-1) and mdb(2k) are patient k, "mias-<k>" (k on at
/// least three digits).
[[nodiscard]] inline std::string mias_patient_id(int image_number) {
  // 64-bit: REFNUM may be any int the parser accepted (fuzzing found the overflow at INT_MAX).
  std::string k = std::to_string((static_cast<long long>(image_number) + 1) / 2);
  while (k.size() < 3) k.insert(k.begin(), '0');
  return "mias-" + k;
}

/// Height of a binary or ASCII PGM from its header, or nullopt when the file is not a readable PGM.
[[nodiscard]] inline std::optional<int> pgm_height(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  char head[256] = {};
  in.read(head, sizeof head);
  const std::string_view h(head, static_cast<std::size_t>(in.gcount()));
  if (h.size() < 2 || h[0] != 'P' || (h[1] != '5' && h[1] != '2')) return std::nullopt;
  // Tokens after the magic number, skipping '#' comments: width, height.
  std::size_t i = 2;
  int values[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    for (;;) {
      while (i < h.size() && std::isspace(static_cast<unsigned char>(h[i]))) ++i;
      if (i < h.size() && h[i] == '#') {
        while (i < h.size() && h[i] != '\n') ++i;
        continue;
      }
      break;
    }
    const std::size_t b = i;
    while (i < h.size() && std::isdigit(static_cast<unsigned char>(h[i]))) ++i;
    auto v = detail::parse_int(h.substr(b, i - b));
    if (!v || *v <= 0) return std::nullopt;
    values[k] = *v;
  }
  return values[1];
}

/// The file of image `refnum` in `dir`: <dir>/<refnum>.pgm, else .png or .jpg, else the same names
/// without zero padding ("mdb3.pgm"); nullopt when none exists.
[[nodiscard]] inline std::optional<std::filesystem::path> find_mias_image(const std::filesystem::path& dir,
                                                                         const std::string& refnum, int number) {
  const std::string bases[] = {refnum, "mdb" + std::to_string(number)};
  for (const auto& b : bases)
    for (const char* ext : {".pgm", ".png", ".jpg"}) {
      auto p = dir / (b + ext);
      std::error_code ec;
      if (std::filesystem::is_regular_file(p, ec)) return p;
    }
  return std::nullopt;
}

/// Records and report of `read_mini_mias`.
struct mini_mias_result {
  std::vector<case_record> records;  ///< one per image, in Info.txt order
  dataset_report report;             ///< excluded images and why
};

/// Builds the records of already-parsed Info.txt rows; images are looked up in `image_dir`. `source`
/// names the Info.txt in messages.
[[nodiscard]] inline mini_mias_result build_mini_mias(const std::vector<mias_row>& rows,
                                                      const std::filesystem::path& image_dir,
                                                      std::string_view source, const mini_mias_options& opt = {}) {
  MAMMOCL_CHECK(opt.image_height > 0, config_error, "mini_mias_options::image_height must be positive, got ",
                opt.image_height);
  mini_mias_result res;
  res.report.rows_read = rows.size();
  // Group rows by image, keeping the order of first appearance.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const mias_row*>> by_image;
  for (const auto& r : rows) {
    auto& v = by_image[r.refnum];
    if (v.empty()) order.push_back(r.refnum);
    v.push_back(&r);
  }
  for (const auto& ref : order) {
    const auto& group = by_image[ref];
    const mias_row& first = *group.front();
    bool has_norm = false, has_lesion = false, excluded = false;
    for (const auto* r : group) {
      MAMMOCL_CHECK(r->background == first.background, io_error, source, ":", r->line, ": BG '", r->background,
                    "' of ", ref, " differs from '", first.background, "' on line ", first.line);
      (r->abnormality == "NORM" ? has_norm : has_lesion) = true;
      if ((r->abnormality == "ARCH" || r->abnormality == "ASYM") && opt.arch_asym == mias_arch_asym::exclude_image)
        excluded = true;
    }
    MAMMOCL_CHECK(!(has_norm && has_lesion), io_error, source, ":", first.line, ": ", ref,
                  " has a NORM row and abnormality rows");
    if (excluded) {
      res.report.skip(ref, "ARCH/ASYM abnormality (line " + std::to_string(first.line) +
                                "; mini_mias_options::arch_asym = exclude_image)");
      continue;
    }
    const auto file = find_mias_image(image_dir, ref, first.number);
    if (!file) {
      const std::string msg = "no image file for " + ref + " (" + std::string(source) + " line " +
                              std::to_string(first.line) + "): looked for " + (image_dir / (ref + ".pgm")).string() +
                              " (also .png, .jpg and unpadded names)";
      MAMMOCL_CHECK(opt.skip_missing_images, io_error, msg);
      res.report.skip(ref, msg);
      continue;
    }
    double height = opt.image_height;
    if (opt.height_from_pgm && file->extension() == ".pgm")
      if (auto h = pgm_height(*file)) height = *h;

    case_record rec;
    rec.image_path = file->string();
    rec.patient_id = mias_patient_id(first.number);
    rec.laterality = first.number % 2 == 0 ? "L" : "R";
    rec.density = first.background;
    for (const auto* r : group) {
      if (r->abnormality == "NORM") continue;
      roi o;
      o.type = r->abnormality == "CALC" ? lesion_type::calcification : lesion_type::mass;
      o.path = r->severity == 'M' ? pathology::malignant : pathology::benign;
      o.description = r->abnormality + " " + r->severity;
      if (r->x) {
        const double row = height - *r->y, col = *r->x;
        MAMMOCL_CHECK(*r->y <= height, io_error, source, ":", r->line, ": Y = ", *r->y, " lies above the image (height ",
                      height, ")");
        o.center = std::array<double, 2>{row, col};
        o.radius = *r->radius;
      }
      rec.rois.push_back(std::move(o));
    }
    res.records.push_back(std::move(rec));
  }
  return res;
}

/// Reads Info.txt at `info_txt` and resolves images in `image_dir` (by default the folder of Info.txt).
[[nodiscard]] inline mini_mias_result read_mini_mias(const std::filesystem::path& info_txt,
                                                     const mini_mias_options& opt = {},
                                                     std::optional<std::filesystem::path> image_dir = std::nullopt) {
  const auto rows = parse_mini_mias_info(read_text_file(info_txt), info_txt.string());
  return build_mini_mias(rows, image_dir ? *image_dir : info_txt.parent_path(), info_txt.string(), opt);
}

}  // namespace mammocl::data
