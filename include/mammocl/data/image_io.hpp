#pragma once
/// One entry point for image files: `read_image` picks the reader from the file's first bytes (PGM or
/// PNG), `write_image` picks the writer from the extension (.pgm or .png). DICOM lives in
/// mammocl/data/dicom.hpp (DCMTK, target mammocl::dicom) so that this header needs no DCMTK: a DICOM
/// file given to `read_image` is an io_error that says so.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/image.hpp"
#include "mammocl/data/pgm.hpp"
#include "mammocl/data/png.hpp"

namespace mammocl::data {

/// The formats `read_image` recognises from the first bytes.
enum class image_format { unknown, pgm, png, dicom };

/// Options of `read_image`.
struct image_read_options {
  png_read_options png;  ///< passed to read_png
};

/// The format of an encoded image, from its magic bytes: "P1".."P7" (Netpbm; read_pgm accepts P2 and P5
/// and names the others), the 8-byte PNG signature, or "DICM" at offset 128 (DICOM Part 10).
[[nodiscard]] inline image_format sniff_image_format(std::span<const std::uint8_t> bytes) noexcept {
  static constexpr std::uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_sig, 8) == 0) return image_format::png;
  if (bytes.size() >= 132 && std::memcmp(bytes.data() + 128, "DICM", 4) == 0) return image_format::dicom;
  if (bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '7') return image_format::pgm;
  return image_format::unknown;
}

/// Decodes an image held in memory, dispatching on its magic bytes. `name` labels errors and becomes
/// `meta.source`. Throws io_error for DICOM (use mammocl/data/dicom.hpp), an unknown format, or a
/// malformed file.
[[nodiscard]] inline image read_image(std::span<const std::uint8_t> bytes, std::string_view name,
                                      const image_read_options& opt = {}) {
  switch (sniff_image_format(bytes)) {
    case image_format::pgm: return read_pgm(bytes, name);
    case image_format::png: return read_png(bytes, name, opt.png);
    case image_format::dicom:
      MAMMOCL_THROW(io_error, "read_image: ", name,
                    ": is a DICOM file ('DICM' at byte offset 128); read it with mammocl::data::read_dicom: "
                    "#include \"mammocl/data/dicom.hpp\" and link the target mammocl::dicom (DCMTK)");
    case image_format::unknown: break;
  }
  std::string found;
  for (std::size_t i = 0; i < bytes.size() && i < 8; ++i) {
      if (i) found += ' ';
      found += detail::describe_byte(bytes[i]);
    }
  MAMMOCL_THROW(io_error, "read_image: ", name, ": unknown image format: the first bytes are ",
                found.empty() ? std::string("(empty file)") : found,
                "; expected a PGM ('P2' or 'P5'), a PNG signature, or a DICOM file ('DICM' at byte offset 128)");
}

/// Reads a PGM or PNG file, whatever its extension. See the memory overload for the errors.
[[nodiscard]] inline image read_image(const std::filesystem::path& path, const image_read_options& opt = {}) {
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, "read_image");
  return read_image(std::span<const std::uint8_t>(bytes), path.string(), opt);
}

/// Writes `img` atomically as PGM (.pgm) or PNG (.png), by the extension (case-insensitive).
/// `bits` = 8 or 16 is the sample depth of the file, 0 picks it from `meta.max_value` (<= 255: 8).
///  - PGM: maxval = `meta.max_value` when it is an integer that fits `bits` (1..255 for 8; 256..65535 for
///    16), else 2^bits - 1; with bits = 0 it is `meta.max_value` itself (an integer in 1..65535).
///  - PNG: 8- or 16-bit greyscale (PNG has no maxval: a 12-bit image reads back with max_value 65535).
/// Pixel values are never scaled: they are rounded and must fit the file's range (config_error naming
/// the pixel otherwise). Another extension is a config_error.
inline void write_image(const std::filesystem::path& path, const image& img, int bits = 0) {
  MAMMOCL_CHECK(bits == 0 || bits == 8 || bits == 16, config_error, "write_image: ", path.string(), ": bits = ", bits,
                "; expected 8, 16 or 0 (from the image's max_value)");
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".png") return write_png(path, img, bits);
  if (ext == ".pgm") {
    pgm_write_options opt;
    if (bits != 0) {
      const double m = img.meta.max_value;
      const bool fits = bits == 8 ? (m >= 1.0 && m <= 255.0) : (m >= 256.0 && m <= 65535.0);
      opt.maxval = fits && m == std::floor(m) ? static_cast<int>(m) : (bits == 8 ? 255 : 65535);
    }
    return write_pgm(path, img, opt);
  }
  MAMMOCL_THROW(config_error, "write_image: ", path.string(), ": unknown extension '", ext,
                "'; expected .pgm or .png (DICOM: mammocl/data/dicom.hpp)");
}

}  // namespace mammocl::data
