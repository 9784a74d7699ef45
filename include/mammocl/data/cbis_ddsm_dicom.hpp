#pragma once
/// Joins CBIS-DDSM description rows (cbis_ddsm.hpp) to a downloaded DICOM tree (DATA-FORMATS.md §2.3-2.4).
/// Needs DCMTK: link `mammocl::dicom`.
///
/// - Folder and file names are ignored. Every `.dcm` file under the root is indexed by its
///   SeriesInstanceUID (0020,000E), read from the header only (`loadFile` with a 4 KiB maximum read
///   length leaves the pixel data on disk). A CSV path's 3rd component is the SeriesInstanceUID to look up.
/// - Full image: the file of the row's image series.
/// - Crop vs ROI mask, told apart by content, not by name: the files of the row's crop and mask series are
///   decoded and a file is a **mask** when its pixel values take at most two values, 0 and one of 1 or
///   2^BitsStored - 1 (255 for 8-bit masks), and a **crop** otherwise (a crop has many grey levels).
///   When several masks qualify, the one with the full image's Rows x Columns wins.
/// - A full-image series that is not in the tree: the image is reported and left out (or io_error with
///   `strict`). An ROI whose mask is not found keeps its label with an empty `mask_path` and a warning
///   (or io_error with `strict`).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/cbis_ddsm.hpp"
#include "mammocl/data/csv.hpp"

namespace mammocl::data {

/// What the header of one DICOM file says, as far as the join needs it.
struct cbis_dicom_header {
  std::filesystem::path path;
  std::string series_uid;    ///< (0020,000E)
  int rows = 0, cols = 0;    ///< (0028,0010), (0028,0011)
  int bits_stored = 0;       ///< (0028,0101)
};

/// Reads the header of `path` up to the pixel data; nullopt (with `why` filled) when it is not a readable
/// DICOM file or has no SeriesInstanceUID.
[[nodiscard]] inline std::optional<cbis_dicom_header> read_cbis_dicom_header(const std::filesystem::path& path,
                                                                             std::string* why = nullptr) {
  DcmFileFormat ff;
  // Elements longer than 4 KiB (the pixel data) stay on disk: only the header is read into memory, and,
  // unlike loadFileUntilTag, DCMTK logs no warning for every file.
  const OFCondition c = ff.loadFile(path.string().c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
  if (c.bad()) {
    if (why) *why = std::string("not readable as DICOM (") + c.text() + ")";
    return std::nullopt;
  }
  DcmDataset* ds = ff.getDataset();
  OFString uid;
  if (ds->findAndGetOFString(DCM_SeriesInstanceUID, uid).bad() || uid.empty()) {
    if (why) *why = "no SeriesInstanceUID (0020,000E)";
    return std::nullopt;
  }
  cbis_dicom_header h;
  h.path = path;
  h.series_uid = uid.c_str();
  Uint16 v = 0;
  if (ds->findAndGetUint16(DCM_Rows, v).good()) h.rows = v;
  if (ds->findAndGetUint16(DCM_Columns, v).good()) h.cols = v;
  if (ds->findAndGetUint16(DCM_BitsStored, v).good()) h.bits_stored = v;
  return h;
}

/// Every DICOM file under a folder, by SeriesInstanceUID.
struct cbis_dicom_index {
  std::map<std::string, std::vector<cbis_dicom_header>> series;  ///< files of each series, sorted by path
  std::vector<skipped_entry> unreadable;                         ///< `.dcm` files that could not be indexed
};

/// Walks `root` recursively and indexes every `.dcm` file (extension case-insensitive) by its header's
/// SeriesInstanceUID. io_error when `root` is not a folder.
[[nodiscard]] inline cbis_dicom_index index_cbis_dicom_tree(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  MAMMOCL_CHECK(fs::is_directory(root, ec), io_error, root.string(), ": not a folder (the CBIS-DDSM DICOM tree)");
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (ext == ".dcm") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  cbis_dicom_index idx;
  for (const auto& f : files) {
    std::string why;
    if (auto h = read_cbis_dicom_header(f, &why)) idx.series[h->series_uid].push_back(std::move(*h));
    else idx.unreadable.push_back({f.string(), why});
  }
  return idx;
}

/// The content class of an ROI series file.
enum class cbis_roi_file { mask, crop };

/// Decodes `path` and classifies it: mask when its values are within {0, hi} with hi = 1 or
/// 2^BitsStored - 1, crop otherwise (see the header comment). io_error naming the file when it cannot be
/// decoded (compressed syntaxes other than JPEG and RLE, missing pixel data).
[[nodiscard]] inline cbis_roi_file classify_cbis_roi_file(const std::filesystem::path& path) {
  static const bool codecs = [] {
    DJDecoderRegistration::registerCodecs();  // idempotent in DCMTK
    DcmRLEDecoderRegistration::registerCodecs();
    return true;
  }();
  (void)codecs;
  DcmFileFormat ff;
  const OFCondition c = ff.loadFile(path.string().c_str());
  MAMMOCL_CHECK(c.good(), io_error, path.string(), ": cannot read DICOM file (", c.text(), ")");
  DcmDataset* ds = ff.getDataset();
  const E_TransferSyntax xfer = ds->getOriginalXfer();
  if (DcmXfer(xfer).isEncapsulated()) {
    const OFCondition d = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    MAMMOCL_CHECK(d.good() && ds->canWriteXfer(EXS_LittleEndianExplicit), io_error, path.string(),
                  ": cannot decode pixel data of transfer syntax ", DcmXfer(xfer).getXferName(), " (", d.text(), ")");
  }
  Uint16 bits_alloc = 0, bits_stored = 0, spp = 1;
  MAMMOCL_CHECK(ds->findAndGetUint16(DCM_BitsAllocated, bits_alloc).good(), io_error, path.string(),
                ": no BitsAllocated (0028,0100)");
  if (ds->findAndGetUint16(DCM_BitsStored, bits_stored).bad()) bits_stored = bits_alloc;
  (void)ds->findAndGetUint16(DCM_SamplesPerPixel, spp);
  MAMMOCL_CHECK(bits_alloc == 8 || bits_alloc == 16, io_error, path.string(), ": BitsAllocated ", bits_alloc,
                " (expected 8 or 16)");
  DcmElement* px = nullptr;
  MAMMOCL_CHECK(ds->findAndGetElement(DCM_PixelData, px).good() && px != nullptr, io_error, path.string(),
                ": no PixelData (7FE0,0010)");
  const std::uint32_t hi_max = bits_stored >= 1 && bits_stored <= 16 ? (1u << bits_stored) - 1u : 0xFFFFu;
  std::set<std::uint32_t> levels;
  auto scan = [&](auto* data, unsigned long n) {
    for (unsigned long i = 0; i < n && levels.size() <= 2; ++i) levels.insert(static_cast<std::uint32_t>(data[i]) & hi_max);
  };
  if (bits_alloc == 8) {
    Uint8* d = nullptr;
    MAMMOCL_CHECK(px->getUint8Array(d).good() && d, io_error, path.string(), ": cannot access 8-bit pixel data");
    scan(d, px->getLength());
  } else {
    Uint16* d = nullptr;
    MAMMOCL_CHECK(px->getUint16Array(d).good() && d, io_error, path.string(), ": cannot access 16-bit pixel data");
    scan(d, px->getLength() / 2);
  }
  const bool binary = levels.size() <= 2 && (levels.size() < 2 || *levels.begin() == 0) &&
                      (levels.empty() || *levels.rbegin() == 0 || *levels.rbegin() == 1 || *levels.rbegin() == hi_max);
  return binary && spp == 1 ? cbis_roi_file::mask : cbis_roi_file::crop;
}

/// Options of `join_cbis_ddsm_dicom`.
struct cbis_dicom_options {
  bool strict = false;  ///< a missing series or mask is an io_error instead of a report entry
};

/// The CSV records with paths replaced by the files of the tree.
struct cbis_dicom_result {
  std::vector<case_record> records;     ///< image_path = full image file; each ROI's mask_path = its mask file
  std::vector<cbis_image_info> images;  ///< parallel; crop_paths = the crop files ("" where none was found)
  dataset_report report;                ///< images left out (missing series), unreadable files, warnings
};

/// Joins the CSV records to the DICOM tree under `root` (see the header comment for the rules).
[[nodiscard]] inline cbis_dicom_result join_cbis_ddsm_dicom(const cbis_ddsm_result& csv,
                                                            const std::filesystem::path& root,
                                                            const cbis_dicom_options& opt = {}) {
  const cbis_dicom_index idx = index_cbis_dicom_tree(root);
  cbis_dicom_result out;
  out.report.rows_read = csv.report.rows_read;
  for (const auto& u : idx.unreadable) out.report.warnings.push_back(u.item + ": " + u.reason + "; ignored");
  std::map<std::string, cbis_roi_file> kinds;  // classification cache by path
  auto kind_of = [&](const std::filesystem::path& p) {
    auto it = kinds.find(p.string());
    if (it == kinds.end()) it = kinds.emplace(p.string(), classify_cbis_roi_file(p)).first;
    return it->second;
  };
  for (std::size_t i = 0; i < csv.records.size(); ++i) {
    const auto& info = csv.images[i];
    const cbis_row& first = csv.rows[info.rows.front()];
    const std::string where = first.source + ":" + std::to_string(first.line);
    const auto full = idx.series.find(info.series_uid);
    if (full == idx.series.end()) {
      const std::string msg = "no DICOM file with SeriesInstanceUID " + info.series_uid + " (full image of " + where +
                              ") under " + root.string();
      MAMMOCL_CHECK(!opt.strict, io_error, msg);
      out.report.skip(csv.records[i].image_path, msg);
      continue;
    }
    const cbis_dicom_header& image = full->second.front();
    if (full->second.size() > 1)
      out.report.warnings.push_back("series " + info.series_uid + " holds " + std::to_string(full->second.size()) +
                                    " files; using " + image.path.string());
    case_record rec = csv.records[i];
    cbis_image_info inf = info;
    rec.image_path = image.path.string();
    for (std::size_t k = 0; k < rec.rois.size(); ++k) {
      const cbis_row& row = csv.rows[info.rows[k]];
      const std::string rwhere = row.source + ":" + std::to_string(row.line);
      std::vector<const cbis_dicom_header*> cand;
      for (const auto* s : {&row.crop_series, &row.mask_series})
        if (auto it = idx.series.find(*s); it != idx.series.end())
          for (const auto& h : it->second)
            if (std::none_of(cand.begin(), cand.end(), [&](const auto* c) { return c->path == h.path; }))
              cand.push_back(&h);
      const cbis_dicom_header* mask = nullptr;
      const cbis_dicom_header* crop = nullptr;
      for (const auto* h : cand) {
        if (kind_of(h->path) == cbis_roi_file::crop) {
          if (!crop) crop = h;
          continue;
        }
        const bool same_size = h->rows == image.rows && h->cols == image.cols;
        if (!mask || (same_size && !(mask->rows == image.rows && mask->cols == image.cols))) mask = h;
      }
      rec.rois[k].mask_path = mask ? mask->path.string() : std::string();
      inf.crop_paths[k] = crop ? crop->path.string() : std::string();
      if (!mask) {
        const std::string msg = rwhere + ": no ROI mask in series " + row.mask_series + " or " + row.crop_series +
                                " under " + root.string();
        MAMMOCL_CHECK(!opt.strict, io_error, msg);
        out.report.warnings.push_back(msg + "; the ROI keeps its label without a location");
      } else if (mask->rows != image.rows || mask->cols != image.cols) {
        out.report.warnings.push_back(rwhere + ": mask " + mask->path.string() + " is " + std::to_string(mask->rows) +
                                      " x " + std::to_string(mask->cols) + ", the full image " +
                                      std::to_string(image.rows) + " x " + std::to_string(image.cols));
      }
      if (!crop) out.report.warnings.push_back(rwhere + ": no cropped image found");
    }
    out.records.push_back(std::move(rec));
    out.images.push_back(std::move(inf));
  }
  return out;
}

}  // namespace mammocl::data
