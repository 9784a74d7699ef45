#pragma once
/// CBIS-DDSM reader: the four description CSVs (DATA-FORMATS.md §2.1-2.2) to one `case_record` per full
/// image.
///
/// - Rows are abnormalities; rows whose `image file path` names the same SeriesInstanceUID (3rd path
///   component) are one image and become the ROIs of one record.
/// - Pathology MALIGNANT -> malignant, BENIGN -> benign, BENIGN_WITHOUT_CALLBACK -> benign (default, as
///   METHOD.md §2.2) or the row is excluded (option). An image left with no ROI is excluded too, since
///   CBIS-DDSM has no normal images.
/// - `breast density` (calc files) and `breast_density` (mass files) are both accepted.
/// - Paths are the CSV's, trimmed of the LF inside their quotes and joined to `options.image_root`; with
///   a downloaded tree the files live elsewhere, and `cbis_ddsm_dicom.hpp` resolves them by
///   SeriesInstanceUID.
/// - The split (train or test) comes from the CSV file name (`..._train_set.csv`, `..._test_set.csv`).
#include <charconv>
#include <cstddef>
#include <filesystem>
#include <iterator>
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

/// Official CBIS-DDSM split of a description CSV.
enum class cbis_split { train, test };

/// What to do with BENIGN_WITHOUT_CALLBACK rows.
enum class cbis_bwc {
  benign,  ///< benign (default; METHOD.md §2.2, `pathology.startswith('MALIGNANT')`)
  exclude  ///< leave the row out (reported)
};

/// Options of the CBIS-DDSM reader.
struct cbis_ddsm_options {
  cbis_bwc benign_without_callback = cbis_bwc::benign;
  std::filesystem::path image_root;  ///< prefix of every path of the CSVs ("" keeps them relative)
};

/// One abnormality row of a description CSV, with its values checked.
struct cbis_row {
  std::string source;              ///< CSV file name
  std::size_t line = 0;            ///< 1-based line of the row's first line
  cbis_split split = cbis_split::train;
  std::string patient_id;          ///< "P_00001"
  std::string density;             ///< "1".."4" (the calc test file has "0")
  std::string laterality;          ///< "L" or "R"
  std::string view;                ///< "CC" or "MLO"
  int abnormality_id = 0;
  lesion_type type = lesion_type::mass;
  std::string pathology_text;      ///< MALIGNANT, BENIGN or BENIGN_WITHOUT_CALLBACK
  pathology path = pathology::benign;
  int assessment = 0;              ///< BI-RADS assessment 0-5
  int subtlety = 0;                ///< 0-5
  std::string shape_or_calc_type;  ///< mass shape or calc type, as written
  std::string margins_or_distribution;  ///< mass margins or calc distribution, as written
  std::string image_path, crop_path, mask_path;  ///< trimmed CSV paths
  std::string image_series, crop_series, mask_series;  ///< SeriesInstanceUIDs (3rd path component)
};

/// Per-record CBIS-DDSM facts that `case_record` has no field for.
struct cbis_image_info {
  cbis_split split = cbis_split::train;
  std::string series_uid;          ///< SeriesInstanceUID of the full image
  std::vector<std::size_t> rows;   ///< indices into `cbis_ddsm_result::rows`, one per ROI of the record
  std::vector<std::string> crop_paths;  ///< cropped image of each ROI (parallel to `rois`; "" if unknown)
};

/// Records and report of the CBIS-DDSM reader.
struct cbis_ddsm_result {
  std::vector<cbis_row> rows;            ///< every row read, excluded ones too
  std::vector<case_record> records;      ///< one per full image, in order of first appearance
  std::vector<cbis_image_info> images;   ///< parallel to `records`
  dataset_report report;
};

namespace detail {
/// The 3rd '/'-separated component of a CBIS-DDSM path field, which must have 4 components.
[[nodiscard]] inline std::string cbis_series_of(const std::string& path, std::string_view source, std::size_t line,
                                                std::string_view column) {
  std::vector<std::string> parts;
  std::size_t b = 0;
  for (;;) {
    const std::size_t e = path.find('/', b);
    parts.push_back(path.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  MAMMOCL_CHECK(parts.size() == 4 && !parts[2].empty(), io_error, source, ":", line, ": column '", column, "': '",
                path, "' is not <folder>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>.dcm");
  return parts[2];
}

[[nodiscard]] inline int cbis_int(const std::string& v, int lo, int hi, std::string_view source, std::size_t line,
                                  std::string_view column) {
  int x = 0;
  const char* e = v.data() + v.size();
  auto [p, ec] = std::from_chars(v.data(), e, x);
  MAMMOCL_CHECK(ec == std::errc() && p == e && x >= lo && x <= hi, io_error, source, ":", line, ": column '", column,
                "': '", v, "' is not an integer in [", lo, ", ", hi, "]");
  return x;
}
}  // namespace detail

/// Parses one description CSV held in memory (`name` is used in messages) with the given split; the
/// memory entry point, also used by the fuzz target. Throws io_error for a text that is not a CBIS-DDSM
/// description CSV (missing column) and for bad values (naming the line, the column and the value).
[[nodiscard]] inline std::vector<cbis_row> parse_cbis_ddsm_csv(std::string_view text, std::string_view name,
                                                              cbis_split split) {
  const csv_table t = parse_csv(text, name);
  const std::size_t c_pid = t.column({"patient_id"}), c_den = t.column({"breast density", "breast_density"}),
                    c_side = t.column({"left or right breast"}), c_view = t.column({"image view"}),
                    c_id = t.column({"abnormality id"}), c_type = t.column({"abnormality type"}),
                    c_assess = t.column({"assessment"}), c_path = t.column({"pathology"}),
                    c_sub = t.column({"subtlety"}), c_img = t.column({"image file path"}),
                    c_crop = t.column({"cropped image file path"}), c_mask = t.column({"ROI mask file path"});
  const auto c_shape = t.find_column({"mass shape", "calc type"});
  const auto c_marg = t.find_column({"mass margins", "calc distribution"});
  std::vector<cbis_row> out;
  out.reserve(t.rows.size());
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const auto& f = t.rows[i];
    cbis_row r;
    r.source = std::string(name);
    r.line = t.row_lines[i];
    r.split = split;
    auto field = [&](std::size_t c) { return trim(f[c]); };
    r.patient_id = field(c_pid);
    MAMMOCL_CHECK(!r.patient_id.empty(), io_error, name, ":", r.line, ": column 'patient_id' is empty");
    r.density = field(c_den);
    (void)detail::cbis_int(r.density, 0, 4, name, r.line, t.header[c_den]);
    const std::string side = field(c_side);
    MAMMOCL_CHECK(side == "LEFT" || side == "RIGHT", io_error, name, ":", r.line, ": column 'left or right breast': '",
                  side, "' is not LEFT or RIGHT");
    r.laterality = side == "LEFT" ? "L" : "R";
    r.view = field(c_view);
    MAMMOCL_CHECK(r.view == "CC" || r.view == "MLO", io_error, name, ":", r.line, ": column 'image view': '", r.view,
                  "' is not CC or MLO");
    r.abnormality_id = detail::cbis_int(field(c_id), 1, 99, name, r.line, "abnormality id");
    const std::string type = field(c_type);
    MAMMOCL_CHECK(type == "mass" || type == "calcification", io_error, name, ":", r.line,
                  ": column 'abnormality type': '", type, "' is not mass or calcification");
    r.type = type == "mass" ? lesion_type::mass : lesion_type::calcification;
    r.assessment = detail::cbis_int(field(c_assess), 0, 5, name, r.line, "assessment");
    r.pathology_text = field(c_path);
    MAMMOCL_CHECK(r.pathology_text == "MALIGNANT" || r.pathology_text == "BENIGN" ||
                      r.pathology_text == "BENIGN_WITHOUT_CALLBACK",
                  io_error, name, ":", r.line, ": column 'pathology': '", r.pathology_text,
                  "' is not MALIGNANT, BENIGN or BENIGN_WITHOUT_CALLBACK");
    r.path = r.pathology_text == "MALIGNANT" ? pathology::malignant : pathology::benign;
    r.subtlety = detail::cbis_int(field(c_sub), 0, 5, name, r.line, "subtlety");
    if (c_shape) r.shape_or_calc_type = field(*c_shape);
    if (c_marg) r.margins_or_distribution = field(*c_marg);
    r.image_path = field(c_img);
    r.crop_path = field(c_crop);
    r.mask_path = field(c_mask);
    r.image_series = detail::cbis_series_of(r.image_path, name, r.line, "image file path");
    r.crop_series = detail::cbis_series_of(r.crop_path, name, r.line, "cropped image file path");
    r.mask_series = detail::cbis_series_of(r.mask_path, name, r.line, "ROI mask file path");
    out.push_back(std::move(r));
  }
  return out;
}

/// The split named by a description CSV's file name: "train" or "test" in it (e.g.
/// `mass_case_description_train_set.csv`); io_error when it has neither or both.
[[nodiscard]] inline cbis_split cbis_split_of(const std::filesystem::path& csv) {
  const std::string f = csv.filename().string();
  const bool train = f.find("train") != std::string::npos, test = f.find("test") != std::string::npos;
  MAMMOCL_CHECK(train != test, io_error, csv.string(),
                ": cannot tell the split from the file name (expected 'train' or 'test' in it, as in "
                "mass_case_description_train_set.csv)");
  return train ? cbis_split::train : cbis_split::test;
}

/// Groups parsed rows into one record per full image (by the image's SeriesInstanceUID). Rows of one
/// image that disagree on patient, side, view, density or split are an io_error naming both lines.
[[nodiscard]] inline cbis_ddsm_result build_cbis_ddsm(std::vector<cbis_row> rows, const cbis_ddsm_options& opt = {}) {
  cbis_ddsm_result res;
  res.rows = std::move(rows);
  res.report.rows_read = res.rows.size();
  std::map<std::string, std::size_t> index;  // series -> record
  std::map<std::string, std::size_t> first_row;  // series -> first row index, kept or not
  auto under_root = [&](const std::string& p) {
    return opt.image_root.empty() ? p : (opt.image_root / p).string();
  };
  for (std::size_t i = 0; i < res.rows.size(); ++i) {
    const cbis_row& r = res.rows[i];
    const std::string where = r.source + ":" + std::to_string(r.line);
    if (auto it = first_row.find(r.image_series); it != first_row.end()) {
      const cbis_row& f = res.rows[it->second];
      const char* what = f.patient_id != r.patient_id   ? "patient_id"
                         : f.laterality != r.laterality ? "left or right breast"
                         : f.view != r.view             ? "image view"
                         : f.density != r.density       ? "breast density"
                         : f.split != r.split           ? "split"
                                                        : nullptr;
      MAMMOCL_CHECK(what == nullptr, io_error, where, ": ", what, " differs from ", f.source, ":", f.line,
                    ", a row of the same image (series ", r.image_series, ")");
    } else {
      first_row.emplace(r.image_series, i);
    }
    if (r.pathology_text == "BENIGN_WITHOUT_CALLBACK" && opt.benign_without_callback == cbis_bwc::exclude) {
      res.report.skip(where, "BENIGN_WITHOUT_CALLBACK (cbis_ddsm_options::benign_without_callback = exclude)");
      continue;
    }
    auto [it, fresh] = index.emplace(r.image_series, res.records.size());
    if (fresh) {
      case_record rec;
      rec.image_path = under_root(r.image_path);
      rec.patient_id = r.patient_id;
      rec.laterality = r.laterality;
      rec.view = r.view;
      rec.density = r.density;
      res.records.push_back(std::move(rec));
      res.images.push_back({r.split, r.image_series, {}, {}});
    }
    roi o;
    o.type = r.type;
    o.path = r.path;
    o.mask_path = under_root(r.mask_path);
    o.description = "abnormality " + std::to_string(r.abnormality_id) + ", " + r.pathology_text + ", assessment " +
                    std::to_string(r.assessment) + ", subtlety " + std::to_string(r.subtlety);
    res.records[it->second].rois.push_back(std::move(o));
    res.images[it->second].rows.push_back(i);
    res.images[it->second].crop_paths.push_back(under_root(r.crop_path));
  }
  for (const auto& [series, i] : first_row)
    if (!index.count(series))
      res.report.skip(res.rows[i].image_path, "every abnormality of the image was excluded");
  return res;
}

/// Reads description CSV files (any of the four, any number), each with the split of its file name, and
/// groups their rows into images.
[[nodiscard]] inline cbis_ddsm_result read_cbis_ddsm(const std::vector<std::filesystem::path>& csvs,
                                                     const cbis_ddsm_options& opt = {}) {
  std::vector<cbis_row> rows;
  for (const auto& p : csvs) {
    auto part = parse_cbis_ddsm_csv(read_text_file(p), p.string(), cbis_split_of(p));
    rows.insert(rows.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return build_cbis_ddsm(std::move(rows), opt);
}

/// The four description CSVs of a folder, in the order mass train, mass test, calc train, calc test;
/// io_error naming the folder and the first missing file.
[[nodiscard]] inline std::vector<std::filesystem::path> cbis_ddsm_csvs(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const char* f : {"mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
                        "calc_case_description_train_set.csv", "calc_case_description_test_set.csv"}) {
    out.push_back(dir / f);
    std::error_code ec;
    MAMMOCL_CHECK(std::filesystem::is_regular_file(out.back(), ec), io_error, dir.string(), ": no ", f,
                  " (the four CBIS-DDSM description CSVs are expected there)");
  }
  return out;
}

}  // namespace mammocl::data
