// Fuzz harness: mammocl::data::read_dicom (data/dicom.hpp) from memory: DCMTK's parser behind the
// reader's magic check, transfer-syntax check, pixel-module validation and our own decoding of the
// pixel data (bits stored, sign, rescale, MONOCHROME1), plus DCMTK's RLE, JPEG and JPEG-LS decoders for
// encapsulated data. Inputs of odd length ask for frame 1, so the multi-frame checks run too. A decoded
// image must hold rows x cols pixels. mammocl::error is the accepted failure. No sanitizer suppression
// is in force (README.md, "Suppressions").
#include <unistd.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <dcmtk/oflog/oflog.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <span>

#include "fuzz_target.hpp"
#include "mammocl/data/dicom.hpp"
#include "real_crop.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mammocl::data;
  // DCMTK logs every oddity it tolerates to stderr; thousands of lines a second would bury a report.
  static const bool quiet = [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    return true;
  }();
  (void)quiet;
  try {
    d::dicom_read_options opt;
    opt.frame = size % 2 == 1 ? 1 : 0;
    const d::image img = d::read_dicom(std::span(data, size), "fuzz.dcm", opt);
    if (img.rows <= 0 || img.cols <= 0 || img.pixels.size() != static_cast<std::size_t>(img.rows * img.cols))
      __builtin_trap();
  } catch (const mammocl::error&) {
  }
  return 0;
}

namespace {
namespace fs = std::filesystem;
using mammocl::fuzz::bytes;

bytes slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Writes `img` with the library's writer and returns the file; empty (with a note) if it refuses.
bytes written(const mammocl::data::image& img, const fs::path& dir, const char* name) {
  try {
    mammocl::data::write_dicom(dir / name, img);
    return slurp(dir / name);
  } catch (const mammocl::error& e) {
    std::cerr << "fuzz dicom: seed '" << name << "' not generated: " << e.what() << "\n";
    return {};
  }
}

/// Re-encodes a written file into an encapsulated transfer syntax with DCMTK's encoders.
bytes recoded(const fs::path& src, const fs::path& dir, const char* name, E_TransferSyntax xfer,
              const DcmRepresentationParameter* param) {
  DcmFileFormat ff;
  if (ff.loadFile(src.c_str()).bad()) return {};
  if (ff.getDataset()->chooseRepresentation(xfer, param).bad() || !ff.getDataset()->canWriteXfer(xfer)) {
    std::cerr << "fuzz dicom: seed '" << name << "' not generated: DCMTK cannot encode it\n";
    return {};
  }
  if (ff.saveFile((dir / name).c_str(), xfer).bad()) return {};
  return slurp(dir / name);
}
}  // namespace

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "dicom";
  // Real files, cut: the synthetic MG header (whole header, pixel data truncated), the JPEG-lossy
  // scanned-film mammogram (header plus the start of the JPEG stream) and its JPEG 2000 twin (the
  // unsupported-transfer-syntax path).
  t.data_seeds = {{"dicom/clunie_MG_pixelspacing_test.dcm", 4096, "", 1},
                  {"dicom/wg04_MG1_JPLY.dcm", 4096, "", 1},
                  {"dicom/wg04_MG1_J2KI.dcm", 2048, "", 1}};
  t.generate = [](const fs::path& root) {
    namespace d = mammocl::data;
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);  // DCMTK's notes while encoding are not findings
    const fs::path dir = fs::temp_directory_path() / ("mammocl-fuzz-dicom-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::vector<generated_seed> out;

    d::image m2 = real_crop(root, 16, 12);  // 8-bit MONOCHROME2 For Presentation, SIGMOID window
    m2.meta.bits_stored = 8;
    m2.meta.presentation_intent = "FOR PRESENTATION";
    m2.meta.window_center = 127.5;
    m2.meta.window_width = 200.0;
    m2.meta.voi_lut_function = "SIGMOID";
    m2.meta.pixel_spacing_mm_row = m2.meta.pixel_spacing_mm_col = 0.2;
    m2.meta.laterality = "L";
    m2.meta.view = "MLO";
    out.push_back({"8-bit MONOCHROME2 sigmoid", written(m2, dir, "m2.dcm")});

    d::image m1 = real_crop(root, 12, 16);  // 12-bit MONOCHROME1 with a rescale intercept
    for (auto& v : m1.pixels) v = v * 16.0f - 1024.0f;
    m1.meta.bits_stored = 12;
    m1.meta.photometric = "MONOCHROME1";
    m1.meta.rescale_intercept = -1024.0;
    m1.meta.min_value = -1024.0;
    m1.meta.max_value = 4095.0 - 1024.0;
    out.push_back({"12-bit MONOCHROME1 rescaled", written(m1, dir, "m1.dcm")});

    d::image s16 = real_crop(root, 8, 8);  // signed 16-bit, slope 0.5
    for (auto& v : s16.pixels) v = (v * 100.0f - 12000.0f) * 0.5f;
    s16.meta.bits_stored = 16;
    s16.meta.is_signed = true;
    s16.meta.rescale_slope = 0.5;
    s16.meta.min_value = -16384.0;
    s16.meta.max_value = 16383.5;
    out.push_back({"signed 16-bit slope 0.5", written(s16, dir, "s16.dcm")});

    // Encapsulated: RLE, JPEG baseline and JPEG-LS of the 8-bit crop.
    DcmRLEEncoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    mammocl::data::detail::dicom::register_decoders();
    if (fs::exists(dir / "m2.dcm")) {
      const DcmRLERepresentationParameter rle;
      const DJ_RPLossy jpeg(90);
      const DJLSRepresentationParameter jls;
      out.push_back({"RLE", recoded(dir / "m2.dcm", dir, "rle.dcm", EXS_RLELossless, &rle)});
      out.push_back({"JPEG baseline", recoded(dir / "m2.dcm", dir, "jpeg.dcm", EXS_JPEGProcess1, &jpeg)});
      out.push_back({"JPEG-LS lossless", recoded(dir / "m2.dcm", dir, "jls.dcm", EXS_JPEGLSLossless, &jls)});
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    std::erase_if(out, [](const generated_seed& s) { return s.data.empty(); });
    return out;
  };
  t.dictionary = {"DICM", std::string("\x28\x00\x10\x00", 4) /* Rows */, std::string("\x28\x00\x11\x00", 4),
                  std::string("\x28\x00\x00\x01", 4) /* Bits Allocated */, std::string("\x28\x00\x01\x01", 4),
                  std::string("\x28\x00\x03\x01", 4) /* Pixel Representation */,
                  std::string("\x28\x00\x08\x00", 4) /* Number of Frames */,
                  std::string("\xe0\x7f\x10\x00", 4) /* Pixel Data */, std::string("\xfe\xff\x00\xe0", 4) /* Item */,
                  std::string("\xfe\xff\xdd\xe0", 4) /* Sequence Delimitation */, "OB", "OW", "US", "SQ", "UN",
                  "MONOCHROME1", "MONOCHROME2", "RGB", "SIGMOID", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5",
                  "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.2",
                  std::string("\xff\xff\xff\xff", 4)};
  t.min_iterations = 300;  // DCMTK under ASan: a few hundred inputs a second
  return t;
}
