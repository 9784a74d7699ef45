#pragma once
/// DICOM reading and writing through DCMTK (link `mammocl::dicom`).
///
/// `read_dicom` turns one DICOM image into a `data::image` following image.hpp's convention: the stored
/// values of the first (or a chosen) frame, decoded by us from the unencapsulated pixel data (no
/// DicomImage, so no VOI window is ever applied), masked to Bits Stored, sign-extended when Pixel
/// Representation is 1, passed through the Modality LUT (Rescale Slope / Intercept) and, for
/// MONOCHROME1, mirrored over the stored range so that larger is brighter. `write_dicom` is the inverse
/// and is how the sigmoid-LUT domain is exported. docs/data-dicom.md has the conventions and errors.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <dcmtk/config/osconfig.h>  // must come first among DCMTK headers
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>

#include "mammocl/core/error.hpp"
#include "mammocl/data/image.hpp"

namespace mammocl::data {

/// Options of `read_dicom`.
struct dicom_read_options {
  /// Which frame of a multi-frame object to return (0-based). A frame index at or past Number of
  /// Frames (0028,0008) is a config_error; single-frame files have exactly frame 0.
  std::uint32_t frame = 0;
  /// Upper bound on (decoded pixel bytes of all frames) / (input bytes) for encapsulated syntaxes, so
  /// that a tiny corrupt file cannot make a decoder allocate gigabytes from its Rows x Columns.
  /// Real mammograms compress about 2-10:1; raise it for nearly blank synthetic images.
  double max_decompression_ratio = 1000.0;
};

/// Options of `write_dicom`. Every image attribute (bits stored, signedness, photometric, rescale,
/// window, VOI LUT Function, patient id, laterality, view, presentation intent, spacings) comes from
/// `image.meta`, so that `write_dicom(read_dicom(f))` keeps what `read_dicom` understood of `f`.
struct dicom_write_options {
  /// Modality (0008,0060).
  std::string modality = "MG";
  /// Series Description (0008,103E); omitted when empty.
  std::string series_description;
  /// false: every pixel, after undoing inversion and rescale, must lie within 1e-3 of an integer
  /// stored value (a config_error otherwise, so that nothing is silently quantised). true: round to the
  /// nearest stored value (exporting float images such as a sigmoid-LUT output).
  bool round_to_nearest = false;
};

namespace detail::dicom {

/// Registers DCMTK's RLE, JPEG (IJG 8/12/16 bit) and JPEG-LS decoders exactly once per process.
/// A function-local static makes the first call thread-safe. The codecs are deliberately never
/// deregistered: cleanup() at static destruction could run after DCMTK's own codec list is gone.
inline void register_decoders() {
  static const bool once = [] {
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    return true;
  }();
  (void)once;
}

/// "(gggg,eeee)" in upper-case hex, the way every error message names a tag.
inline std::string tag_name(const DcmTagKey& key) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", static_cast<unsigned>(key.getGroup()),
                static_cast<unsigned>(key.getElement()));
  return buf;
}

inline std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

inline std::string get_string(DcmItem& ds, const DcmTagKey& key) {
  OFString v;
  if (ds.findAndGetOFString(key, v, 0).good()) return trim(v.c_str());
  return {};
}

inline std::optional<long> get_int(DcmItem& ds, const DcmTagKey& key) {
  // US, SS and IS all answer findAndGetSint32 / findAndGetLongInt; try the binary forms first.
  Uint16 u = 0;
  if (ds.findAndGetUint16(key, u).good()) return static_cast<long>(u);
  Sint32 s = 0;
  if (ds.findAndGetSint32(key, s).good()) return static_cast<long>(s);
  return std::nullopt;
}

inline std::optional<double> get_double(DcmItem& ds, const DcmTagKey& key, unsigned long pos = 0) {
  Float64 v = 0;
  if (ds.findAndGetFloat64(key, v, pos).good() && std::isfinite(v)) return static_cast<double>(v);
  return std::nullopt;
}

/// Maps a View Code Sequence (0054,0220) code meaning to the ACR MQCM abbreviation, for MG objects that
/// carry the view there instead of in View Position (0018,5101). Only the four standard views.
inline std::string view_from_code_meaning(std::string meaning) {
  for (auto& ch : meaning) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (meaning == "cranio-caudal") return "CC";
  if (meaning == "medio-lateral oblique") return "MLO";
  if (meaning == "medio-lateral") return "ML";
  if (meaning == "latero-medial") return "LM";
  return {};
}

/// Pixel layout read from the image pixel module, validated.
struct layout {
  long rows = 0, cols = 0, samples = 1, bits_allocated = 0, bits_stored = 0, high_bit = 0, frames = 1;
  bool is_signed = false;
};

/// The UID and name of the transfer syntax the data set was stored in.
inline std::string xfer_description(DcmFileFormat& ff) {
  std::string uid = get_string(*ff.getMetaInfo(), DCM_TransferSyntaxUID);
  const DcmXfer x(ff.getDataset()->getOriginalXfer());
  if (uid.empty()) uid = x.getXferID();
  std::string name = x.getXfer() == EXS_Unknown ? std::string("unknown to DCMTK") : std::string(x.getXferName());
  return uid + " (" + name + ")";
}

/// Throws "unsupported transfer syntax" when the meta header names a transfer syntax DCMTK does not know
/// (HTJ2K, a private one, ...): DCMTK would otherwise guess an uncompressed encoding for the data set.
inline void reject_unknown_xfer(DcmFileFormat& ff, const std::string& name) {
  const std::string uid = get_string(*ff.getMetaInfo(), DCM_TransferSyntaxUID);
  MAMMOCL_CHECK(uid.empty() || DcmXfer(uid.c_str()).getXfer() != EXS_Unknown, io_error, "read_dicom: ", name,
                ": unsupported transfer syntax ", uid,
                " (unknown to DCMTK) in (0002,0010); expected uncompressed, RLE, JPEG (baseline, extended, "
                "lossless) or JPEG-LS");
}

/// The range the stored values can take, after the Modality LUT (lo <= hi even for a negative slope).
inline void stored_range(int bits_stored, bool is_signed, double slope, double intercept, double& lo,
                         double& hi) {
  const double smin = is_signed ? -std::ldexp(1.0, bits_stored - 1) : 0.0;
  const double smax = is_signed ? std::ldexp(1.0, bits_stored - 1) - 1.0 : std::ldexp(1.0, bits_stored) - 1.0;
  const double a = slope * smin + intercept, b = slope * smax + intercept;
  lo = std::min(a, b);
  hi = std::max(a, b);
}

/// Reads and checks the image pixel module and fills `meta`; shared by read_dicom and read_dicom_header.
inline layout read_header(DcmDataset& ds, const std::string& name, image_metadata& meta) {
  layout L;
  auto required = [&](const DcmTagKey& key, const char* what) {
    const auto v = get_int(ds, key);
    MAMMOCL_CHECK(v.has_value(), io_error, "read_dicom: ", name, ": ", what, " ", tag_name(key),
                  " is missing; expected a positive integer");
    return *v;
  };
  L.rows = required(DCM_Rows, "Rows");
  L.cols = required(DCM_Columns, "Columns");
  MAMMOCL_CHECK(L.rows > 0 && L.cols > 0, io_error, "read_dicom: ", name, ": Rows ", tag_name(DCM_Rows),
                " x Columns ", tag_name(DCM_Columns), " is ", L.rows, " x ", L.cols, "; expected both > 0");
  L.samples = get_int(ds, DCM_SamplesPerPixel).value_or(1);
  MAMMOCL_CHECK(L.samples == 1, io_error, "read_dicom: ", name, ": Samples per Pixel ",
                tag_name(DCM_SamplesPerPixel), " is ", L.samples,
                "; expected 1 (only monochrome images are supported)");
  L.bits_allocated = required(DCM_BitsAllocated, "Bits Allocated");
  MAMMOCL_CHECK(L.bits_allocated == 8 || L.bits_allocated == 16, io_error, "read_dicom: ", name,
                ": Bits Allocated ", tag_name(DCM_BitsAllocated), " is ", L.bits_allocated, "; expected 8 or 16");
  L.bits_stored = get_int(ds, DCM_BitsStored).value_or(L.bits_allocated);
  MAMMOCL_CHECK(L.bits_stored >= 1 && L.bits_stored <= L.bits_allocated, io_error, "read_dicom: ", name,
                ": Bits Stored ", tag_name(DCM_BitsStored), " is ", L.bits_stored, "; expected 1..",
                L.bits_allocated, " (Bits Allocated)");
  L.high_bit = get_int(ds, DCM_HighBit).value_or(L.bits_stored - 1);
  MAMMOCL_CHECK(L.high_bit >= L.bits_stored - 1 && L.high_bit < L.bits_allocated, io_error, "read_dicom: ",
                name, ": High Bit ", tag_name(DCM_HighBit), " is ", L.high_bit, "; expected ",
                L.bits_stored - 1, "..", L.bits_allocated - 1, " for Bits Stored ", L.bits_stored);
  const long rep = get_int(ds, DCM_PixelRepresentation).value_or(0);
  MAMMOCL_CHECK(rep == 0 || rep == 1, io_error, "read_dicom: ", name, ": Pixel Representation ",
                tag_name(DCM_PixelRepresentation), " is ", rep, "; expected 0 (unsigned) or 1 (signed)");
  L.is_signed = rep == 1;
  const std::string frames = get_string(ds, DCM_NumberOfFrames);
  if (!frames.empty()) {
    const auto f = get_int(ds, DCM_NumberOfFrames);
    MAMMOCL_CHECK(f.has_value() && *f >= 1, io_error, "read_dicom: ", name, ": Number of Frames ",
                  tag_name(DCM_NumberOfFrames), " is '", frames, "'; expected an integer >= 1");
    L.frames = *f;
  }

  meta.photometric = get_string(ds, DCM_PhotometricInterpretation);
  if (meta.photometric.empty()) meta.photometric = "MONOCHROME2";  // ACR-NEMA files omit it
  MAMMOCL_CHECK(meta.photometric == "MONOCHROME1" || meta.photometric == "MONOCHROME2", io_error,
                "read_dicom: ", name, ": Photometric Interpretation ", tag_name(DCM_PhotometricInterpretation),
                " is '", meta.photometric, "'; expected MONOCHROME1 or MONOCHROME2");
  MAMMOCL_CHECK(!ds.tagExists(DCM_ModalityLUTSequence), io_error, "read_dicom: ", name,
                ": Modality LUT Sequence ", tag_name(DCM_ModalityLUTSequence),
                " is present; expected Rescale Slope/Intercept only (LUT-based modality transforms are not supported)");

  meta.source = name;
  meta.patient_id = get_string(ds, DCM_PatientID);
  meta.laterality = get_string(ds, DCM_ImageLaterality);
  if (meta.laterality.empty()) meta.laterality = get_string(ds, DCM_Laterality);
  meta.view = get_string(ds, DCM_ViewPosition);
  if (meta.view.empty()) {
    DcmItem* item = nullptr;
    if (ds.findAndGetSequenceItem(DCM_ViewCodeSequence, item, 0).good() && item)
      meta.view = view_from_code_meaning(get_string(*item, DCM_CodeMeaning));
  }
  meta.presentation_intent = get_string(ds, DCM_PresentationIntentType);
  meta.bits_stored = static_cast<int>(L.bits_stored);
  meta.is_signed = L.is_signed;
  meta.rescale_slope = get_double(ds, DCM_RescaleSlope).value_or(1.0);
  meta.rescale_intercept = get_double(ds, DCM_RescaleIntercept).value_or(0.0);
  MAMMOCL_CHECK(meta.rescale_slope != 0.0, io_error, "read_dicom: ", name, ": Rescale Slope ",
                tag_name(DCM_RescaleSlope), " is 0; expected a non-zero number");
  stored_range(meta.bits_stored, meta.is_signed, meta.rescale_slope, meta.rescale_intercept, meta.min_value,
               meta.max_value);
  meta.pixel_spacing_mm_row = get_double(ds, DCM_PixelSpacing, 0);
  meta.pixel_spacing_mm_col = get_double(ds, DCM_PixelSpacing, 1);
  meta.imager_spacing_mm_row = get_double(ds, DCM_ImagerPixelSpacing, 0);
  meta.imager_spacing_mm_col = get_double(ds, DCM_ImagerPixelSpacing, 1);
  meta.window_center = get_double(ds, DCM_WindowCenter, 0);
  meta.window_width = get_double(ds, DCM_WindowWidth, 0);
  // Pixels of a MONOCHROME1 image are mirrored over [min, max]; the window is mirrored with them so that
  // a VOI LUT applied to `pixels` shows what the file's display pipeline would show.
  if (meta.photometric == "MONOCHROME1" && meta.window_center)
    meta.window_center = (meta.min_value + meta.max_value) - *meta.window_center;
  meta.voi_lut_function = get_string(ds, DCM_VOILUTFunction);
  return L;
}

/// Where and how DCMTK is to read the data set: `parse` hands DCMTK exactly this, so that the encoding
/// the length pre-scan checked is the one DCMTK parses (no auto-detection left to DCMTK).
struct scan_plan {
  std::size_t data_start = 0;                        ///< first byte of the data set (after the meta group)
  E_TransferSyntax xfer = EXS_LittleEndianImplicit;  ///< the data set's encoding
};

/// Walks the element headers of a DICOM stream held in memory and checks that no defined value length
/// reaches past the end of the input, before DCMTK allocates a value field of that size (DCMTK
/// allocates first and notices the missing bytes afterwards). Re-implementing DCMTK's reading rules is
/// fragile (every place where the two read the same bytes differently lets an unchecked length
/// through), so the scanner decides instead of guessing: it returns where the data set starts and in
/// which syntax, and `parse` makes DCMTK read the meta group and the data set separately with exactly
/// that. Only a canonical file meta group is accepted (explicit VR little endian, (0002,0000) first and
/// equal to the bytes of the elements that follow, each (0002,xxxx) element once and in ascending order,
/// standard VRs, no sequences or undefined lengths); anything DCMTK might read differently is refused.
/// Within the data set it follows DCMTK's rules: explicit non-standard VRs with 4-byte lengths;
/// sequences (explicit SQ, implicit by dictionary, undefined-length UN as implicit LE) and encapsulated
/// Pixel Data walked item by item. Deflated data sets are refused (their lengths are only known after
/// inflating, inside DCMTK).
class length_scanner {
 public:
  length_scanner(std::span<const std::uint8_t> b, const std::string& name) : b_(b), name_(name) {}

  /// `part10`: the input has "DICM" at byte 128 (check_magic's verdict).
  scan_plan scan(bool part10) {
    scan_plan plan;
    bool ex = true, be = false;
    if (part10) {
      plan.data_start = meta_group(132);
      const std::string xfer = xfer_;
      // Without a known syntax DCMTK guesses the data set's encoding (byte order included); refuse
      // instead, so that what is parsed is what the header says.
      MAMMOCL_CHECK(!xfer.empty(), io_error, "read_dicom: ", name_,
                    ": Transfer Syntax UID (0002,0010) is missing or empty in the file meta information; "
                    "expected the UID of the data set's encoding");
      const DcmXfer x(xfer.c_str());
      MAMMOCL_CHECK(x.getXfer() != EXS_Unknown, io_error, "read_dicom: ", name_, ": unsupported transfer syntax ",
                    xfer,
                    " (unknown to DCMTK) in (0002,0010); expected uncompressed, RLE, JPEG (baseline, extended, "
                    "lossless) or JPEG-LS");
      MAMMOCL_CHECK(x.getStreamCompression() == ESC_none, io_error, "read_dicom: ", name_,
                    ": unsupported transfer syntax ", xfer, " (", x.getXferName(),
                    ") in (0002,0010): a deflated data set cannot be checked before DCMTK inflates it; expected "
                    "uncompressed, RLE, JPEG (baseline, extended, lossless) or JPEG-LS");
      plan.xfer = x.getXfer();
      ex = x.isExplicitVR();
      be = x.getByteOrder() == EBO_BigEndian;
    } else {
      if (b_.size() >= 6) {
        const char v[3] = {static_cast<char>(b_[4]), static_cast<char>(b_[5]), 0};
        ex = DcmVR(v).isStandard() && std::isupper(static_cast<unsigned char>(v[0])) &&
             std::isupper(static_cast<unsigned char>(v[1]));
      } else {
        ex = false;
      }
      plan.xfer = ex ? EXS_LittleEndianExplicit : EXS_LittleEndianImplicit;
    }
    elements(plan.data_start, b_.size(), ex, be, 0);
    return plan;
  }

 private:
  std::span<const std::uint8_t> b_;
  const std::string& name_;
  std::string xfer_;  // (0002,0010) as found in the meta group
  static constexpr std::uint32_t undefined = 0xFFFFFFFFu;

  [[nodiscard]] std::uint16_t u16(std::size_t p, bool be) const {
    return be ? static_cast<std::uint16_t>((b_[p] << 8) | b_[p + 1]) : static_cast<std::uint16_t>(b_[p] | (b_[p + 1] << 8));
  }
  [[nodiscard]] std::uint32_t u32(std::size_t p, bool be) const {
    const std::uint32_t a = u16(p, be), c = u16(p + 2, be);
    return be ? (a << 16) | c : (c << 16) | a;
  }
  [[nodiscard]] std::string vr_at(std::size_t p) const {
    std::string v;
    for (std::size_t i = 0; i < 2; ++i) {
      const auto c = static_cast<unsigned char>(b_[p + i]);
      if (std::isprint(c)) v += static_cast<char>(c);
      else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned>(c));
        v += hex;
      }
    }
    return v;
  }
  /// `parent` is the sequence or Pixel Data element an item belongs to (unused for plain elements).
  void check(std::size_t p, std::size_t h, std::uint32_t len, std::uint16_t g, std::uint16_t e,
             const DcmTagKey& parent = DcmTagKey()) const {
    const std::size_t left = b_.size() - p - h;
    if (len == undefined || len <= left) return;
    const bool item = g == 0xFFFE && e == 0xE000 && !(parent == DcmTagKey());
    const std::string where = item ? "element " + tag_name(parent) + ", item " + tag_name(DcmTagKey(g, e))
                                          : "element " + tag_name(DcmTagKey(g, e));
    MAMMOCL_THROW(io_error, "read_dicom: ", name_, ": truncated or corrupt DICOM data in ", where, " at byte ", p,
                  ": its length is ", len, " bytes but only ", left, " remain; expected a length within the file");
  }
  void depth_ok(int depth) const {
    MAMMOCL_CHECK(depth <= 32, io_error, "read_dicom: ", name_,
                  ": sequences nested deeper than 32 levels; expected a mammography header");
  }
  [[noreturn]] void meta_fail(std::size_t p, const std::string& what) const {
    MAMMOCL_THROW(io_error, "read_dicom: ", name_, ": non-canonical file meta information at byte ", p, ": ", what);
  }

  /// The file meta group from `p` (after "DICM"); returns where the data set starts. DCMTK ends the group
  /// where (0002,0000) says, keeps the first of two equal tags and guesses the group's VR encoding; every
  /// case where that could differ from a plain reading is refused here.
  std::size_t meta_group(std::size_t p) {
    MAMMOCL_CHECK(p + 8 <= b_.size(), io_error, "read_dicom: ", name_,
                  ": truncated or corrupt DICOM data in the file meta information (0002,xxxx) at byte ", p,
                  "; expected complete elements up to and including Pixel Data (7FE0,0010)");
    const std::uint16_t g0 = u16(p, false), e0 = u16(p + 2, false);
    const std::string vr0 = vr_at(p + 4);
    if (vr0 == "UL") check(p, 8, u16(p + 6, false), g0, e0);
    if (!(g0 == 0x0002 && e0 == 0x0000 && vr0 == "UL" && u16(p + 6, false) == 4))
      meta_fail(p, "the first element is " + tag_name(DcmTagKey(g0, e0)) + " with VR '" + vr0 +
                       "'; expected File Meta Information Group Length (0002,0000), VR UL, length 4 (explicit VR "
                       "little endian, PS3.10 7.1)");
    const std::uint32_t glen = u32(p + 8, false);
    const std::size_t start = p + 12;
    const std::size_t left = b_.size() - start;
    MAMMOCL_CHECK(glen <= left, io_error, "read_dicom: ", name_,
                  ": truncated or corrupt DICOM data in the file meta information: File Meta Information Group "
                  "Length (0002,0000) at byte ", p, " is ", glen, " bytes but only ", left,
                  " remain; expected a length within the file");
    const std::size_t end = start + glen;
    std::size_t q = start;
    std::uint16_t last = 0x0000;
    const std::string glen_text = "File Meta Information Group Length (0002,0000) is " + std::to_string(glen);
    while (q < end) {
      if (q + 8 > end)
        meta_fail(q, "an element header crosses the end of the group at byte " + std::to_string(end) + " (" +
                         glen_text + "); expected the group length to end on an element boundary");
      const std::uint16_t g = u16(q, false), e = u16(q + 2, false);
      const DcmTagKey key(g, e);
      if (g != 0x0002)
        meta_fail(q, "element " + tag_name(key) + " lies inside the group (" + glen_text +
                         "); expected only (0002,xxxx) elements there");
      if (e <= last)
        meta_fail(q, "element " + tag_name(key) + " repeats or follows " + tag_name(DcmTagKey(0x0002, last)) +
                         "; expected each file meta element once, in ascending tag order");
      const std::string vrs = vr_at(q + 4);
      const DcmVR vr(vrs.c_str());
      const bool ok_vr = vrs.size() == 2 && std::isupper(static_cast<unsigned char>(vrs[0])) &&
                         std::isupper(static_cast<unsigned char>(vrs[1])) && vr.isStandard() &&
                         vr.getEVR() != EVR_SQ && vrs == vr.getVRName();
      if (!ok_vr)
        meta_fail(q, "element " + tag_name(key) + " has VR '" + vrs +
                         "'; expected a standard non-sequence VR (the file meta information is explicit VR little "
                         "endian)");
      std::size_t h = 8;
      std::uint32_t len = 0;
      if (vr.usesExtendedLengthEncoding()) {
        h = 12;
        if (q + h > end)
          meta_fail(q, "an element header crosses the end of the group at byte " + std::to_string(end) + " (" +
                           glen_text + "); expected the group length to end on an element boundary");
        len = u32(q + 8, false);
      } else {
        len = u16(q + 6, false);
      }
      check(q, h, len, g, e);
      if (len > end - q - h)
        meta_fail(q, "element " + tag_name(key) + " of " + (len == undefined ? std::string("undefined length")
                                                                              : std::to_string(len) + " bytes") +
                         " runs past the end of the group at byte " + std::to_string(end) + " (" + glen_text +
                         "); expected the group length to cover every (0002,xxxx) element");
      if (key == DCM_TransferSyntaxUID)
        xfer_ = trim(std::string(reinterpret_cast<const char*>(b_.data() + q + h), len).c_str());
      last = e;
      q += h + len;
    }
    if (end + 2 <= b_.size() && u16(end, false) == 0x0002)
      meta_fail(end, std::string("element ") +
                         (end + 4 <= b_.size() ? tag_name(DcmTagKey(0x0002, u16(end + 2, false))) : "(0002,xxxx)") +
                         " follows the end of the group (" + glen_text +
                         "); expected the group length to cover every (0002,xxxx) element");
    return end;
  }

  /// Elements starting before `end` (the end of a defined-length item, else the input), or up to an
  /// item delimiter (returns the position after it). Lengths are checked against the whole input, as
  /// DCMTK reads an element that starts inside an item even when it overruns the item.
  std::size_t elements(std::size_t p, std::size_t end, bool ex, bool be, int depth) {
    depth_ok(depth);
    while (p + 8 <= b_.size() && p < end) {
      const std::uint16_t g = u16(p, be), e = u16(p + 2, be);
      if (g == 0xFFFE && e == 0xE00D) return p + 8;  // end of the item
      if (g == 0xFFFE && e == 0xE0DD) return p;      // end of the enclosing sequence
      if (g == 0xFFFE && e == 0xE000) {              // a stray item: always a 4-byte length, no VR
        const std::uint32_t len = u32(p + 4, be);
        check(p, 8, len, g, e);
        if (len == undefined) return p;
        p += 8 + len;
        continue;
      }
      std::size_t h = 8;
      std::uint32_t len = 0;
      DcmEVR evr = EVR_UNKNOWN;
      if (ex) {
        const DcmVR vr(std::string{static_cast<char>(b_[p + 4]), static_cast<char>(b_[p + 5])}.c_str());
        evr = vr.getEVR();
        if (vr.usesExtendedLengthEncoding()) {
          h = 12;
          if (p + h > b_.size()) return p;
          len = u32(p + 8, be);
        } else {
          len = u16(p + 6, be);
        }
      } else {
        len = u32(p + 4, be);
        evr = DcmTag(g, e).getEVR();
      }
      check(p, h, len, g, e);
      const DcmTagKey key(g, e);
      const bool pixel = key == DCM_PixelData && (evr == EVR_OB || evr == EVR_OW || evr == EVR_ox || !ex);
      // Sequences: SQ items in the data set's encoding; UN and unknown VRs as implicit little endian
      // (CP-246), which is how DCMTK reads an undefined-length UN.
      const bool as_sq = evr == EVR_SQ;
      const bool as_un = !as_sq && !pixel && (evr == EVR_UN || evr == EVR_UNKNOWN || evr == EVR_UNKNOWN2B);
      if (len == undefined) {
        p = items(p + h, b_.size(), as_sq ? ex : false, as_sq ? be : false, pixel, key, depth + 1);
        continue;
      }
      if (as_sq || as_un) items(p + h, p + h + len, as_sq ? ex : false, as_sq ? be : false, false, key, depth + 1);
      p += h + len;
    }
    return p;
  }

  /// Items of a sequence (or Pixel Data fragments) starting before `end`, stopping at the sequence
  /// delimiter. Returns the position after the sequence.
  std::size_t items(std::size_t p, std::size_t end, bool ex, bool be, bool fragments, const DcmTagKey& parent,
                    int depth) {
    depth_ok(depth);
    while (p + 8 <= b_.size() && p < end) {
      const std::uint16_t g = u16(p, be), e = u16(p + 2, be);
      const std::uint32_t len = u32(p + 4, be);
      if (g == 0xFFFE && e == 0xE0DD) return p + 8;
      if (g != 0xFFFE || e != 0xE000) return p;  // not an item: DCMTK reports it or reads it as data
      check(p, 8, len, g, e, parent);
      if (len == undefined) {
        if (fragments) return p;
        p = elements(p + 8, b_.size(), ex, be, depth + 1);
        continue;
      }
      if (!fragments) elements(p + 8, p + 8 + len, ex, be, depth + 1);
      p += 8 + len;
    }
    return p;
  }
};

/// Part 10 files (preamble + "DICM") and raw little-endian data sets (no meta header, first tag in group
/// 0008) are accepted; anything else is "not a DICOM file". `head` is the start of the file, `size` its size.
/// Returns true for Part 10 (all four bytes "DICM" at 128, the same test DCMTK applies).
inline bool check_magic(std::span<const std::uint8_t> head, std::size_t size, const std::string& name) {
  const bool part10 = head.size() >= 132 && head[128] == 'D' && head[129] == 'I' && head[130] == 'C' &&
                      head[131] == 'M';
  const bool raw = !part10 && head.size() >= 8 && head[0] == 0x08 && head[1] == 0x00;
  MAMMOCL_CHECK(part10 || raw, io_error, "read_dicom: ", name, ": not a DICOM file (", size,
                " bytes): expected 'DICM' at byte 128 after the Part 10 preamble, or a data set starting with a (0008,xxxx) element");
  return part10;
}

/// Turns a failed DCMTK read into an io_error naming the last element DCMTK read completely.
[[noreturn]] inline void read_failed(DcmFileFormat& ff, const OFCondition& cond, const std::string& name) {
  reject_unknown_xfer(ff, name);
  // Name the last element DCMTK read completely: the damage is at or just after it.
  DcmDataset* ds = ff.getDataset();
  std::string where = "in the file meta information (0002,xxxx)";
  if (ds && ds->card() > 0) where = "in or after element " + tag_name(ds->getElement(ds->card() - 1)->getTag());
  MAMMOCL_THROW(io_error, "read_dicom: ", name, ": truncated or corrupt DICOM data ", where,
                "; expected complete elements up to and including Pixel Data (7FE0,0010) (DCMTK: ", cond.text(),
                ")");
}

/// Parses a DICOM stream (whole, or up to Pixel Data for the header alone).
inline std::unique_ptr<DcmFileFormat> parse_stream(DcmInputStream& in, const std::string& name, bool until_pixel_data) {
  auto ff = std::make_unique<DcmFileFormat>();
  ff->transferInit();
  const OFCondition cond =
      until_pixel_data
          ? ff->readUntilTag(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, DCM_PixelData)
          : ff->read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
  ff->transferEnd();
  if (cond.bad()) read_failed(*ff, cond, name);
  return ff;
}

/// Parses a whole DICOM stream held in memory. The length pre-scan decides where the data set starts
/// and in which syntax; DCMTK then reads the meta group from a stream that ends where the group ends,
/// and the data set from a stream that starts there, in that syntax (never auto-detected), so that every
/// length DCMTK allocates is one the scanner checked against the input size.
inline std::unique_ptr<DcmFileFormat> parse(std::span<const std::uint8_t> bytes, const std::string& name) {
  const bool part10 = check_magic(bytes, bytes.size(), name);
  const scan_plan plan = length_scanner(bytes, name).scan(part10);
  auto ff = std::make_unique<DcmFileFormat>();
  ff->transferInit();
  OFCondition cond = EC_Normal;
  if (part10) {
    DcmInputBufferStream meta_in;
    meta_in.setBuffer(bytes.data(), static_cast<offile_off_t>(plan.data_start));
    meta_in.setEos();
    cond = ff->getMetaInfo()->read(meta_in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    meta_in.releaseBuffer();
  }
  if (cond.good() && plan.data_start < bytes.size()) {
    DcmInputBufferStream in;
    in.setBuffer(bytes.data() + plan.data_start, static_cast<offile_off_t>(bytes.size() - plan.data_start));
    in.setEos();
    cond = ff->getDataset()->read(in, plan.xfer, EGL_noChange, DCM_MaxReadLength);
    in.releaseBuffer();
  }
  ff->transferEnd();
  if (cond.bad()) read_failed(*ff, cond, name);
  return ff;
}

inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  MAMMOCL_CHECK(f.good(), io_error, "read_dicom: cannot open ", path.string());
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MAMMOCL_CHECK(!f.bad(), io_error, "read_dicom: error while reading ", path.string());
  return bytes;
}

/// Walks the marker segments of one JPEG stream up to its frame header (SOFn) and rejects anything else
/// on the way: DCMTK's bit-depth pre-scan (DJCodecDecoder::scanJpegDataForBitDepth, 3.6.7) can loop
/// forever on some malformed marker sequences, so it must only ever see well-formed headers.
inline void check_jpeg_header(const Uint8* d, std::size_t n, const std::string& name, std::size_t fragment) {
  auto fail = [&](std::size_t at, const std::string& what) {
    MAMMOCL_THROW(io_error, "read_dicom: ", name, ": corrupt JPEG stream in Pixel Data (7FE0,0010) fragment ",
                  fragment, " at byte ", at, ": ", what,
                  "; expected SOI, then APPn, DQT, DHT, DRI or COM segments, then a SOFn frame header");
  };
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) fail(0, "no SOI marker (FFD8)");
  std::size_t p = 2;
  while (true) {
    if (p + 4 > n) fail(p, "the stream ends before the frame header");
    const unsigned m = (static_cast<unsigned>(d[p]) << 8) | d[p + 1];
    const std::size_t len = (static_cast<std::size_t>(d[p + 2]) << 8) | d[p + 3];
    const bool sof = (m >= 0xFFC0 && m <= 0xFFCF) && m != 0xFFC4 && m != 0xFFC8 && m != 0xFFCC;
    const bool table = (m >= 0xFFE0 && m <= 0xFFEF) || m == 0xFFDB || m == 0xFFC4 || m == 0xFFDD ||
                       m == 0xFFFE || m == 0xFFCC;
    if (!sof && !table) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "%04X", m);
      fail(p, std::string("unexpected marker ") + hex);
    }
    if (len < 2 || p + 2 + len > n) fail(p, "segment length " + std::to_string(len) + " outside the stream");
    if (sof) return;
    p += 2 + len;
  }
}

/// Checks every JPEG stream start in the encapsulated Pixel Data before DCMTK decodes it.
inline void check_jpeg_fragments(DcmElement& px, E_TransferSyntax xfer, const std::string& name) {
  if (xfer < EXS_JPEGProcess1 || xfer > EXS_JPEGProcess14SV1) return;  // the IJG-based JPEG family only
  DcmPixelSequence* seq = nullptr;
  auto* pd = dynamic_cast<DcmPixelData*>(&px);
  MAMMOCL_CHECK(pd && pd->getEncapsulatedRepresentation(xfer, nullptr, seq).good() && seq, io_error,
                "read_dicom: ", name, ": Pixel Data (7FE0,0010) is not encapsulated; expected JPEG fragments for ",
                DcmXfer(xfer).getXferID());
  MAMMOCL_CHECK(seq->card() >= 2, io_error, "read_dicom: ", name,
                ": Pixel Data (7FE0,0010) holds no JPEG fragment after the offset table");
  for (unsigned long i = 1; i < seq->card(); ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* d = nullptr;
    if (seq->getItem(item, i).bad() || !item) continue;
    const std::size_t n = item->getLength();
    if (n == 0 || item->getUint8Array(d).bad() || !d) continue;
    if (i == 1 || (n >= 2 && d[0] == 0xFF && d[1] == 0xD8)) check_jpeg_header(d, n, name, i);
  }
}

/// Decodes one frame of a parsed data set into an image.
inline image decode(DcmFileFormat& ff, const std::string& name, const dicom_read_options& opts,
                    std::size_t input_bytes) {
  DcmDataset& ds = *ff.getDataset();
  image_metadata meta;
  const layout L = read_header(ds, name, meta);

  DcmElement* px = nullptr;
  MAMMOCL_CHECK(ds.findAndGetElement(DCM_PixelData, px).good() && px, io_error, "read_dicom: ", name,
                ": Pixel Data ", tag_name(DCM_PixelData), " is missing; expected the image's pixel values");

  reject_unknown_xfer(ff, name);
  const E_TransferSyntax xfer = ds.getOriginalXfer();
  const DcmXfer x(xfer);
  if (x.getXfer() == EXS_Unknown || x.isEncapsulated()) {
    const double decoded = static_cast<double>(L.rows) * static_cast<double>(L.cols) *
                           static_cast<double>(L.bits_allocated / 8) * static_cast<double>(L.frames);
    MAMMOCL_CHECK(decoded <= opts.max_decompression_ratio * static_cast<double>(std::max<std::size_t>(input_bytes, 1)),
                  io_error, "read_dicom: ", name, ": ", L.frames, " frame(s) of ", L.rows, " x ", L.cols,
                  " (Rows (0028,0010), Columns (0028,0011), Number of Frames (0028,0008)) would decode to ",
                  decoded, " bytes from a ", input_bytes, "-byte input; expected at most ",
                  opts.max_decompression_ratio, " times the input (dicom_read_options::max_decompression_ratio)");
    register_decoders();
    if (x.getXfer() != EXS_Unknown) check_jpeg_fragments(*px, xfer, name);
    MAMMOCL_CHECK(x.getXfer() != EXS_Unknown && DcmCodecList::canChangeCoding(xfer, EXS_LittleEndianExplicit),
                  io_error, "read_dicom: ", name, ": unsupported transfer syntax ", xfer_description(ff),
                  " in (0002,0010): DCMTK has no decoder for it here; expected uncompressed, RLE, JPEG "
                  "(baseline, extended, lossless) or JPEG-LS");
    const OFCondition c = ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    MAMMOCL_CHECK(c.good() && ds.canWriteXfer(EXS_LittleEndianExplicit), io_error, "read_dicom: ", name,
                  ": cannot decode Pixel Data ", tag_name(DCM_PixelData), " stored as ", xfer_description(ff),
                  "; expected a valid compressed stream (DCMTK: ", c.text(), ")");
    MAMMOCL_CHECK(ds.findAndGetElement(DCM_PixelData, px).good() && px, io_error, "read_dicom: ", name,
                  ": Pixel Data ", tag_name(DCM_PixelData), " vanished while decoding");
  }
  MAMMOCL_CHECK(opts.frame < static_cast<std::uint64_t>(L.frames), config_error, "read_dicom: ", name,
                ": frame ", opts.frame, " requested but Number of Frames ", tag_name(DCM_NumberOfFrames), " is ",
                L.frames);

  const std::size_t n = static_cast<std::size_t>(L.rows) * static_cast<std::size_t>(L.cols);
  const std::size_t bytes_per = static_cast<std::size_t>(L.bits_allocated / 8);
  const std::size_t need = (static_cast<std::size_t>(opts.frame) + 1) * n * bytes_per;
  const std::size_t have = px->getLength();
  MAMMOCL_CHECK(have >= need, io_error, "read_dicom: ", name, ": Pixel Data ", tag_name(DCM_PixelData),
                " holds ", have, " bytes; expected at least ", need, " (", L.rows, " rows x ", L.cols,
                " columns x ", bytes_per, " bytes", opts.frame > 0 ? " for the requested frame" : "", ")");

  image img(L.rows, L.cols);
  img.meta = meta;
  const unsigned shift = static_cast<unsigned>(L.high_bit + 1 - L.bits_stored);
  const std::uint32_t mask = (L.bits_stored >= 32) ? 0xffffffffu : ((1u << L.bits_stored) - 1u);
  const std::uint32_t sign_bit = 1u << (L.bits_stored - 1);
  const double slope = meta.rescale_slope, intercept = meta.rescale_intercept;
  const bool invert = meta.photometric == "MONOCHROME1";
  const double mirror = meta.min_value + meta.max_value;
  auto convert = [&](std::uint32_t raw) {
    std::uint32_t v = (raw >> shift) & mask;
    const double s = (L.is_signed && (v & sign_bit)) ? static_cast<double>(v) - std::ldexp(1.0, static_cast<int>(L.bits_stored))
                                                     : static_cast<double>(v);
    const double m = slope * s + intercept;
    return static_cast<float>(invert ? mirror - m : m);
  };
  const std::size_t first = static_cast<std::size_t>(opts.frame) * n;
  if (L.bits_allocated == 8) {
    Uint8* data = nullptr;
    MAMMOCL_CHECK(px->getUint8Array(data).good() && data, io_error, "read_dicom: ", name,
                  ": cannot read the 8-bit values of Pixel Data ", tag_name(DCM_PixelData));
    for (std::size_t i = 0; i < n; ++i) img.pixels[i] = convert(data[first + i]);
  } else {
    Uint16* data = nullptr;
    MAMMOCL_CHECK(px->getUint16Array(data).good() && data, io_error, "read_dicom: ", name,
                  ": cannot read the 16-bit values of Pixel Data ", tag_name(DCM_PixelData));
    for (std::size_t i = 0; i < n; ++i) img.pixels[i] = convert(data[first + i]);
  }
  return img;
}

/// Shortest decimal form of `v` that reads back exactly within the 16 characters DS allows ("-100",
/// not "-1e+02"); the closest 16-character form when none is exact.
inline std::string ds_string(double v) {
  std::string best;
  char buf[64];
  for (int p = 0; p <= 17; ++p) {
    for (const char* fmt : {"%.*g", "%.*f"}) {
      const int len = std::snprintf(buf, sizeof buf, fmt, p, v);
      if (len > 0 && len <= 16 && std::strtod(buf, nullptr) == v && (best.empty() || std::string(buf).size() < best.size()))
        best = buf;
    }
  }
  if (!best.empty()) return best;
  for (int p = 16; p >= 1; --p)
    if (std::snprintf(buf, sizeof buf, "%.*g", p, v) <= 16) break;
  return buf;
}

inline void put(DcmDataset& ds, const DcmTagKey& key, const std::string& value, const std::string& path) {
  const OFCondition c = ds.putAndInsertString(key, value.c_str());
  MAMMOCL_CHECK(c.good(), io_error, "write_dicom: ", path, ": cannot set ", tag_name(key), " to '", value,
                "' (DCMTK: ", c.text(), ")");
}

}  // namespace detail::dicom

/// Reads a DICOM image held in memory; `name` stands for the file in error messages and becomes
/// `meta.source`. Same behaviour as the path overload (which calls this one), so a fuzz harness can
/// drive it directly. Throws io_error for malformed, truncated, non-DICOM or unsupported input.
inline image read_dicom(std::span<const std::uint8_t> bytes, std::string_view name,
                        const dicom_read_options& opts = {}) {
  const std::string n(name);
  auto ff = detail::dicom::parse(bytes, n);
  return detail::dicom::decode(*ff, n, opts, bytes.size());
}

/// Reads one frame (`opts.frame`, default the first) of a DICOM file into an image: stored values masked
/// to Bits Stored, sign-extended if signed, rescaled, MONOCHROME1 mirrored. See docs/data-dicom.md.
inline image read_dicom(const std::filesystem::path& path, const dicom_read_options& opts = {}) {
  const auto bytes = detail::dicom::read_bytes(path);
  return read_dicom(std::span<const std::uint8_t>(bytes), path.string(), opts);
}

/// Reads only the header of a DICOM file (parsing stops at Pixel Data; nothing is decoded) and returns
/// the metadata `read_dicom` would attach. The pixel module is validated the same way.
inline image_metadata read_dicom_header(const std::filesystem::path& path) {
  namespace dd = detail::dicom;
  const std::string n = path.string();
  std::ifstream f(path, std::ios::binary);
  MAMMOCL_CHECK(f.good(), io_error, "read_dicom: cannot open ", n);
  std::uint8_t head[132] = {};
  f.read(reinterpret_cast<char*>(head), sizeof head);
  const auto got = static_cast<std::size_t>(f.gcount());
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  dd::check_magic(std::span<const std::uint8_t>(head, got), ec ? got : static_cast<std::size_t>(size), n);
  f.close();
  DcmInputFileStream in(n.c_str());  // streamed: the pixel data is never read from disk
  MAMMOCL_CHECK(in.status().good(), io_error, "read_dicom: cannot open ", n, " (DCMTK: ", in.status().text(), ")");
  auto ff = dd::parse_stream(in, n, /*until_pixel_data=*/true);
  image_metadata meta;
  dd::read_header(*ff->getDataset(), n, meta);
  return meta;
}

/// Writes `img` as an explicit-little-endian DICOM file with new UIDs, atomically (temporary file in the
/// same directory, then rename). Header attributes come from `img.meta` (see dicom_write_options).
/// Pixels are mapped back to stored values: MONOCHROME1 mirrored back over the stored range, then
/// (value - intercept) / slope. Throws config_error for metadata or pixels that cannot be stored and
/// io_error when the file cannot be written.
inline void write_dicom(const std::filesystem::path& path, const image& img, const dicom_write_options& opts = {}) {
  namespace dd = detail::dicom;
  const std::string p = path.string();
  const image_metadata& m = img.meta;
  MAMMOCL_CHECK(!img.empty() && img.rows > 0 && img.cols > 0 && img.rows <= 65535 && img.cols <= 65535 &&
                    img.pixels.size() == static_cast<std::size_t>(img.rows * img.cols),
                config_error, "write_dicom: ", p, ": image is ", img.rows, " x ", img.cols, " with ",
                img.pixels.size(), " pixels; expected 1..65535 rows and columns and rows x cols pixels");
  MAMMOCL_CHECK(m.bits_stored >= 8 && m.bits_stored <= 16, config_error, "write_dicom: ", p,
                ": meta.bits_stored is ", m.bits_stored, "; expected 8..16");
  MAMMOCL_CHECK(m.photometric == "MONOCHROME1" || m.photometric == "MONOCHROME2", config_error, "write_dicom: ",
                p, ": meta.photometric is '", m.photometric, "'; expected MONOCHROME1 or MONOCHROME2");
  MAMMOCL_CHECK(std::isfinite(m.rescale_slope) && m.rescale_slope != 0.0 && std::isfinite(m.rescale_intercept),
                config_error, "write_dicom: ", p, ": rescale slope ", m.rescale_slope, " / intercept ",
                m.rescale_intercept, "; expected a finite non-zero slope and a finite intercept");
  MAMMOCL_CHECK(m.window_center.has_value() == m.window_width.has_value(), config_error, "write_dicom: ", p,
                ": window centre and width must be given together");
  MAMMOCL_CHECK(!m.window_width || *m.window_width >= 1.0, config_error, "write_dicom: ", p,
                ": window width ", m.window_width.value_or(0.0), "; expected >= 1 (PS3.3 C.11.2.1.2)");

  const int bits_allocated = m.bits_stored <= 8 ? 8 : 16;
  double lo = 0, hi = 0;
  dd::stored_range(m.bits_stored, m.is_signed, m.rescale_slope, m.rescale_intercept, lo, hi);
  const bool invert = m.photometric == "MONOCHROME1";
  const double smin = m.is_signed ? -std::ldexp(1.0, m.bits_stored - 1) : 0.0;
  const double smax = m.is_signed ? std::ldexp(1.0, m.bits_stored - 1) - 1.0 : std::ldexp(1.0, m.bits_stored) - 1.0;

  const std::size_t n = img.pixels.size();
  std::vector<Uint16> words;
  std::vector<Uint8> bytes;
  if (bits_allocated == 8) bytes.resize(n); else words.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double y = img.pixels[i];
    const double mval = invert ? (lo + hi) - y : y;
    const double s = (mval - m.rescale_intercept) / m.rescale_slope;
    const double r = std::nearbyint(s);
    MAMMOCL_CHECK(std::isfinite(s) && (opts.round_to_nearest || std::fabs(s - r) <= 1e-3), config_error,
                  "write_dicom: ", p, ": pixel ", i / static_cast<std::size_t>(img.cols), ",",
                  i % static_cast<std::size_t>(img.cols), " value ", y, " maps to stored value ", s,
                  ", which is not an integer; set round_to_nearest to quantise");
    MAMMOCL_CHECK(r >= smin && r <= smax, config_error, "write_dicom: ", p, ": pixel ",
                  i / static_cast<std::size_t>(img.cols), ",", i % static_cast<std::size_t>(img.cols), " value ",
                  y, " maps to stored value ", r, "; expected ", smin, "..", smax, " for ", m.bits_stored,
                  m.is_signed ? "-bit signed" : "-bit unsigned", " storage");
    const long v = static_cast<long>(r);
    if (bits_allocated == 8)
      bytes[i] = static_cast<Uint8>(static_cast<std::uint8_t>(v & 0xff));
    else
      words[i] = static_cast<Uint16>(static_cast<std::uint16_t>(v & 0xffff));  // two's complement, sign-extended
  }

  DcmFileFormat ff;
  DcmDataset& ds = *ff.getDataset();
  char uid[100];
  const bool mg = !m.presentation_intent.empty();
  const char* sop_class = !mg ? UID_SecondaryCaptureImageStorage
                          : m.presentation_intent == "FOR PROCESSING"
                              ? UID_DigitalMammographyXRayImageStorageForProcessing
                              : UID_DigitalMammographyXRayImageStorageForPresentation;
  dd::put(ds, DCM_SOPClassUID, sop_class, p);
  dd::put(ds, DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT), p);
  dd::put(ds, DCM_StudyInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_STUDY_UID_ROOT), p);
  dd::put(ds, DCM_SeriesInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT), p);
  dd::put(ds, DCM_Modality, opts.modality, p);
  if (!mg) dd::put(ds, DCM_ConversionType, "WSD", p);  // Secondary Capture: workstation
  dd::put(ds, DCM_PatientName, "", p);
  dd::put(ds, DCM_PatientID, m.patient_id, p);
  dd::put(ds, DCM_StudyID, "", p);
  dd::put(ds, DCM_SeriesNumber, "1", p);
  dd::put(ds, DCM_InstanceNumber, "1", p);
  dd::put(ds, DCM_ImageType, "DERIVED\\PRIMARY", p);
  if (!opts.series_description.empty()) dd::put(ds, DCM_SeriesDescription, opts.series_description, p);
  if (mg) dd::put(ds, DCM_PresentationIntentType, m.presentation_intent, p);
  if (!m.laterality.empty()) dd::put(ds, DCM_ImageLaterality, m.laterality, p);
  if (!m.view.empty()) dd::put(ds, DCM_ViewPosition, m.view, p);
  if (m.pixel_spacing_mm_row && m.pixel_spacing_mm_col)
    dd::put(ds, DCM_PixelSpacing, dd::ds_string(*m.pixel_spacing_mm_row) + "\\" + dd::ds_string(*m.pixel_spacing_mm_col), p);
  if (m.imager_spacing_mm_row && m.imager_spacing_mm_col)
    dd::put(ds, DCM_ImagerPixelSpacing,
            dd::ds_string(*m.imager_spacing_mm_row) + "\\" + dd::ds_string(*m.imager_spacing_mm_col), p);
  dd::put(ds, DCM_SamplesPerPixel, "1", p);
  dd::put(ds, DCM_PhotometricInterpretation, m.photometric, p);
  dd::put(ds, DCM_Rows, std::to_string(img.rows), p);
  dd::put(ds, DCM_Columns, std::to_string(img.cols), p);
  dd::put(ds, DCM_BitsAllocated, std::to_string(bits_allocated), p);
  dd::put(ds, DCM_BitsStored, std::to_string(m.bits_stored), p);
  dd::put(ds, DCM_HighBit, std::to_string(m.bits_stored - 1), p);
  dd::put(ds, DCM_PixelRepresentation, m.is_signed ? "1" : "0", p);
  dd::put(ds, DCM_RescaleIntercept, dd::ds_string(m.rescale_intercept), p);
  dd::put(ds, DCM_RescaleSlope, dd::ds_string(m.rescale_slope), p);
  dd::put(ds, DCM_RescaleType, "US", p);  // unspecified units
  if (m.window_center) {
    // The metadata window follows the (mirrored) pixels; the file's window follows the stored values.
    const double c = invert ? (lo + hi) - *m.window_center : *m.window_center;
    dd::put(ds, DCM_WindowCenter, dd::ds_string(c), p);
    dd::put(ds, DCM_WindowWidth, dd::ds_string(*m.window_width), p);
  }
  if (!m.voi_lut_function.empty()) dd::put(ds, DCM_VOILUTFunction, m.voi_lut_function, p);
  const OFCondition pc = bits_allocated == 8
                             ? ds.putAndInsertUint8Array(DCM_PixelData, bytes.data(), static_cast<unsigned long>(n))
                             : ds.putAndInsertUint16Array(DCM_PixelData, words.data(), static_cast<unsigned long>(n));
  MAMMOCL_CHECK(pc.good(), io_error, "write_dicom: ", p, ": cannot set Pixel Data (7FE0,0010) (DCMTK: ",
                pc.text(), ")");

  static std::atomic<unsigned> counter{0};
  const std::filesystem::path tmp =
      path.parent_path() / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                            std::to_string(counter++));
  const OFCondition sc = ff.saveFile(tmp.string().c_str(), EXS_LittleEndianExplicit);
  std::error_code ec;
  if (sc.bad()) {
    std::filesystem::remove(tmp, ec);
    MAMMOCL_THROW(io_error, "write_dicom: cannot write ", p, " (via ", tmp.string(), "; DCMTK: ", sc.text(), ")");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ec2;
    std::filesystem::remove(tmp, ec2);
    MAMMOCL_THROW(io_error, "write_dicom: cannot rename ", tmp.string(), " to ", p, ": ", ec.message());
  }
}

}  // namespace mammocl::data
