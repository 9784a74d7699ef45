// DICOM reader and writer (include/mammocl/data/dicom.hpp) on the real files of ../shared/data/dicom and on
// files the tests write themselves around real pixels. Expected header values were read with DCMTK's
// `dcmdump` (3.6.7) from the files; the Clunie pixel counts were counted by a separate Python script over
// the raw Pixel Data bytes; the MG1 pixels are cross-checked against DCMTK's dcmimgle (DicomImage's
// modality-transformed "inter" data, an independent extraction path).
#include <boost/test/unit_test.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmimgle/dipixel.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "mammocl/data/dicom.hpp"
#include "shared_data.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace mammocl;
using mammocl::test::expect_error;

namespace {

std::optional<fs::path> dicom_file(const std::string& name) {
  auto root = test::shared_data("dicom/" + name);
  if (!root) return std::nullopt;
  return *root / "dicom" / name;
}

/// MG1 decoded once for the whole executable (0.3 s); null when the data folder is absent.
const data::image* mg1() {
  static const std::optional<data::image> img = []() -> std::optional<data::image> {
    auto p = dicom_file("wg04_MG1_JPLY.dcm");
    if (!p) return std::nullopt;
    return data::read_dicom(*p);
  }();
  return img ? &*img : nullptr;
}

/// A block of real pixels (with the source metadata) for the written-file tests.
data::image crop(const data::image& src, std::int64_t r0, std::int64_t c0, std::int64_t h, std::int64_t w) {
  data::image out(h, w);
  out.meta = src.meta;
  for (std::int64_t r = 0; r < h; ++r)
    for (std::int64_t c = 0; c < w; ++c) out(r, c) = src(r0 + r, c0 + c);
  return out;
}

/// Reports the number of differing pixels and the first one (BOOST_TEST on 14 M floats would print all).
void expect_same_pixels(const data::image& a, const data::image& b, const std::string& what) {
  BOOST_TEST_REQUIRE(a.rows == b.rows, what);
  BOOST_TEST_REQUIRE(a.cols == b.cols, what);
  std::size_t diff = 0, first = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a.pixels[i] != b.pixels[i] && diff++ == 0) first = i;
  BOOST_TEST(diff == 0u, what << ": " << diff << " pixels differ, first at " << first << ": " << a.pixels[first]
                              << " vs " << b.pixels[first]);
}

std::unique_ptr<DcmFileFormat> load(const fs::path& p) {
  auto ff = std::make_unique<DcmFileFormat>();
  BOOST_TEST_REQUIRE(ff->loadFile(p.string().c_str()).good(), "DCMTK cannot load " << p);
  return ff;
}

/// Loads a file, lets `edit` change its data set and saves it (explicit LE unless told otherwise).
void edit(const fs::path& in, const fs::path& out, const std::function<void(DcmDataset&)>& fn,
          E_TransferSyntax xfer = EXS_LittleEndianExplicit) {
  auto ff = load(in);
  fn(*ff->getDataset());
  BOOST_TEST_REQUIRE(ff->saveFile(out.string().c_str(), xfer).good(), "DCMTK cannot save " << out);
}

/// Re-encodes a file with one of DCMTK's encoders (registered by the caller).
void transcode(const fs::path& in, const fs::path& out, E_TransferSyntax xfer, const DcmRepresentationParameter* rp) {
  auto ff = load(in);
  DcmDataset* ds = ff->getDataset();
  BOOST_TEST_REQUIRE(ds->chooseRepresentation(xfer, rp).good(), "cannot encode as " << DcmXfer(xfer).getXferName());
  BOOST_TEST_REQUIRE(ds->canWriteXfer(xfer));
  BOOST_TEST_REQUIRE(ff->saveFile(out.string().c_str(), xfer).good());
}

/// The stored 16-bit words of an uncompressed file, read straight through DCMTK.
std::vector<Uint16> stored_words(const fs::path& p) {
  auto ff = load(p);
  const Uint16* w = nullptr;
  unsigned long n = 0;
  BOOST_TEST_REQUIRE(ff->getDataset()->findAndGetUint16Array(DCM_PixelData, w, &n).good());
  return {w, w + n};
}

std::string get(const fs::path& p, const DcmTagKey& key) {
  auto ff = load(p);
  OFString v;
  ff->getDataset()->findAndGetOFStringArray(key, v);
  return v.c_str();
}

std::string meta_xfer(const fs::path& p) {
  auto ff = load(p);
  OFString v;
  ff->getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, v);
  return v.c_str();
}

std::vector<std::uint8_t> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::uint8_t* d, std::size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(d), static_cast<std::streamsize>(n));
}

/// Rewrites (0002,0000) of a Part 10 file to the byte count of the (0002,xxxx) elements that follow it.
/// saveFile(..., EWM_dontUpdateMeta) keeps the old group length after a meta element changed size, and
/// read_dicom refuses a group length that disagrees with its elements (DCMTK would read past or stop short).
void fix_meta_group_length(const fs::path& p) {
  auto b = file_bytes(p);
  BOOST_TEST_REQUIRE(b.size() >= 144);
  std::size_t q = 144;
  while (q + 8 <= b.size() && b[q] == 0x02 && b[q + 1] == 0x00) {
    const std::string vr{static_cast<char>(b[q + 4]), static_cast<char>(b[q + 5])};
    const bool ext = DcmVR(vr.c_str()).usesExtendedLengthEncoding();
    const std::size_t len = ext ? (b[q + 8] | (b[q + 9] << 8) | (b[q + 10] << 16) | (static_cast<std::size_t>(b[q + 11]) << 24))
                                : (b[q + 6] | (b[q + 7] << 8));
    q += (ext ? 12 : 8) + len;
  }
  const auto glen = static_cast<std::uint32_t>(q - 144);
  for (int i = 0; i < 4; ++i) b[140 + i] = static_cast<std::uint8_t>(glen >> (8 * i));
  write_bytes(p, b.data(), b.size());
}

/// Little-endian bytes of a 16/32-bit value, for hand-written DICOM streams.
void le(std::vector<std::uint8_t>& out, std::uint32_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

/// One explicit VR little endian element with a short (2-byte length) VR.
std::vector<std::uint8_t> el(std::uint16_t g, std::uint16_t e, const char* vr, const std::string& value) {
  std::vector<std::uint8_t> out;
  le(out, g, 2);
  le(out, e, 2);
  out.push_back(static_cast<std::uint8_t>(vr[0]));
  out.push_back(static_cast<std::uint8_t>(vr[1]));
  le(out, static_cast<std::uint32_t>(value.size()), 2);
  out.insert(out.end(), value.begin(), value.end());
  return out;
}

/// A Part 10 stream: 128-byte preamble, "DICM", (0002,0000) = `glen` (or the size of `meta` when
/// negative), then `meta` and `body`.
std::vector<std::uint8_t> part10(const std::vector<std::vector<std::uint8_t>>& meta, const std::vector<std::uint8_t>& body,
                                 long glen = -1) {
  std::vector<std::uint8_t> out(128, 0);
  for (char c : {'D', 'I', 'C', 'M'}) out.push_back(static_cast<std::uint8_t>(c));
  std::vector<std::uint8_t> m;
  for (const auto& e : meta) m.insert(m.end(), e.begin(), e.end());
  const auto gl = el(0x0002, 0x0000, "UL", std::string(4, '\0'));
  out.insert(out.end(), gl.begin(), gl.end());
  const auto v = static_cast<std::uint32_t>(glen < 0 ? static_cast<long>(m.size()) : glen);
  for (int i = 0; i < 4; ++i) out[140 + i] = static_cast<std::uint8_t>(v >> (8 * i));
  out.insert(out.end(), m.begin(), m.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

/// A reproducer of the fuzz harness (tests/fuzz/regressions/dicom/), read from the source tree.
std::vector<std::uint8_t> regression(const std::string& file) {
  const fs::path p = fs::path(MAMMOCL_SOURCE_DIR) / "tests" / "fuzz" / "regressions" / "dicom" / file;
  auto b = file_bytes(p);
  BOOST_TEST_REQUIRE(!b.empty(), "cannot read " << p.string());
  return b;
}

/// Encoders for the round trips, registered once (the library registers only decoders).
void register_encoders() {
  static const bool once = [] {
    DcmRLEEncoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    return true;
  }();
  (void)once;
}

void expect_same_meta(const data::image_metadata& a, const data::image_metadata& b) {
  BOOST_TEST(a.patient_id == b.patient_id);
  BOOST_TEST(a.laterality == b.laterality);
  BOOST_TEST(a.view == b.view);
  BOOST_TEST(a.presentation_intent == b.presentation_intent);
  BOOST_TEST(a.photometric == b.photometric);
  BOOST_TEST(a.bits_stored == b.bits_stored);
  BOOST_TEST(a.is_signed == b.is_signed);
  BOOST_TEST(a.min_value == b.min_value);
  BOOST_TEST(a.max_value == b.max_value);
  BOOST_TEST(a.rescale_slope == b.rescale_slope);
  BOOST_TEST(a.rescale_intercept == b.rescale_intercept);
  BOOST_TEST((a.window_center == b.window_center));
  BOOST_TEST((a.window_width == b.window_width));
  BOOST_TEST(a.voi_lut_function == b.voi_lut_function);
  BOOST_TEST((a.pixel_spacing_mm_row == b.pixel_spacing_mm_row));
  BOOST_TEST((a.pixel_spacing_mm_col == b.pixel_spacing_mm_col));
  BOOST_TEST((a.imager_spacing_mm_row == b.imager_spacing_mm_row));
  BOOST_TEST((a.imager_spacing_mm_col == b.imager_spacing_mm_col));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(dicom)

// ---------------------------------------------------------------------------------------------- MG1 JPEG
BOOST_AUTO_TEST_CASE(mg1_jpeg_extended_header_and_histogram) {
  const data::image* img = mg1();
  if (!img) return;
  BOOST_TEST(img->rows == 4664);
  BOOST_TEST(img->cols == 3064);
  const auto& m = img->meta;
  BOOST_TEST(m.bits_stored == 12);
  BOOST_TEST(!m.is_signed);
  BOOST_TEST(m.photometric == "MONOCHROME2");
  BOOST_TEST(m.min_value == 0.0);
  BOOST_TEST(m.max_value == 4095.0);
  BOOST_TEST(m.window_center.value_or(-1) == 2047.0);  // dcmdump: (0028,1050) DS [2047]
  BOOST_TEST(m.window_width.value_or(-1) == 4095.0);   // dcmdump: (0028,1051) DS [4095]
  BOOST_TEST(m.voi_lut_function == "");
  BOOST_TEST(m.patient_id == "3MG1");
  BOOST_TEST(m.laterality == "L");  // (0020,0060) Laterality; no Image Laterality in this file
  BOOST_TEST(m.view == "MLO");      // (0018,5101)
  BOOST_TEST(m.presentation_intent == "");
  BOOST_TEST(m.rescale_slope == 1.0);
  BOOST_TEST(m.rescale_intercept == 0.0);
  BOOST_TEST(!m.pixel_spacing_mm_row.has_value());
  BOOST_TEST(m.source.find("wg04_MG1_JPLY.dcm") != std::string::npos);

  // Histogram of a 12-bit film scan: every value an integer in [0, 4095] with both ends reached, most
  // of the 4096 levels used (real 12-bit content, not 8-bit data shifted), a large film-background mode
  // in [512, 1024) and a tissue population above 2048. Bounds bracket the measured 0.378 / 0.429 /
  // 1610.9 / 3639 (docs/data-dicom.md) loosely enough for another conforming JPEG decoder.
  std::vector<std::uint8_t> seen(4096, 0);
  std::size_t outside = 0, background = 0, tissue = 0;
  double sum = 0;
  float lo = 1e9f, hi = -1e9f;
  for (float v : img->pixels) {
    if (!(v >= 0.0f && v <= 4095.0f) || v != std::floor(v)) { ++outside; continue; }
    seen[static_cast<std::size_t>(v)] = 1;
    background += v >= 512.0f && v < 1024.0f;
    tissue += v >= 2048.0f;
    sum += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const double n = static_cast<double>(img->size());
  BOOST_TEST(outside == 0u);
  BOOST_TEST(lo == 0.0f);
  BOOST_TEST(hi == 4095.0f);
  std::size_t distinct = 0;
  for (auto s : seen) distinct += s;
  BOOST_TEST(distinct >= 3000u);
  BOOST_TEST(background / n > 0.30);
  BOOST_TEST(background / n < 0.45);
  BOOST_TEST(tissue / n > 0.35);
  BOOST_TEST(tissue / n < 0.50);
  BOOST_TEST(sum / n > 1500.0);
  BOOST_TEST(sum / n < 1720.0);
}

BOOST_AUTO_TEST_CASE(mg1_matches_dcmimgle_modality_values) {
  const data::image* img = mg1();
  if (!img) return;
  auto p = dicom_file("wg04_MG1_JPLY.dcm");
  DicomImage di(p->string().c_str());  // codecs are registered by the read_dicom above
  BOOST_TEST_REQUIRE(di.getStatus() == EIS_Normal, DicomImage::getString(di.getStatus()));
  const DiPixel* inter = di.getInterData();
  BOOST_TEST_REQUIRE(inter != nullptr);
  BOOST_TEST_REQUIRE(inter->getCount() == img->size());
  std::size_t diff = 0;
  const void* d = inter->getData();
  for (std::size_t i = 0; i < img->size(); ++i) {
    double v = 0;
    switch (inter->getRepresentation()) {
      case EPR_Uint8: v = static_cast<const Uint8*>(d)[i]; break;
      case EPR_Sint8: v = static_cast<const Sint8*>(d)[i]; break;
      case EPR_Uint16: v = static_cast<const Uint16*>(d)[i]; break;
      case EPR_Sint16: v = static_cast<const Sint16*>(d)[i]; break;
      case EPR_Uint32: v = static_cast<const Uint32*>(d)[i]; break;
      case EPR_Sint32: v = static_cast<const Sint32*>(d)[i]; break;
    }
    diff += v != img->pixels[i];
  }
  BOOST_TEST(diff == 0u);
}

BOOST_AUTO_TEST_CASE(mg1_header_only_matches_full_read) {
  const data::image* img = mg1();
  if (!img) return;
  const auto m = data::read_dicom_header(*dicom_file("wg04_MG1_JPLY.dcm"));
  expect_same_meta(m, img->meta);
  BOOST_TEST(m.source == img->meta.source);
}

BOOST_AUTO_TEST_CASE(mg1_memory_entry_point_matches_path) {
  const data::image* img = mg1();
  if (!img) return;
  const auto bytes = file_bytes(*dicom_file("wg04_MG1_JPLY.dcm"));
  const auto mem = data::read_dicom(std::span<const std::uint8_t>(bytes), "in-memory MG1");
  expect_same_pixels(mem, *img, "memory vs path");
  BOOST_TEST(mem.meta.source == "in-memory MG1");
}

BOOST_AUTO_TEST_CASE(mg1_round_trips_uncompressed_rle_and_jpeg_lossless) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-mg1");
  const auto plain = dir / "mg1.dcm";
  data::write_dicom(plain, *img);
  BOOST_TEST(dir.listing() == std::vector<std::string>{"mg1.dcm"});  // no temporary left behind
  BOOST_TEST(meta_xfer(plain) == UID_LittleEndianExplicitTransferSyntax);
  const auto back = data::read_dicom(plain);
  expect_same_pixels(back, *img, "uncompressed");
  expect_same_meta(back.meta, img->meta);

  register_encoders();
  const DcmRLERepresentationParameter rle;
  transcode(plain, dir / "rle.dcm", EXS_RLELossless, &rle);
  BOOST_TEST(meta_xfer(dir / "rle.dcm") == UID_RLELosslessTransferSyntax);
  expect_same_pixels(data::read_dicom(dir / "rle.dcm"), *img, "RLE");

  const DJ_RPLossless sv1(1, 0);  // first-order prediction: 1.2.840.10008.1.2.4.70
  transcode(plain, dir / "jpll.dcm", EXS_JPEGProcess14SV1, &sv1);
  BOOST_TEST(meta_xfer(dir / "jpll.dcm") == UID_JPEGProcess14SV1TransferSyntax);
  expect_same_pixels(data::read_dicom(dir / "jpll.dcm"), *img, "JPEG lossless SV1");
}

BOOST_AUTO_TEST_CASE(crop_round_trips_jpeg_lossless_57_and_jpeg_ls) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-57");
  const auto part = crop(*img, 2000, 1000, 700, 900);
  data::write_dicom(dir / "plain.dcm", part);
  register_encoders();
  const DJ_RPLossless p6(6, 0);  // predictor 6 through the general lossless process: .57
  transcode(dir / "plain.dcm", dir / "p14.dcm", EXS_JPEGProcess14, &p6);
  BOOST_TEST(meta_xfer(dir / "p14.dcm") == UID_JPEGProcess14TransferSyntax);
  expect_same_pixels(data::read_dicom(dir / "p14.dcm"), part, "JPEG lossless process 14, predictor 6");

  const DJLSRepresentationParameter ls(0, OFTrue);
  transcode(dir / "plain.dcm", dir / "jls.dcm", EXS_JPEGLSLossless, &ls);
  BOOST_TEST(meta_xfer(dir / "jls.dcm") == UID_JPEGLSLosslessTransferSyntax);
  expect_same_pixels(data::read_dicom(dir / "jls.dcm"), part, "JPEG-LS lossless");
}

BOOST_AUTO_TEST_CASE(jpeg_baseline_8bit_decodes_close_to_source) {
  auto p = dicom_file("clunie_MG_pixelspacing_test.dcm");
  if (!p) return;
  test::temp_dir dir("dicom-50");
  register_encoders();
  const DJ_RPLossy q95(95);
  transcode(*p, dir / "base.dcm", EXS_JPEGProcess1, &q95);
  BOOST_TEST(meta_xfer(dir / "base.dcm") == UID_JPEGProcess1TransferSyntax);
  const auto src = data::read_dicom(*p);
  const auto jpg = data::read_dicom(dir / "base.dcm");
  BOOST_TEST_REQUIRE(jpg.rows == 512);
  BOOST_TEST(jpg.meta.bits_stored == 8);
  // Lossy: a 0/255 ruler pattern keeps its mean within 2 grey levels, and thresholding at 128
  // recovers nearly every pixel (ringing next to edges is the only loss).
  double err = 0;
  std::size_t flipped = 0;
  for (std::size_t i = 0; i < src.size(); ++i) {
    err += jpg.pixels[i] - src.pixels[i];
    flipped += (jpg.pixels[i] >= 128.0f) != (src.pixels[i] >= 128.0f);
    BOOST_REQUIRE(jpg.pixels[i] >= 0.0f && jpg.pixels[i] <= 255.0f);
  }
  BOOST_TEST(std::fabs(err / static_cast<double>(src.size())) < 2.0);
  BOOST_TEST(flipped < src.size() / 200);
}

BOOST_AUTO_TEST_CASE(mg1_jpeg2000_is_unsupported) {
  auto p = dicom_file("wg04_MG1_J2KI.dcm");
  if (!p) return;
  expect_error<io_error>([&] { (void)data::read_dicom(*p); },
                         "unsupported transfer syntax 1.2.840.10008.1.2.4.91 (JPEG 2000");
  expect_error<io_error>([&] { (void)data::read_dicom(*p); }, "wg04_MG1_J2KI.dcm");
  // The header alone still reads: nothing is decoded.
  const auto m = data::read_dicom_header(*p);
  BOOST_TEST(m.bits_stored == 12);
  BOOST_TEST(m.laterality == "L");
}

BOOST_AUTO_TEST_CASE(transfer_syntax_unknown_to_dcmtk_is_unsupported) {
  auto p = dicom_file("clunie_MG_pixelspacing_test.dcm");
  if (!p) return;
  test::temp_dir dir("dicom-htj2k");
  // The meta header claims HTJ2K (1.2.840.10008.1.2.4.201, newer than DCMTK 3.6.7) over an explicit LE body.
  auto ff = load(*p);
  ff->getMetaInfo()->putAndInsertString(DCM_TransferSyntaxUID, "1.2.840.10008.1.2.4.201");
  BOOST_TEST_REQUIRE(ff->saveFile((dir / "htj2k.dcm").string().c_str(), EXS_LittleEndianExplicit, EET_UndefinedLength,
                                  EGL_recalcGL, EPD_noChange, 0, 0, EWM_dontUpdateMeta)
                         .good());
  BOOST_TEST_REQUIRE(meta_xfer(dir / "htj2k.dcm") == "1.2.840.10008.1.2.4.201");
  // DCMTK kept the old group length (196) although the UID grew by 6 bytes: refused as such.
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "htj2k.dcm"); },
                         "htj2k.dcm: non-canonical file meta information at byte 328: element (0002,0016) of 8 bytes "
                         "runs past the end of the group at byte 340 (File Meta Information Group Length (0002,0000) "
                         "is 196); expected the group length to cover every (0002,xxxx) element");
  fix_meta_group_length(dir / "htj2k.dcm");
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "htj2k.dcm"); },
                         "htj2k.dcm: unsupported transfer syntax 1.2.840.10008.1.2.4.201 (unknown to DCMTK) in (0002,0010)");
}

BOOST_AUTO_TEST_CASE(concurrent_reads_agree) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-threads");
  const auto part = crop(*img, 1800, 900, 300, 300);
  data::write_dicom(dir / "plain.dcm", part);
  register_encoders();
  const DcmRLERepresentationParameter rle;
  transcode(dir / "plain.dcm", dir / "rle.dcm", EXS_RLELossless, &rle);
  std::vector<std::size_t> bad(4, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 10; ++k) {
        const auto a = data::read_dicom(dir / (t % 2 ? "rle.dcm" : "plain.dcm"));
        bad[t] += a.pixels != part.pixels;
      }
    });
  for (auto& th : threads) th.join();
  for (std::size_t t = 0; t < 4; ++t) BOOST_TEST(bad[t] == 0u, "thread " << t);
}

// ------------------------------------------------------------------------------------------- Clunie MG
BOOST_AUTO_TEST_CASE(clunie_pixel_spacing_object) {
  auto p = dicom_file("clunie_MG_pixelspacing_test.dcm");
  if (!p) return;
  const auto img = data::read_dicom(*p);
  BOOST_TEST(img.rows == 512);
  BOOST_TEST(img.cols == 512);
  const auto& m = img.meta;
  // dcmdump 3.6.7 of the file:
  BOOST_TEST(m.bits_stored == 8);  // (0028,0100/0101/0102) 8/8/7, (0028,0103) 0
  BOOST_TEST(!m.is_signed);
  BOOST_TEST(m.photometric == "MONOCHROME2");
  BOOST_TEST(m.pixel_spacing_mm_row.value_or(0) == 0.25);  // (0028,0030) [0.25\0.25]
  BOOST_TEST(m.pixel_spacing_mm_col.value_or(0) == 0.25);
  BOOST_TEST(m.imager_spacing_mm_row.value_or(0) == 0.5);  // (0018,1164) [0.5\0.5]
  BOOST_TEST(m.imager_spacing_mm_col.value_or(0) == 0.5);
  BOOST_TEST(m.window_center.value_or(0) == 127.5);  // (0028,1050)
  BOOST_TEST(m.window_width.value_or(0) == 256.0);   // (0028,1051)
  BOOST_TEST(m.presentation_intent == "FOR PRESENTATION");  // (0008,0068)
  BOOST_TEST(m.laterality == "R");                           // (0020,0062) Image Laterality
  BOOST_TEST(m.view == "CC");  // no (0018,5101); View Code Sequence (0054,0220) says "cranio-caudal"
  BOOST_TEST(m.patient_id == "62354PQGRRST");  // (0010,0020)
  BOOST_TEST(m.rescale_slope == 1.0);          // (0028,1053) [1.0], (0028,1052) [0.0]
  BOOST_TEST(m.rescale_intercept == 0.0);
  BOOST_TEST(m.voi_lut_function == "");
  BOOST_TEST(m.min_value == 0.0);
  BOOST_TEST(m.max_value == 255.0);
  // Ruler pattern: only 0 and 255, 248810 and 13334 pixels (counted in Python over the raw bytes);
  // the first white pixel is at row 10, column 23 and the last at row 504, column 369.
  std::size_t zeros = 0, whites = 0;
  for (float v : img.pixels) zeros += v == 0.0f, whites += v == 255.0f;
  BOOST_TEST(zeros == 248810u);
  BOOST_TEST(whites == 13334u);
  const auto it = std::find(img.pixels.begin(), img.pixels.end(), 255.0f);
  BOOST_TEST((it - img.pixels.begin()) == 10 * 512 + 23);
  const auto rit = std::find(img.pixels.rbegin(), img.pixels.rend(), 255.0f);
  BOOST_TEST((img.pixels.rend() - rit - 1) == 504 * 512 + 369);
  expect_same_meta(data::read_dicom_header(*p), m);
}

// ------------------------------------------------------------------------------------ written files
BOOST_AUTO_TEST_CASE(written_sigmoid_window_for_processing) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-sigmoid");
  auto part = crop(*img, 1500, 800, 300, 400);
  part.meta.voi_lut_function = "SIGMOID";
  part.meta.window_center = 1800.5;
  part.meta.window_width = 1234.25;
  part.meta.presentation_intent = "FOR PROCESSING";
  part.meta.patient_id = "P-0001";
  part.meta.laterality = "R";
  part.meta.view = "CC";
  part.meta.pixel_spacing_mm_row = 0.07;
  part.meta.pixel_spacing_mm_col = 0.085;
  part.meta.imager_spacing_mm_row = 0.1;
  part.meta.imager_spacing_mm_col = 0.1;
  const auto f = dir / "sigmoid.dcm";
  data::dicom_write_options wopts;
  wopts.series_description = "sigmoid domain";
  data::write_dicom(f, part, wopts);
  BOOST_TEST(get(f, DCM_VOILUTFunction) == "SIGMOID");
  BOOST_TEST(get(f, DCM_WindowCenter) == "1800.5");
  BOOST_TEST(get(f, DCM_WindowWidth) == "1234.25");
  BOOST_TEST(get(f, DCM_SOPClassUID) == UID_DigitalMammographyXRayImageStorageForProcessing);
  BOOST_TEST(get(f, DCM_PixelSpacing) == "0.07\\0.085");
  BOOST_TEST(get(f, DCM_SeriesDescription) == "sigmoid domain");
  BOOST_TEST(get(f, DCM_BitsAllocated) == "16");
  BOOST_TEST(get(f, DCM_HighBit) == "11");
  const auto back = data::read_dicom(f);
  expect_same_pixels(back, part, "SIGMOID file");
  expect_same_meta(back.meta, part.meta);
  // Two writes get different instance UIDs.
  data::write_dicom(dir / "again.dcm", part);
  BOOST_TEST(get(f, DCM_SOPInstanceUID) != get(dir / "again.dcm", DCM_SOPInstanceUID));
  BOOST_TEST(get(f, DCM_SOPInstanceUID).size() > 10u);
}

BOOST_AUTO_TEST_CASE(written_monochrome1_inversion_is_exact) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-mono1");
  auto part = crop(*img, 2200, 1200, 256, 256);
  part.meta.photometric = "MONOCHROME1";
  part.meta.window_center = 1000.0;  // in the (brighter-is-larger) pixel convention
  part.meta.window_width = 2000.0;
  const auto f = dir / "m1.dcm";
  data::write_dicom(f, part);
  // Stored = 4095 - value exactly, and the file's window centre is mirrored the same way.
  const auto words = stored_words(f);
  BOOST_TEST_REQUIRE(words.size() == part.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < words.size(); ++i) bad += words[i] != 4095 - static_cast<int>(part.pixels[i]);
  BOOST_TEST(bad == 0u);
  BOOST_TEST(get(f, DCM_PhotometricInterpretation) == "MONOCHROME1");
  BOOST_TEST(get(f, DCM_WindowCenter) == "3095");
  const auto back = data::read_dicom(f);
  expect_same_pixels(back, part, "MONOCHROME1");
  BOOST_TEST(back.meta.photometric == "MONOCHROME1");
  BOOST_TEST(back.meta.window_center.value_or(0) == 1000.0);
  BOOST_TEST(back.meta.min_value == 0.0);
  BOOST_TEST(back.meta.max_value == 4095.0);
}

BOOST_AUTO_TEST_CASE(written_16bit_unsigned) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-u16");
  auto part = crop(*img, 1000, 1000, 200, 300);
  for (auto& v : part.pixels) v = v * 16.0f + 15.0f;  // 12-bit content spread over 0..65535
  part.pixels[0] = 65535.0f;
  part.pixels[1] = 0.0f;
  part.meta.bits_stored = 16;
  part.meta.window_center = 32768.0;
  part.meta.window_width = 65536.0;
  const auto f = dir / "u16.dcm";
  data::write_dicom(f, part);
  const auto words = stored_words(f);
  BOOST_TEST(words[0] == 65535);
  BOOST_TEST(words[1] == 0);
  BOOST_TEST(words[2] == static_cast<Uint16>(part.pixels[2]));
  const auto back = data::read_dicom(f);
  expect_same_pixels(back, part, "16-bit unsigned");
  BOOST_TEST(back.meta.bits_stored == 16);
  BOOST_TEST(back.meta.max_value == 65535.0);
}

BOOST_AUTO_TEST_CASE(written_signed_12_and_16_bit_with_negative_values) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-signed");
  auto s12 = crop(*img, 3000, 1500, 200, 200);
  for (auto& v : s12.pixels) v -= 2048.0f;  // [-2048, 2047]
  s12.pixels[0] = -2048.0f;
  s12.pixels[1] = 2047.0f;
  s12.pixels[2] = -1.0f;
  s12.meta.is_signed = true;
  data::write_dicom(dir / "s12.dcm", s12);
  const auto w12 = stored_words(dir / "s12.dcm");
  BOOST_TEST(w12[0] == 0xF800);  // -2048, two's complement sign-extended to 16 bits
  BOOST_TEST(w12[1] == 0x07FF);
  BOOST_TEST(w12[2] == 0xFFFF);
  BOOST_TEST(get(dir / "s12.dcm", DCM_PixelRepresentation) == "1");
  const auto b12 = data::read_dicom(dir / "s12.dcm");
  expect_same_pixels(b12, s12, "signed 12-bit");
  BOOST_TEST(b12.meta.is_signed);
  BOOST_TEST(b12.meta.min_value == -2048.0);
  BOOST_TEST(b12.meta.max_value == 2047.0);

  auto s16 = crop(*img, 3000, 1500, 200, 200);
  for (auto& v : s16.pixels) v = v * 16.0f - 32768.0f;
  s16.pixels[0] = -32768.0f;
  s16.pixels[1] = 32767.0f;
  s16.meta.is_signed = true;
  s16.meta.bits_stored = 16;
  data::write_dicom(dir / "s16.dcm", s16);
  const auto w16 = stored_words(dir / "s16.dcm");
  BOOST_TEST(w16[0] == 0x8000);
  BOOST_TEST(w16[1] == 0x7FFF);
  const auto b16 = data::read_dicom(dir / "s16.dcm");
  expect_same_pixels(b16, s16, "signed 16-bit");
  BOOST_TEST(b16.meta.min_value == -32768.0);
  BOOST_TEST(b16.meta.max_value == 32767.0);
}

BOOST_AUTO_TEST_CASE(written_rescale_slope_2_intercept_minus_100) {
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-rescale");
  const auto stored = crop(*img, 2500, 500, 150, 250);
  auto part = stored;
  for (auto& v : part.pixels) v = 2.0f * v - 100.0f;
  part.meta.rescale_slope = 2.0;
  part.meta.rescale_intercept = -100.0;
  data::write_dicom(dir / "r.dcm", part);
  BOOST_TEST(get(dir / "r.dcm", DCM_RescaleSlope) == "2");
  BOOST_TEST(get(dir / "r.dcm", DCM_RescaleIntercept) == "-100");
  const auto words = stored_words(dir / "r.dcm");
  std::size_t bad = 0;
  for (std::size_t i = 0; i < words.size(); ++i) bad += words[i] != static_cast<Uint16>(stored.pixels[i]);
  BOOST_TEST(bad == 0u);
  const auto back = data::read_dicom(dir / "r.dcm");
  expect_same_pixels(back, part, "rescaled");
  BOOST_TEST(back.meta.min_value == -100.0);
  BOOST_TEST(back.meta.max_value == 2.0 * 4095 - 100);
  expect_same_meta(back.meta, [&] { auto m = part.meta; m.min_value = -100; m.max_value = 8090; return m; }());
}

BOOST_AUTO_TEST_CASE(reader_masks_high_bits_shifts_and_reads_every_byte_order) {
  // Hand-made stored words (no writer involved): 12 bits stored at high bit 13 (so shifted left by 2),
  // signed, with junk in the two top bits and the two bottom bits that the reader must ignore.
  auto p = dicom_file("clunie_MG_pixelspacing_test.dcm");
  if (!p) return;
  test::temp_dir dir("dicom-bits");
  const std::vector<Uint16> words = {
      static_cast<Uint16>((0x7FFu << 2) | 0xC003u),  // +2047 with junk
      static_cast<Uint16>(0x800u << 2),              // -2048
      static_cast<Uint16>((0xFFFu << 2) | 0x4001u),  // -1
      static_cast<Uint16>(5u << 2),                  // 5
  };
  const std::vector<float> expected = {2047.0f * 0.5f + 10.0f, -2048.0f * 0.5f + 10.0f, -1.0f * 0.5f + 10.0f,
                                       5.0f * 0.5f + 10.0f};
  auto fn = [&](DcmDataset& ds) {
    ds.putAndInsertUint16(DCM_Rows, 2);
    ds.putAndInsertUint16(DCM_Columns, 2);
    ds.putAndInsertUint16(DCM_BitsAllocated, 16);
    ds.putAndInsertUint16(DCM_BitsStored, 12);
    ds.putAndInsertUint16(DCM_HighBit, 13);
    ds.putAndInsertUint16(DCM_PixelRepresentation, 1);
    ds.putAndInsertString(DCM_RescaleSlope, "0.5");
    ds.putAndInsertString(DCM_RescaleIntercept, "10");
    ds.putAndInsertUint16Array(DCM_PixelData, words.data(), 4);
  };
  const std::pair<E_TransferSyntax, const char*> syntaxes[] = {
      {EXS_LittleEndianImplicit, UID_LittleEndianImplicitTransferSyntax},
      {EXS_LittleEndianExplicit, UID_LittleEndianExplicitTransferSyntax},
      {EXS_BigEndianExplicit, UID_BigEndianExplicitTransferSyntax}};
  for (const auto& [xfer, uid] : syntaxes) {
    const auto f = dir / (std::string("bits-") + uid + ".dcm");
    edit(*p, f, fn, xfer);
    BOOST_TEST(meta_xfer(f) == uid);
    const auto img = data::read_dicom(f);
    BOOST_TEST_REQUIRE(img.size() == 4u);
    for (std::size_t i = 0; i < 4; ++i) BOOST_TEST(img.pixels[i] == expected[i], uid << " pixel " << i);
    BOOST_TEST(img.meta.min_value == -2048 * 0.5 + 10);
    BOOST_TEST(img.meta.max_value == 2047 * 0.5 + 10);
  }
}

BOOST_AUTO_TEST_CASE(multi_frame_reads_the_chosen_frame) {
  auto p = dicom_file("clunie_MG_pixelspacing_test.dcm");
  if (!p) return;
  test::temp_dir dir("dicom-frames");
  const std::vector<Uint8> px = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // 3 frames of 2 x 2
  edit(*p, dir / "mf.dcm", [&](DcmDataset& ds) {
    ds.putAndInsertUint16(DCM_Rows, 2);
    ds.putAndInsertUint16(DCM_Columns, 2);
    ds.putAndInsertString(DCM_NumberOfFrames, "3");
    ds.putAndInsertUint8Array(DCM_PixelData, px.data(), 12);
  });
  BOOST_TEST((data::read_dicom(dir / "mf.dcm").pixels == std::vector<float>{1, 2, 3, 4}));
  BOOST_TEST((data::read_dicom(dir / "mf.dcm", {.frame = 2}).pixels == std::vector<float>{9, 10, 11, 12}));
  expect_error<config_error>([&] { (void)data::read_dicom(dir / "mf.dcm", {.frame = 3}); },
                             "frame 3 requested but Number of Frames (0028,0008) is 3");
}

// ------------------------------------------------------------------------------------------ bad input
BOOST_AUTO_TEST_CASE(truncated_files) {
  auto p = dicom_file("wg04_MG1_JPLY.dcm");
  if (!p) return;
  const auto bytes = file_bytes(*p);
  auto cut = [&](std::size_t n) { return std::span<const std::uint8_t>(bytes.data(), n); };
  // Within the preamble: not recognisable as DICOM at all.
  for (std::size_t n : {0ul, 100ul, 131ul})
    expect_error<io_error>([&] { (void)data::read_dicom(cut(n), "cut.dcm"); },
                           "cut.dcm: not a DICOM file (" + std::to_string(n) + " bytes): expected 'DICM' at byte 128");
  // Within the meta header, a sequence, the JPEG fragments and the last byte: the element (and item)
  // whose declared length runs past the end, found before DCMTK allocates anything.
  expect_error<io_error>([&] { (void)data::read_dicom(cut(140), "cut.dcm"); },
                         "cut.dcm: truncated or corrupt DICOM data in element (0002,0000) at byte 132: its length is 4 bytes but only 0 remain");
  expect_error<io_error>([&] { (void)data::read_dicom(cut(137), "cut.dcm"); },
                         "cut.dcm: truncated or corrupt DICOM data in the file meta information (0002,xxxx) at byte 132");
  expect_error<io_error>([&] { (void)data::read_dicom(cut(1000), "cut.dcm"); },
                         "cut.dcm: truncated or corrupt DICOM data in or after element (0008,9215)");
  for (std::size_t n : {2000ul, bytes.size() / 2})
    expect_error<io_error>([&] { (void)data::read_dicom(cut(n), "cut.dcm"); },
                           "cut.dcm: truncated or corrupt DICOM data in element (7FE0,0010), item (FFFE,E000) at byte ");
  expect_error<io_error>([&] { (void)data::read_dicom(cut(2000), "cut.dcm"); },
                         "at byte 1548: its length is 65536 bytes but only 444 remain");
  // Cut inside the final sequence delimiter: every length fits, DCMTK reports the missing end.
  expect_error<io_error>([&] { (void)data::read_dicom(cut(bytes.size() - 1), "cut.dcm"); },
                         "cut.dcm: truncated or corrupt DICOM data in or after element (7FE0,0010); expected complete "
                         "elements up to and including Pixel Data (7FE0,0010) (DCMTK: ");
  // The path entry point names the file the same way.
  test::temp_dir dir("dicom-cut");
  write_bytes(dir / "half.dcm", bytes.data(), bytes.size() / 2);
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "half.dcm"); },
                         (dir / "half.dcm").string() + ": truncated or corrupt DICOM data in element (7FE0,0010), item (FFFE,E000)");
  // The header alone stops before Pixel Data, so it still reads from the cut file.
  BOOST_TEST(data::read_dicom_header(dir / "half.dcm").bits_stored == 12);
  // An uncompressed file cut inside its pixel data.
  const data::image* img = mg1();
  if (!img) return;
  data::write_dicom(dir / "plain.dcm", crop(*img, 0, 0, 100, 100));
  const auto plain = file_bytes(dir / "plain.dcm");
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(plain.data(), plain.size() - 3), "p.dcm"); },
                         "p.dcm: truncated or corrupt DICOM data in element (7FE0,0010) at byte ");
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(plain.data(), plain.size() - 3), "p.dcm"); },
                         ": its length is 20000 bytes but only 19997 remain; expected a length within the file");
}

BOOST_AUTO_TEST_CASE(absurd_lengths_are_rejected_before_dcmtk_allocates) {
  // A raw data set whose first element (0008,0016), VR UN, declares 1 GiB in a 20-byte input: found by
  // the fuzz harness (DCMTK would allocate the value field before noticing the missing bytes).
  const std::vector<std::uint8_t> raw = {0x08, 0x00, 0x16, 0x00, 'U', 'N', 0, 0, 0x00, 0x00, 0x00, 0x40,
                                         0, 0, 0, 0, 0, 0, 0, 0};
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(raw), "raw.dcm"); },
                         "raw.dcm: truncated or corrupt DICOM data in element (0008,0016) at byte 0: its length is "
                         "1073741824 bytes but only 8 remain; expected a length within the file");
  // The same behind DCMTK's reading rules: a (FFFE,xxxx) tag that is not an item is an ordinary element
  // (non-standard upper-case VR 'ON': 4-byte length), and an undefined-length UN is a sequence read as
  // implicit little endian (CP-246) whose nested element declares 1 GiB.
  const std::vector<std::uint8_t> fffe = {0x08, 0x00, 0x16, 0x00, 'U', 'I', 2, 0, '1', 0,
                                          0xFE, 0xFF, 0x0D, 0x4D, 'O', 'N', 0, 0, 0, 0, 0, 0x40,
                                          0, 0, 0, 0, 0, 0, 0, 0};
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(fffe), "fffe.dcm"); },
                         "fffe.dcm: truncated or corrupt DICOM data in element (FFFE,4D0D) at byte 10: its length is "
                         "1073741824 bytes but only 8 remain");
  const std::vector<std::uint8_t> un = {0x08, 0x00, 0x16, 0x00, 'U',  'I',  2,    0,    '1',  0,
                                        0x09, 0x00, 0x10, 0x00, 'U',  'N',  0,    0,    0xFF, 0xFF, 0xFF, 0xFF,
                                        0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF,
                                        0x08, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x40, 0, 0, 0, 0};
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(un), "un.dcm"); },
                         "un.dcm: truncated or corrupt DICOM data in element (0008,0020) at byte 30: its length is "
                         "1073741824 bytes but only 4 remain");
  // Rows x Columns far beyond what the compressed input could hold.
  const data::image* img = mg1();
  if (!img) return;
  test::temp_dir dir("dicom-bomb");
  data::write_dicom(dir / "plain.dcm", crop(*img, 1800, 900, 300, 300));
  register_encoders();
  const DcmRLERepresentationParameter rle;
  transcode(dir / "plain.dcm", dir / "rle.dcm", EXS_RLELossless, &rle);
  data::dicom_read_options strict;
  strict.max_decompression_ratio = 1.0;  // the RLE file is smaller than its 180000 decoded bytes
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "rle.dcm", strict); },
                         "rle.dcm: 1 frame(s) of 300 x 300 (Rows (0028,0010), Columns (0028,0011), Number of Frames "
                         "(0028,0008)) would decode to 180000 bytes from a ");
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "rle.dcm", strict); },
                         "expected at most 1 times the input (dicom_read_options::max_decompression_ratio)");
}

BOOST_AUTO_TEST_CASE(meta_header_and_jpeg_stream_checks) {
  auto p = dicom_file("clunie_MG_pixelspacing_test.dcm");
  if (!p) return;
  test::temp_dir dir("dicom-meta");
  auto ff = load(*p);
  ff->getMetaInfo()->putAndInsertString(DCM_TransferSyntaxUID, "");
  BOOST_TEST_REQUIRE(ff->saveFile((dir / "noxfer.dcm").string().c_str(), EXS_LittleEndianExplicit,
                                  EET_UndefinedLength, EGL_recalcGL, EPD_noChange, 0, 0, EWM_dontUpdateMeta)
                         .good());
  fix_meta_group_length(dir / "noxfer.dcm");
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "noxfer.dcm"); },
                         "noxfer.dcm: Transfer Syntax UID (0002,0010) is missing or empty in the file meta information");
  // A JPEG baseline file whose first marker after SOI is turned into FF01 (TEM): rejected before
  // DCMTK's decoder sees it (its bit-depth pre-scan can hang on such streams; found by the fuzz harness).
  register_encoders();
  const DJ_RPLossy q90(90);
  transcode(*p, dir / "base.dcm", EXS_JPEGProcess1, &q90);
  auto bytes = file_bytes(dir / "base.dcm");
  const std::vector<std::uint8_t> soi = {0xFF, 0xD8, 0xFF};
  const auto at = std::search(bytes.begin(), bytes.end(), soi.begin(), soi.end());
  BOOST_TEST_REQUIRE((at != bytes.end()));
  *(at + 3) = 0x01;
  expect_error<io_error>([&] { (void)data::read_dicom(std::span<const std::uint8_t>(bytes), "tem.dcm"); },
                         "tem.dcm: corrupt JPEG stream in Pixel Data (7FE0,0010) fragment 1 at byte 2: unexpected "
                         "marker FF01; expected SOI, then APPn, DQT, DHT, DRI or COM segments, then a SOFn frame header");
}

// The three ways past the length pre-scan found by tests/fuzz/fuzz_dicom (reproducers in
// tests/fuzz/regressions/dicom/): each made DCMTK allocate 1 GiB because it read the bytes differently
// from the scanner. Each is now refused before DCMTK reads anything.
BOOST_AUTO_TEST_CASE(fuzz_regression_meta_group_length_zero) {
  // (0002,0000) = 0 ends the group for DCMTK before (0002,0010) (big endian), which the old scanner used.
  const auto b = regression("huge-alloc-meta-group-length-zero.dcm");
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(b), "gl0.dcm"); },
                         "gl0.dcm: non-canonical file meta information at byte 144: element (0002,0010) follows the "
                         "end of the group (File Meta Information Group Length (0002,0000) is 0); expected the group "
                         "length to cover every (0002,xxxx) element");
}

BOOST_AUTO_TEST_CASE(fuzz_regression_part10_needs_all_four_magic_bytes) {
  // "DICX" at 128: a raw implicit-LE data set for DCMTK, scanned as such from byte 0.
  const auto b = regression("huge-alloc-part10-test-checks-only-D.dcm");
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(b), "dicx.dcm"); },
                         "dicx.dcm: truncated or corrupt DICOM data in element (0008,0016) at byte 0: its length is "
                         "1073741824 bytes but only 152 remain; expected a length within the file");
}

BOOST_AUTO_TEST_CASE(fuzz_regression_transfer_syntax_twice) {
  // DCMTK keeps the first (0002,0010) (little endian), the old scanner the last (big endian).
  const auto b = regression("huge-alloc-transfer-syntax-twice.dcm");
  expect_error<io_error>([&] { (void)data::read_dicom(std::span(b), "twice.dcm"); },
                         "twice.dcm: non-canonical file meta information at byte 172: element (0002,0010) repeats or "
                         "follows (0002,0010); expected each file meta element once, in ascending tag order");
}

BOOST_AUTO_TEST_CASE(meta_group_must_be_canonical) {
  const std::string le_expl("1.2.840.10008.1.2.1\0", 20), be_expl("1.2.840.10008.1.2.2", 19);
  const auto ts_le = el(0x0002, 0x0010, "UI", le_expl);
  const auto ts_be = el(0x0002, 0x0010, "UI", be_expl + std::string(1, '\0'));
  const auto body = el(0x0008, 0x0016, "UI", std::string("1\0", 2));
  auto read = [](const std::vector<std::uint8_t>& b) { (void)data::read_dicom(std::span(b), "m.dcm"); };
  // Out of order (a later duplicate is the same case).
  expect_error<io_error>([&] { read(part10({ts_le, el(0x0002, 0x0002, "UI", std::string("1.2\0", 4))}, body)); },
                         "m.dcm: non-canonical file meta information at byte 172: element (0002,0002) repeats or "
                         "follows (0002,0010); expected each file meta element once, in ascending tag order");
  // A group length that covers part of the data set, or ends inside an element, or past the input.
  expect_error<io_error>([&] { read(part10({ts_le}, body, 28 + 10)); },
                         "m.dcm: non-canonical file meta information at byte 172: element (0008,0016) lies inside the "
                         "group (File Meta Information Group Length (0002,0000) is 38); expected only (0002,xxxx) "
                         "elements there");
  expect_error<io_error>([&] { read(part10({ts_le}, body, 10)); },
                         "m.dcm: non-canonical file meta information at byte 144: element (0002,0010) of 20 bytes runs "
                         "past the end of the group at byte 154 (File Meta Information Group Length (0002,0000) is "
                         "10); expected the group length to cover every (0002,xxxx) element");
  expect_error<io_error>([&] { read(part10({ts_le}, body, 1000)); },
                         "m.dcm: truncated or corrupt DICOM data in the file meta information: File Meta Information "
                         "Group Length (0002,0000) at byte 132 is 1000 bytes but only 38 remain");
  // No group length, or an implicit VR meta group (DCMTK guesses both).
  std::vector<std::uint8_t> nogl(128, 0);
  for (char c : {'D', 'I', 'C', 'M'}) nogl.push_back(static_cast<std::uint8_t>(c));
  nogl.insert(nogl.end(), ts_le.begin(), ts_le.end());
  nogl.insert(nogl.end(), body.begin(), body.end());
  expect_error<io_error>([&] { read(nogl); },
                         "m.dcm: non-canonical file meta information at byte 132: the first element is (0002,0010) with "
                         "VR 'UI'; expected File Meta Information Group Length (0002,0000), VR UL, length 4");
  std::vector<std::uint8_t> implicit(128, 0);
  for (char c : {'D', 'I', 'C', 'M'}) implicit.push_back(static_cast<std::uint8_t>(c));
  for (std::uint8_t v : {0x02, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x1C, 0x00, 0x00, 0x00}) implicit.push_back(v);
  implicit.insert(implicit.end(), ts_le.begin(), ts_le.end());
  expect_error<io_error>([&] { read(implicit); },
                         "m.dcm: non-canonical file meta information at byte 132: the first element is (0002,0000) with "
                         "VR '\\x04\\x00'; expected File Meta Information Group Length (0002,0000), VR UL, length 4");
  // A VR that is not a standard one.
  expect_error<io_error>([&] { read(part10({el(0x0002, 0x0010, "ZZ", le_expl)}, body)); },
                         "m.dcm: non-canonical file meta information at byte 144: element (0002,0010) has VR 'ZZ'; "
                         "expected a standard non-sequence VR");
  // Deflated data sets: DCMTK inflates them, so their lengths cannot be checked first.
  expect_error<io_error>([&] { read(part10({el(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1.99")}, body)); },
                         "m.dcm: unsupported transfer syntax 1.2.840.10008.1.2.1.99 (");
  expect_error<io_error>([&] { read(part10({el(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1.99")}, body)); },
                         ") in (0002,0010): a deflated data set cannot be checked before DCMTK inflates it");
  // A canonical big-endian file is read in big endian by both: the 1 GiB length is caught ...
  std::vector<std::uint8_t> be_un = {0x00, 0x08, 0x00, 0x16, 'U', 'N', 0, 0, 0x40, 0x00, 0x00, 0x00, 0, 0, 0, 0};
  expect_error<io_error>([&] { read(part10({ts_be}, be_un)); },
                         "m.dcm: truncated or corrupt DICOM data in element (0008,0016) at byte 172: its length is "
                         "1073741824 bytes but only 4 remain");
  // ... and a well-formed one parses (it only lacks the image module).
  const std::vector<std::uint8_t> be_ok = {0x00, 0x08, 0x00, 0x16, 'U', 'I', 0x00, 0x02, '1', 0};
  expect_error<io_error>([&] { read(part10({ts_be}, be_ok)); }, "m.dcm: Rows (0028,0010) is missing");
}

BOOST_AUTO_TEST_CASE(pgm_is_not_dicom) {
  auto root = test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  fs::path pgm;  // any one image of the folder (the first in name order)
  for (const auto& e : fs::directory_iterator(*root / "mini-mias"))
    if (e.path().extension() == ".pgm" && (pgm.empty() || e.path() < pgm)) pgm = e.path();
  BOOST_TEST_REQUIRE(!pgm.empty());
  expect_error<io_error>([&] { (void)data::read_dicom(pgm); },
                         pgm.string() + ": not a DICOM file (" + std::to_string(fs::file_size(pgm)) +
                             " bytes): expected 'DICM' at byte 128 after the Part 10 preamble, or a data set starting with a (0008,xxxx) element");
  expect_error<io_error>([&] { (void)data::read_dicom_header(pgm); }, "not a DICOM file");
  expect_error<io_error>([&] { (void)data::read_dicom(pgm.string() + ".missing"); }, "cannot open");
}

BOOST_AUTO_TEST_CASE(malformed_headers_and_pixel_data) {
  auto p = dicom_file("clunie_MG_pixelspacing_test.dcm");
  if (!p) return;
  test::temp_dir dir("dicom-bad");
  edit(*p, dir / "nopix.dcm", [](DcmDataset& ds) { delete ds.remove(DCM_PixelData); });
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "nopix.dcm"); },
                         "nopix.dcm: Pixel Data (7FE0,0010) is missing; expected the image's pixel values");
  edit(*p, dir / "rgb.dcm", [](DcmDataset& ds) {
    ds.putAndInsertUint16(DCM_SamplesPerPixel, 3);
    ds.putAndInsertString(DCM_PhotometricInterpretation, "RGB");
    ds.putAndInsertUint16(DCM_PlanarConfiguration, 0);
  });
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "rgb.dcm"); },
                         "rgb.dcm: Samples per Pixel (0028,0002) is 3; expected 1 (only monochrome images are supported)");
  edit(*p, dir / "norows.dcm", [](DcmDataset& ds) { delete ds.remove(DCM_Rows); });
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "norows.dcm"); },
                         "norows.dcm: Rows (0028,0010) is missing; expected a positive integer");
  edit(*p, dir / "nocols.dcm", [](DcmDataset& ds) { delete ds.remove(DCM_Columns); });
  expect_error<io_error>([&] { (void)data::read_dicom_header(dir / "nocols.dcm"); },
                         "nocols.dcm: Columns (0028,0011) is missing");
  edit(*p, dir / "short.dcm", [](DcmDataset& ds) { ds.putAndInsertUint16(DCM_Rows, 513); });
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "short.dcm"); },
                         "short.dcm: Pixel Data (7FE0,0010) holds 262144 bytes; expected at least 262656 (513 rows x 512 columns x 1 bytes)");
  edit(*p, dir / "bits32.dcm", [](DcmDataset& ds) { ds.putAndInsertUint16(DCM_BitsAllocated, 32); });
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "bits32.dcm"); },
                         "bits32.dcm: Bits Allocated (0028,0100) is 32; expected 8 or 16");
  edit(*p, dir / "palette.dcm",
       [](DcmDataset& ds) { ds.putAndInsertString(DCM_PhotometricInterpretation, "PALETTE COLOR"); });
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "palette.dcm"); },
                         "palette.dcm: Photometric Interpretation (0028,0004) is 'PALETTE COLOR'; expected MONOCHROME1 or MONOCHROME2");
  edit(*p, dir / "stored.dcm", [](DcmDataset& ds) { ds.putAndInsertUint16(DCM_BitsStored, 9); });
  expect_error<io_error>([&] { (void)data::read_dicom(dir / "stored.dcm"); },
                         "stored.dcm: Bits Stored (0028,0101) is 9; expected 1..8 (Bits Allocated)");
}

BOOST_AUTO_TEST_CASE(writer_rejects_what_it_cannot_store) {
  test::temp_dir dir("dicom-wbad");
  data::image img(2, 2, 10.0f);
  img.meta.bits_stored = 17;
  expect_error<config_error>([&] { data::write_dicom(dir / "a.dcm", img); }, "meta.bits_stored is 17; expected 8..16");
  img.meta.bits_stored = 8;
  img.pixels[3] = 256.0f;
  expect_error<config_error>([&] { data::write_dicom(dir / "a.dcm", img); },
                             "pixel 1,1 value 256 maps to stored value 256; expected 0..255 for 8-bit unsigned storage");
  img.pixels[3] = 2.5f;
  expect_error<config_error>([&] { data::write_dicom(dir / "a.dcm", img); },
                             "pixel 1,1 value 2.5 maps to stored value 2.5, which is not an integer");
  data::dicom_write_options rounding;
  rounding.round_to_nearest = true;
  data::write_dicom(dir / "a.dcm", img, rounding);  // 2.5 -> 2 (round half to even)
  BOOST_TEST((data::read_dicom(dir / "a.dcm").pixels == std::vector<float>{10, 10, 10, 2}));
  img.pixels[3] = 2.0f;
  img.meta.photometric = "RGB";
  expect_error<config_error>([&] { data::write_dicom(dir / "b.dcm", img); }, "meta.photometric is 'RGB'");
  img.meta.photometric = "MONOCHROME2";
  img.meta.rescale_slope = 0.0;
  expect_error<config_error>([&] { data::write_dicom(dir / "b.dcm", img); }, "expected a finite non-zero slope");
  img.meta.rescale_slope = 1.0;
  expect_error<io_error>([&] { data::write_dicom(dir / "no-such-dir" / "c.dcm", img); }, "write_dicom: cannot write");
  BOOST_TEST(dir.listing() == std::vector<std::string>{"a.dcm"});  // failed writes leave nothing behind
}

BOOST_AUTO_TEST_SUITE_END()
