#pragma once
/// INbreast reader (DATA-FORMATS.md §3): `INbreast.csv` (';'-separated), the `AllXML/<File Name>.xml`
/// OsiriX ROI plists and the `AllDICOMs/<File Name>_<patient hash>_MG_<L|R>_<CC|ML>_ANON.dcm` names, to
/// one `case_record` per image. The DICOM contents are not read here.
///
/// - Label: from BI-RADS (the CSV's `Bi-Rads`: 1, 2, 3, 4a, 4b, 4c, 5, 6), as `image_label`; by default
///   METHOD.md §2.2 (Shen et al. 2019): 1-2 -> 0, 4a-6 -> 1, 3 excluded; option: 1-3 -> 0, 4a-6 -> 1.
/// - ROIs: every ROI of the XML, its pathology = the image's label (INbreast gives BI-RADS, not biopsy
///   results, per image). Lesion type from the ROI `Name` (normalised: case, spaces, trailing 's'):
///   Mass, Spiculated Region / Espiculated Region -> mass; Calcification(s), Cluster -> calcification;
///   Asymmetry / Assymetry / Distortion -> left out (default) or mass (option); any other name -> left out
///   and reported.
/// - Geometry: `Point_px` "(x, y)" strings, x = column. 3 points or more: a polygon (row = y, col = x);
///   1-2 points: a circle at their mean with radius = half their distance, at least
///   `options.point_radius`.
/// - Patient: the 16-hex hash of the DICOM file name (the CSV's Patient ID is "removed").
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/csv.hpp"
#include "mammocl/data/plist.hpp"

namespace mammocl::data {

/// BI-RADS to whole-image label conventions.
enum class inbreast_birads {
  shen2019,     ///< 1-2 negative, 4a-6 positive, 3 excluded (default, METHOD.md §2.2)
  three_benign  ///< 1-3 negative, 4a-6 positive
};

/// What to do with Asymmetry and Distortion ROIs (none of the five classes).
enum class inbreast_other_roi { exclude, as_mass };

/// Options of `read_inbreast`.
struct inbreast_options {
  inbreast_birads birads = inbreast_birads::shen2019;
  inbreast_other_roi asymmetry_distortion = inbreast_other_roi::exclude;
  double point_radius = 5.0;         ///< radius (pixels) of a 1-point ROI (a single calcification mark)
  bool skip_missing_dicom = false;   ///< an image with no AllDICOMs file: error (false) or skipped (true)
};

/// Normalised INbreast BI-RADS: 1..6 plus the letter of 4a/4b/4c; nullopt when not one of them.
struct birads_value {
  int category = 0;
  char sub = 0;  ///< 'a', 'b', 'c' or 0
};

/// Parses "1".."6", "4a".."4c" (any case, spaces ignored).
[[nodiscard]] inline std::optional<birads_value> parse_birads(std::string_view s) {
  const std::string t = trim(s);
  if (t.empty() || t[0] < '0' || t[0] > '6') return std::nullopt;
  birads_value b{t[0] - '0', 0};
  if (t.size() == 1) return b;
  const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(t[1])));
  if (t.size() == 2 && b.category == 4 && c >= 'a' && c <= 'c') {
    b.sub = c;
    return b;
  }
  return std::nullopt;
}

/// The label of a BI-RADS value under a convention: 0, 1, or nullopt (excluded).
[[nodiscard]] inline std::optional<int> birads_label(birads_value b, inbreast_birads conv) {
  if (b.category >= 4) return 1;
  if (b.category == 3 && conv == inbreast_birads::shen2019) return std::nullopt;
  return 0;
}

/// One ROI of an INbreast XML, as written.
struct inbreast_roi {
  std::string name;                               ///< `Name`
  std::vector<std::array<double, 2>> points;      ///< `Point_px` as (x, y)
};

/// Reads the ROIs of a parsed AllXML plist; `source` names the file in messages. Checks that every
/// `NumberOfROIs` equals the size of `ROIs` and every `NumberOfPoints` the size of `Point_px`.
[[nodiscard]] inline std::vector<inbreast_roi> inbreast_rois(const plist_value& doc, std::string_view source) {
  using K = plist_value::kind;
  auto need = [&](const plist_value* v, K k, std::string_view key, std::size_t line) -> const plist_value& {
    MAMMOCL_CHECK(v != nullptr, io_error, source, ":", line, ": key '", key, "' missing");
    MAMMOCL_CHECK(v->is(k), io_error, source, ":", v->line, ": key '", key, "' is a ", plist_kind_name(v->type),
                  ", expected ", plist_kind_name(k));
    return *v;
  };
  MAMMOCL_CHECK(doc.is(K::dict), io_error, source, ":", doc.line, ": the plist root is a ",
                plist_kind_name(doc.type), ", expected dict");
  const auto& images = need(doc.find("Images"), K::array, "Images", doc.line);
  std::vector<inbreast_roi> out;
  for (const auto& im : images.array) {
    MAMMOCL_CHECK(im.is(K::dict), io_error, source, ":", im.line, ": an entry of 'Images' is a ",
                  plist_kind_name(im.type), ", expected dict");
    const auto& rois = need(im.find("ROIs"), K::array, "ROIs", im.line);
    if (const auto* n = im.find("NumberOfROIs")) {
      MAMMOCL_CHECK(n->is(K::integer) && n->integer == static_cast<std::int64_t>(rois.array.size()), io_error,
                    source, ":", n->line, ": key 'NumberOfROIs' is ", n->is(K::integer) ? std::to_string(n->integer) : n->text,
                    " but 'ROIs' holds ", rois.array.size(), " entries");
    }
    for (const auto& r : rois.array) {
      MAMMOCL_CHECK(r.is(K::dict), io_error, source, ":", r.line, ": an entry of 'ROIs' is a ",
                    plist_kind_name(r.type), ", expected dict");
      inbreast_roi o;
      o.name = need(r.find("Name"), K::string, "Name", r.line).text;
      const auto& pts = need(r.find("Point_px"), K::array, "Point_px", r.line);
      if (const auto* n = r.find("NumberOfPoints")) {
        MAMMOCL_CHECK(n->is(K::integer) && n->integer == static_cast<std::int64_t>(pts.array.size()), io_error,
                      source, ":", n->line, ": key 'NumberOfPoints' is ",
                      n->is(K::integer) ? std::to_string(n->integer) : n->text, " but 'Point_px' holds ",
                      pts.array.size(), " points (ROI '", o.name, "')");
      }
      for (const auto& p : pts.array) {
        MAMMOCL_CHECK(p.is(K::string), io_error, source, ":", p.line, ": a 'Point_px' entry is a ",
                      plist_kind_name(p.type), ", expected a string \"(x, y)\"");
        // "(x, y)" with optional spaces.
        const std::string t = trim(p.text);
        bool ok = t.size() >= 5 && t.front() == '(' && t.back() == ')';
        double xy[2] = {0, 0};
        if (ok) {
          const std::string inner = t.substr(1, t.size() - 2);
          const std::size_t comma = inner.find(',');
          ok = comma != std::string::npos && inner.find(',', comma + 1) == std::string::npos;
          for (int k = 0; ok && k < 2; ++k) {
            const std::string part = trim(k == 0 ? inner.substr(0, comma) : inner.substr(comma + 1));
            char* end = nullptr;
            xy[k] = part.empty() ? 0.0 : std::strtod(part.c_str(), &end);
            ok = !part.empty() && end == part.c_str() + part.size() && std::isfinite(xy[k]);
          }
        }
        MAMMOCL_CHECK(ok, io_error, source, ":", p.line, ": 'Point_px' entry '", p.text, "' is not \"(x, y)\"");
        o.points.push_back({xy[0], xy[1]});
      }
      out.push_back(std::move(o));
    }
  }
  return out;
}

/// How an INbreast ROI name is read: mass, calcification, asymmetry/distortion, or unknown.
enum class inbreast_roi_kind { mass, calcification, asymmetry_distortion, unknown };

/// Classifies an ROI `Name` after normalising case, spaces and a plural 's'.
[[nodiscard]] inline inbreast_roi_kind inbreast_roi_kind_of(std::string_view name) {
  std::string n;
  for (char c : name)
    if (!std::isspace(static_cast<unsigned char>(c))) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n.size() > 1 && n.back() == 's' && n != "mass") n.pop_back();
  if (n == "mass" || n == "spiculatedregion" || n == "espiculatedregion") return inbreast_roi_kind::mass;
  if (n == "calcification" || n == "cluster" || n == "microcalcification") return inbreast_roi_kind::calcification;
  if (n == "asymmetry" || n == "assymetry" || n == "distortion" || n == "architecturaldistortion")
    return inbreast_roi_kind::asymmetry_distortion;
  return inbreast_roi_kind::unknown;
}

/// One file of AllDICOMs, split into its parts.
struct inbreast_dicom_name {
  std::filesystem::path path;
  std::string file_name;     ///< leading number, the CSV's File Name
  std::string patient_hash;  ///< 2nd part
};

/// The `.dcm` files of `dir` keyed by their leading number (the part before the first '_'); a file whose
/// name does not have the INbreast shape is ignored; two files with one number are an io_error.
[[nodiscard]] inline std::map<std::string, inbreast_dicom_name> inbreast_dicoms(const std::filesystem::path& dir) {
  std::map<std::string, inbreast_dicom_name> out;
  std::error_code ec;
  MAMMOCL_CHECK(std::filesystem::is_directory(dir, ec), io_error, dir.string(), ": no such folder (AllDICOMs)");
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().extension() != ".dcm") continue;
    const std::string f = e.path().filename().string();
    const std::size_t u1 = f.find('_');
    if (u1 == std::string::npos || u1 == 0) continue;
    const std::size_t u2 = f.find('_', u1 + 1);
    if (u2 == std::string::npos) continue;
    inbreast_dicom_name d{e.path(), f.substr(0, u1), f.substr(u1 + 1, u2 - u1 - 1)};
    if (d.file_name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto [it, fresh] = out.emplace(d.file_name, d);
    MAMMOCL_CHECK(fresh, io_error, dir.string(), ": two DICOM files for File Name ", d.file_name, ": ",
                  it->second.path.filename().string(), " and ", f);
  }
  return out;
}

/// Records and report of `read_inbreast`.
struct inbreast_result {
  std::vector<case_record> records;       ///< one per image kept, in CSV order
  std::vector<std::string> birads;        ///< parallel: BI-RADS as written
  dataset_report report;
};

/// Reads an INbreast release folder (`INbreast.csv`, `AllXML/`, `AllDICOMs/`).
[[nodiscard]] inline inbreast_result read_inbreast(const std::filesystem::path& root, const inbreast_options& opt = {}) {
  MAMMOCL_CHECK(opt.point_radius >= 0, config_error, "inbreast_options::point_radius must be >= 0, got ",
                opt.point_radius);
  csv_options co;
  co.delimiter = ';';
  const auto csv_path = root / "INbreast.csv";
  const csv_table t = read_csv(csv_path, co);
  const std::size_t c_file = t.column({"File Name", "FileName", "File_Name"}),
                    c_birads = t.column({"Bi-Rads", "BI-RADS", "BIRADS", "Bi_Rads"}),
                    c_side = t.column({"Laterality"}), c_view = t.column({"View"});
  const auto c_acr = t.find_column({"ACR"});
  const auto dicoms = inbreast_dicoms(root / "AllDICOMs");
  const auto xml_dir = root / "AllXML";

  inbreast_result res;
  res.report.rows_read = t.rows.size();
  std::map<std::string, bool> seen_files;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const auto& f = t.rows[i];
    const std::size_t line = t.row_lines[i];
    const std::string where = csv_path.string() + ":" + std::to_string(line);
    const std::string file = trim(f[c_file]);
    MAMMOCL_CHECK(!file.empty() && file.find_first_not_of("0123456789") == std::string::npos, io_error, where,
                  ": column 'File Name': '", file, "' is not a number");
    seen_files[file] = true;
    const std::string birads_text = trim(f[c_birads]);
    const auto b = parse_birads(birads_text);
    MAMMOCL_CHECK(b.has_value(), io_error, where, ": column 'Bi-Rads': '", birads_text,
                  "' is not one of 1, 2, 3, 4a, 4b, 4c, 5, 6");
    const std::string side = trim(f[c_side]), view_in = trim(f[c_view]);
    MAMMOCL_CHECK(side == "L" || side == "R", io_error, where, ": column 'Laterality': '", side, "' is not L or R");
    MAMMOCL_CHECK(view_in == "CC" || view_in == "MLO" || view_in == "ML", io_error, where, ": column 'View': '",
                  view_in, "' is not CC or MLO");
    const auto label = birads_label(*b, opt.birads);
    if (!label) {
      res.report.skip(file, "BI-RADS " + birads_text + " (" + where + ") is excluded by the shen2019 convention");
      continue;
    }
    const auto d = dicoms.find(file);
    if (d == dicoms.end()) {
      const std::string msg = where + ": no file " + file + "_*.dcm in " + (root / "AllDICOMs").string();
      MAMMOCL_CHECK(opt.skip_missing_dicom, io_error, msg);
      res.report.skip(file, msg);
      continue;
    }
    case_record rec;
    rec.image_path = d->second.path.string();
    rec.patient_id = d->second.patient_hash;
    rec.laterality = side;
    rec.view = view_in == "ML" ? "MLO" : view_in;
    if (c_acr) rec.density = trim(f[*c_acr]);
    rec.image_label = *label;
    const auto xml = xml_dir / (file + ".xml");
    std::error_code ec;
    if (std::filesystem::is_regular_file(xml, ec)) {
      const auto rois = inbreast_rois(read_plist(xml), xml.string());
      for (std::size_t k = 0; k < rois.size(); ++k) {
        const auto& r = rois[k];
        const auto kind = inbreast_roi_kind_of(r.name);
        const std::string item = xml.string() + " ROI " + std::to_string(k + 1) + " '" + r.name + "'";
        if (kind == inbreast_roi_kind::unknown) {
          res.report.skip(item, "ROI name is not a mass, calcification, asymmetry or distortion");
          continue;
        }
        if (kind == inbreast_roi_kind::asymmetry_distortion && opt.asymmetry_distortion == inbreast_other_roi::exclude) {
          res.report.skip(item, "asymmetry/distortion (inbreast_options::asymmetry_distortion = exclude)");
          continue;
        }
        if (r.points.empty()) {
          res.report.skip(item, "ROI without points");
          continue;
        }
        roi o;
        o.type = kind == inbreast_roi_kind::calcification ? lesion_type::calcification : lesion_type::mass;
        o.path = *label == 1 ? pathology::malignant : pathology::benign;
        o.description = r.name + ", BI-RADS " + birads_text;
        if (r.points.size() >= 3) {
          for (const auto& p : r.points) o.polygon.push_back({p[1], p[0]});
        } else {
          const auto& a = r.points.front();
          const auto& z = r.points.back();
          o.center = std::array<double, 2>{(a[1] + z[1]) / 2, (a[0] + z[0]) / 2};
          o.radius = std::max(opt.point_radius, std::hypot(a[0] - z[0], a[1] - z[1]) / 2);
        }
        rec.rois.push_back(std::move(o));
      }
    }
    res.records.push_back(std::move(rec));
    res.birads.push_back(birads_text);
  }
  // XMLs that no CSV row names.
  std::error_code ec;
  if (std::filesystem::is_directory(xml_dir, ec))
    for (const auto& e : std::filesystem::directory_iterator(xml_dir))
      if (e.path().extension() == ".xml" && !seen_files.count(e.path().stem().string()))
        res.report.warnings.push_back(e.path().string() + ": no row of INbreast.csv has this File Name; ignored");
  return res;
}

}  // namespace mammocl::data
