#pragma once
/// `open_dataset` plus what needs DCMTK (link `mammocl::dicom`): CBIS-DDSM through the DICOM tree join of
/// data/cbis_ddsm_dicom.hpp, and an image reader for DICOM files (data/dicom.hpp) as well as PGM/PNG.
///
/// CBIS-DDSM: the description CSVs and the downloaded DICOM tree share one folder (the CSVs at its top, the
/// tree anywhere below it, e.g. `<root>/CBIS-DDSM/...` as the NBIA Data Retriever writes it). Every `.dcm`
/// under the folder is indexed by SeriesInstanceUID and the records get the files' paths (full image, ROI
/// masks). Full images missing from the tree are reported in `report.skipped`; ROIs without a mask keep
/// their label with no location (make_paired_patches then skips their image).
///
///   const auto ds = data::open_dataset_dicom("/data/cbis-ddsm");
///   const auto pp = data::make_paired_patches(ds.records, opt, data::dicom_image_reader());
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/cbis_ddsm_dicom.hpp"
#include "mammocl/data/dicom.hpp"
#include "mammocl/data/image_io.hpp"
#include "mammocl/data/open_dataset.hpp"
#include "mammocl/data/paired_patches.hpp"

namespace mammocl::data {

namespace detail {
/// True when some regular file below `root` has the extension .dcm (any case); stops at the first.
[[nodiscard]] inline bool has_dcm_file(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (ext == ".dcm") return true;
  }
  return false;
}
}  // namespace detail

/// open_dataset plus the CBIS-DDSM DICOM tree join (data/cbis_ddsm_dicom.hpp), so that CBIS-DDSM works.
/// mini-MIAS and INbreast are read as by open_dataset (same errors, prefixed "open_dataset_dicom").
/// CBIS-DDSM: the CSVs are read with opt.cbis_ddsm, then joined to the `.dcm` files under the CSVs'
/// folder; needs_dicom = true; the report holds the CSV reader's entries, then the join's. A folder with
/// no `.dcm` file is an io_error: "open_dataset_dicom: <root>: CBIS-DDSM description CSVs (<n> files) but
/// no DICOM file (.dcm) under this folder; CBIS-DDSM images need the DICOM tree (the NBIA download) below
/// the folder of the CSVs".
[[nodiscard]] inline opened_dataset open_dataset_dicom(const std::filesystem::path& path,
                                                       const open_dataset_options& opt = {}) {
  const detail::dataset_probe p = detail::probe_dataset(path, "open_dataset_dicom");
  if (p.kind != dataset_kind::cbis_ddsm) return detail::read_probed(p, opt);
  const cbis_ddsm_result csv = read_cbis_ddsm(p.csvs, opt.cbis_ddsm);
  // "No tree at all" is a setup error; "some series missing" is reported per image by the join.
  MAMMOCL_CHECK(detail::has_dcm_file(p.root), io_error, "open_dataset_dicom: ", p.root.string(),
                ": CBIS-DDSM description CSVs (", p.csvs.size(), p.csvs.size() == 1 ? " file" : " files",
                ") but no DICOM file (.dcm) under this folder; CBIS-DDSM images need the DICOM tree (the NBIA "
                "download) below the folder of the CSVs");
  cbis_dicom_result joined = join_cbis_ddsm_dicom(csv, p.root);
  opened_dataset out;
  out.kind = dataset_kind::cbis_ddsm;
  out.root = p.root;
  out.needs_dicom = true;
  out.records = std::move(joined.records);
  out.report = csv.report;
  for (auto& s : joined.report.skipped) out.report.skipped.push_back(std::move(s));
  for (auto& w : joined.report.warnings) out.report.warnings.push_back(std::move(w));
  return out;
}

/// An image_reader that reads DICOM (data/dicom.hpp, presentation values as that header defines them:
/// stored values after the Modality LUT, MONOCHROME1 inverted, no VOI window) and PGM/PNG (read_image),
/// chosen by the file's first bytes.
[[nodiscard]] inline image_reader dicom_image_reader() {
  return [](const std::filesystem::path& path) {
    const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, "dicom_image_reader");
    const std::span<const std::uint8_t> view(bytes);
    if (sniff_image_format(view) == image_format::dicom) return read_dicom(view, path.string());
    return read_image(view, path.string());
  };
}

}  // namespace mammocl::data
