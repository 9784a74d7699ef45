#pragma once
/// `open_dataset`: one entry point that recognises which dataset lies at a path and returns every reader's
/// output in one shape (records + report), so that programs take a dataset path and nothing else.
///
/// Recognised (a folder, or the index file itself; only the folder itself is searched, not its subfolders):
///  - mini-MIAS: `Info.txt` (data/mini_mias.hpp; the PGM images next to it);
///  - INbreast:  `INbreast.csv` (data/inbreast.hpp; with `AllXML/` and `AllDICOMs/` next to it);
///  - CBIS-DDSM: the description CSVs `mass_case_description_*.csv`, `calc_case_description_*.csv`
///    (data/cbis_ddsm.hpp). Their images can only be found through the DICOM tree (SeriesInstanceUID join,
///    data/cbis_ddsm_dicom.hpp), which needs DCMTK: `open_dataset` names the problem and points to
///    `open_dataset_dicom` (data/open_dataset_dicom.hpp).
/// Errors are io_error; docs/data-paired-patches.md lists their exact words.
///
///   const data::opened_dataset ds = data::open_dataset("shared/data/mini-mias");
///   // ds.kind == dataset_kind::mini_mias, ds.records: one per image, ds.report: what was left out
#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/cbis_ddsm.hpp"
#include "mammocl/data/csv.hpp"
#include "mammocl/data/inbreast.hpp"
#include "mammocl/data/mini_mias.hpp"

namespace mammocl::data {

/// The datasets `open_dataset` recognises.
enum class dataset_kind { mini_mias, cbis_ddsm, inbreast };

/// "mini-MIAS", "CBIS-DDSM" or "INbreast".
[[nodiscard]] constexpr std::string_view dataset_kind_name(dataset_kind k) noexcept {
  switch (k) {
    case dataset_kind::mini_mias: return "mini-MIAS";
    case dataset_kind::cbis_ddsm: return "CBIS-DDSM";
    case dataset_kind::inbreast: return "INbreast";
  }
  return "?";
}

/// Options passed to the reader of the dataset found.
struct open_dataset_options {
  mini_mias_options mini_mias;   ///< data/mini_mias.hpp
  cbis_ddsm_options cbis_ddsm;   ///< data/cbis_ddsm.hpp
  inbreast_options inbreast;     ///< data/inbreast.hpp
};

/// A dataset found at a path, as records (every reader's output) plus its report.
struct opened_dataset {
  dataset_kind kind = dataset_kind::mini_mias;
  std::filesystem::path root;          ///< the dataset's folder
  std::vector<case_record> records;    ///< one per image, in the reader's order
  dataset_report report;               ///< what the reader left out and why
  bool needs_dicom = false;            ///< true when the images are DICOM files (CBIS-DDSM, INbreast)
};

namespace detail {

/// What `probe_dataset` found at a path.
struct dataset_probe {
  dataset_kind kind = dataset_kind::mini_mias;
  std::filesystem::path root;               ///< the folder of the dataset
  std::filesystem::path index;              ///< Info.txt or INbreast.csv (mini-MIAS, INbreast)
  std::vector<std::filesystem::path> csvs;  ///< CBIS-DDSM description CSVs, in a fixed order
};

/// A CBIS-DDSM description CSV name: mass_ or calc_case_description_<anything>.csv.
[[nodiscard]] inline bool is_cbis_csv_name(const std::string& f) {
  const bool prefix = f.rfind("mass_case_description_", 0) == 0 || f.rfind("calc_case_description_", 0) == 0;
  return prefix && f.size() > 4 && f.compare(f.size() - 4, 4, ".csv") == 0;
}

/// Sort key of the description CSVs: mass before calc, train before test (cbis_ddsm_csvs' order), then name.
[[nodiscard]] inline std::string cbis_csv_key(const std::filesystem::path& p) {
  const std::string f = p.filename().string();
  return std::string(f.rfind("mass", 0) == 0 ? "0" : "1") + (f.find("train") != std::string::npos ? "0" : "1") + f;
}

inline constexpr const char* looked_for =
    "Info.txt (mini-MIAS), INbreast.csv with AllXML/ and AllDICOMs/ (INbreast), "
    "mass_case_description_*.csv or calc_case_description_*.csv (CBIS-DDSM)";

/// Recognises the dataset at `path` (see the file comment); `who` prefixes the messages.
[[nodiscard]] inline dataset_probe probe_dataset(const std::filesystem::path& path, std::string_view who) {
  namespace fs = std::filesystem;
  std::error_code ec;
  MAMMOCL_CHECK(fs::exists(path, ec), io_error, who, ": ", path.string(), " does not exist");
  dataset_probe p;
  if (fs::is_regular_file(path, ec)) {
    const std::string f = path.filename().string();
    p.root = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    if (f == "Info.txt") {
      p.kind = dataset_kind::mini_mias;
      p.index = path;
    } else if (f == "INbreast.csv") {
      p.kind = dataset_kind::inbreast;
      p.index = path;
    } else if (is_cbis_csv_name(f)) {
      p.kind = dataset_kind::cbis_ddsm;
      p.csvs = {path};
    } else {
      MAMMOCL_THROW(io_error, who, ": ", path.string(), " is not a dataset index file; expected ", looked_for,
                    ", or the folder that holds them");
    }
    return p;
  }
  MAMMOCL_CHECK(fs::is_directory(path, ec), io_error, who, ": ", path.string(),
                " is neither a file nor a folder");
  p.root = path;
  const bool mias = fs::is_regular_file(path / "Info.txt", ec);
  const bool inbreast = fs::is_regular_file(path / "INbreast.csv", ec);
  std::vector<fs::path> csvs;
  for (const auto& e : fs::directory_iterator(path, ec))
    if (e.is_regular_file(ec) && is_cbis_csv_name(e.path().filename().string())) csvs.push_back(e.path());
  MAMMOCL_CHECK(!ec, io_error, who, ": cannot list the folder ", path.string(), ": ", ec.message());
  std::sort(csvs.begin(), csvs.end(), [](const fs::path& a, const fs::path& b) { return cbis_csv_key(a) < cbis_csv_key(b); });
  const int found = int(mias) + int(inbreast) + int(!csvs.empty());
  MAMMOCL_CHECK(found > 0, io_error, who, ": no dataset recognised in the folder ", path.string(), "; looked for ",
                looked_for);
  if (found > 1) {
    std::string what;
    for (const auto& [present, name] : {std::pair{mias, "Info.txt"}, std::pair{inbreast, "INbreast.csv"},
                                        std::pair{!csvs.empty(), "CBIS-DDSM description CSVs"}})
      if (present) what += (what.empty() ? "" : ", ") + std::string(name);
    MAMMOCL_THROW(io_error, who, ": the folder ", path.string(), " holds the files of more than one dataset (", what,
                  "); pass the index file of the one to open");
  }
  if (mias) {
    p.kind = dataset_kind::mini_mias;
    p.index = path / "Info.txt";
  } else if (inbreast) {
    p.kind = dataset_kind::inbreast;
    p.index = path / "INbreast.csv";
  } else {
    p.kind = dataset_kind::cbis_ddsm;
    p.csvs = std::move(csvs);
  }
  return p;
}

/// Reads a probed mini-MIAS or INbreast dataset (not CBIS-DDSM, whose images need the DICOM join).
[[nodiscard]] inline opened_dataset read_probed(const dataset_probe& p, const open_dataset_options& opt) {
  opened_dataset out;
  out.kind = p.kind;
  out.root = p.root;
  if (p.kind == dataset_kind::mini_mias) {
    auto r = read_mini_mias(p.index, opt.mini_mias);
    out.records = std::move(r.records);
    out.report = std::move(r.report);
  } else {
    auto r = read_inbreast(p.root, opt.inbreast);
    out.records = std::move(r.records);
    out.report = std::move(r.report);
    out.needs_dicom = true;
  }
  return out;
}

}  // namespace detail

/// Recognises the dataset at `path` (a folder, or the Info.txt / INbreast.csv / a description CSV itself)
/// and reads it with its reader and `opt`: mini-MIAS: Info.txt (+ PGM images); INbreast: INbreast.csv +
/// AllXML/ + AllDICOMs/ (records point at the DICOM files, needs_dicom = true); CBIS-DDSM: the description
/// CSVs, which is an error here because their images need the DICOM tree (use open_dataset_dicom).
/// Errors (io_error):
///  - "open_dataset: <path> does not exist";
///  - "open_dataset: no dataset recognised in the folder <path>; looked for Info.txt (mini-MIAS), ..." and,
///    for a file, "open_dataset: <path> is not a dataset index file; expected Info.txt (mini-MIAS), ...";
///  - "open_dataset: the folder <path> holds the files of more than one dataset (...)";
///  - "open_dataset: <root>: CBIS-DDSM description CSVs (<n> files) found, but CBIS-DDSM images need the
///    DICOM tree: use open_dataset_dicom (mammocl/data/open_dataset_dicom.hpp, target mammocl::dicom)";
///  - the reader's own errors (a malformed Info.txt line, a missing AllDICOMs/ folder, ...).
[[nodiscard]] inline opened_dataset open_dataset(const std::filesystem::path& path, const open_dataset_options& opt = {}) {
  const detail::dataset_probe p = detail::probe_dataset(path, "open_dataset");
  MAMMOCL_CHECK(p.kind != dataset_kind::cbis_ddsm, io_error, "open_dataset: ", p.root.string(),
                ": CBIS-DDSM description CSVs (", p.csvs.size(), p.csvs.size() == 1 ? " file" : " files",
                ") found, but CBIS-DDSM images need the DICOM tree: use open_dataset_dicom "
                "(mammocl/data/open_dataset_dicom.hpp, target mammocl::dicom)");
  return detail::read_probed(p, opt);
}

}  // namespace mammocl::data
