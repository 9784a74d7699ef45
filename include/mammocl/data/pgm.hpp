#pragma once
/// PGM (Netpbm greyscale) reading and writing: plain `P2` (ASCII) and raw `P5` (binary), maxval 1..65535.
///
/// Conventions (docs/data-image-io.md has the details and the reasons):
///  - samples are returned unchanged as floats (no scaling); `meta.max_value` = maxval, `meta.min_value` = 0,
///    `meta.bits_stored` = the number of bits maxval needs, `meta.source` = the file name;
///  - P5 samples are 1 byte when maxval < 256, else 2 bytes, most significant byte first (Netpbm);
///  - a comment runs from `#` to the next CR or LF; the CR/LF itself still counts as whitespace, so a
///    comment may sit between any two header tokens and right after maxval (Netpbm's libnetpbm does the
///    same). P2 rasters may hold comments too;
///  - after the raster only whitespace may follow. A second image (Netpbm multi-image stream) or any other
///    trailing byte is an error: in practice it means the header's width or height is wrong;
///  - every malformed input throws `io_error` naming the file, the header field or byte offset, and what
///    was expected. The reader never allocates more than the input can fill (sizes are checked against
///    the bytes present before any allocation).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/image.hpp"

namespace mammocl::data {

/// Largest width or height the PGM reader accepts (16,777,216): far above any mammogram, and small
/// enough that width * height * 2 never overflows 64 bits.
inline constexpr std::uint64_t pgm_max_dimension = std::uint64_t{1} << 24;

/// Which PGM variant to write.
enum class pgm_encoding {
  binary,  ///< P5 (raw), the default
  ascii    ///< P2 (plain), lines of at most 70 characters
};

/// Options of `write_pgm` / `encode_pgm`.
struct pgm_write_options {
  pgm_encoding encoding = pgm_encoding::binary;
  /// Maxval written in the header; 0 means the image's `meta.max_value` (which must then be an integer
  /// in 1..65535). The sample width follows from it: 1 byte up to 255, else 2 bytes.
  int maxval = 0;
};

namespace detail {

/// `'c'` for a printable byte, else `0xNN`, for error messages.
[[nodiscard]] inline std::string describe_byte(std::uint8_t b) {
  if (b >= 0x20 && b < 0x7f) return std::string("'") + static_cast<char>(b) + "'";
  static constexpr char hex[] = "0123456789ABCDEF";
  return std::string("0x") + hex[b >> 4] + hex[b & 15];
}

/// Reads a whole file. `who` prefixes the error message ("read_pgm", "read_png", ...).
[[nodiscard]] inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path, const char* who) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) MAMMOCL_THROW(io_error, who, ": cannot open '", path.string(), "': ", std::strerror(errno));
  // Read straight into a buffer of the file's size; keep reading past it in case the file grew, and
  // for pipes and other files without a size.
  std::vector<std::uint8_t> bytes;
  struct ::stat st {};
  std::size_t cap = 1 << 16;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) cap = static_cast<std::size_t>(st.st_size) + 1;
  bytes.resize(cap);
  std::size_t used = 0;
  for (;;) {
    if (used == bytes.size()) bytes.resize(bytes.size() * 2);
    const ::ssize_t k = ::read(fd, bytes.data() + used, bytes.size() - used);
    if (k == 0) break;
    if (k < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      MAMMOCL_THROW(io_error, who, ": cannot read '", path.string(), "': ", std::strerror(err));
    }
    used += static_cast<std::size_t>(k);
  }
  bytes.resize(used);
  ::close(fd);
  return bytes;
}

/// Writes `bytes` to `path` atomically: a temporary file `.<name>.tmp-<pid>-<n>` in the same directory,
/// fsync, rename over `path`, fsync of the directory (best effort). On failure the temporary file is
/// removed, `path` is left as it was, and io_error names both files and the failing step.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes,
                                  const char* who) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::filesystem::path tmp = dir / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) +
                                           "-" + std::to_string(counter++));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    MAMMOCL_THROW(io_error, who, ": cannot create the temporary file '", tmp.string(), "' to write '", path.string(),
                  "': ", std::strerror(errno));
  auto fail = [&](const char* step, int err, bool close_fd) {
    if (close_fd) ::close(fd);
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    MAMMOCL_THROW(io_error, who, ": writing '", path.string(), "' failed while ", step, " the temporary file '",
                  tmp.string(), "': ", std::strerror(err), "; the destination was not modified");
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t k = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (k < 0) {
      if (errno == EINTR) continue;
      fail("writing", errno, true);
    }
    done += static_cast<std::size_t>(k);
  }
  if (::fsync(fd) != 0) fail("flushing", errno, true);
  if (::close(fd) != 0) fail("closing", errno, false);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    MAMMOCL_THROW(io_error, who, ": cannot rename the temporary file '", tmp.string(), "' to '", path.string(),
                  "': ", ec.message(), "; the destination was not modified");
  }
  // Make the rename durable too; a directory that cannot be opened is left as it is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

/// Checks that `img` can be encoded: non-empty and consistent. `who` names the caller and the file.
inline void check_image_to_write(const image& img, const std::string& who) {
  MAMMOCL_CHECK(img.rows > 0 && img.cols > 0, config_error, who, ": cannot write an empty image (", img.rows, " x ",
                img.cols, ")");
  MAMMOCL_CHECK(img.pixels.size() == static_cast<std::size_t>(img.rows * img.cols), shape_error, who, ": the image is ",
                img.rows, " x ", img.cols, " but holds ", img.pixels.size(), " pixels");
}

/// A pixel rounded to the nearest integer; config_error when it is not finite or falls outside
/// [0, maxval] after rounding (no silent clipping: the caller scales explicitly).
[[nodiscard]] inline std::uint32_t sample_to_write(const image& img, std::size_t i, std::uint32_t maxval,
                                                   const std::string& who) {
  const float v = img.pixels[i];
  const double r = std::nearbyint(static_cast<double>(v));
  if (!(r >= 0.0 && r <= static_cast<double>(maxval))) [[unlikely]] {
    const auto cols = static_cast<std::size_t>(img.cols);
    MAMMOCL_THROW(config_error, who, ": pixel (row ", i / cols, ", column ", i % cols, ") = ", v,
                  " is outside [0, ", maxval, "] after rounding; scale the image to the file's range first");
  }
  return static_cast<std::uint32_t>(r);
}

/// The PGM parser over a byte range. Every error names `name` and a byte offset.
class pgm_parser {
 public:
  pgm_parser(std::span<const std::uint8_t> bytes, std::string_view name)
      : b_(bytes), name_(name.empty() ? std::string("<memory>") : std::string(name)) {}

  image parse() {
    read_magic();
    const std::uint64_t width = read_header_number("width", 1, pgm_max_dimension);
    const std::uint64_t height = read_header_number("height", 1, pgm_max_dimension);
    const std::uint64_t maxval = read_header_number("maxval", 1, 65535);
    end_of_header();
    image img;
    img.meta.source = name_;
    img.meta.bits_stored = std::bit_width(maxval);
    img.meta.min_value = 0.0;
    img.meta.max_value = static_cast<double>(maxval);
    img.meta.photometric = "MONOCHROME2";
    if (binary_)
      read_raw(img, width, height, static_cast<std::uint32_t>(maxval));
    else
      read_plain(img, width, height, static_cast<std::uint32_t>(maxval));
    return img;
  }

 private:
  static bool is_space(std::uint8_t c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }
  static bool is_digit(std::uint8_t c) noexcept { return c >= '0' && c <= '9'; }

  template <class... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    MAMMOCL_THROW(io_error, "read_pgm: ", name_, ": ", std::forward<Parts>(parts)...);
  }

  void read_magic() {
    if (b_.size() < 2) fail("the file holds ", b_.size(), " byte(s); expected at least the magic number 'P2' or 'P5'");
    if (b_[0] == 'P' && (b_[1] == '2' || b_[1] == '5')) {
      binary_ = b_[1] == '5';
      pos_ = 2;
      if (pos_ < b_.size() && !is_space(b_[pos_]) && b_[pos_] != '#')
        fail("byte offset 2: expected whitespace after the magic number, found ", describe_byte(b_[pos_]));
      return;
    }
    if (b_[0] == 'P' && b_[1] >= '1' && b_[1] <= '7') {
      static constexpr const char* kinds[] = {"a plain PBM (bitmap)", "", "a plain PPM (colour)", "a raw PBM (bitmap)",
                                              "", "a raw PPM (colour)", "a PAM"};
      fail("byte offset 0: the magic number 'P", static_cast<char>(b_[1]), "' marks ", kinds[b_[1] - '1'],
           ", not a greyscale PGM; expected 'P2' or 'P5'");
    }
    fail("byte offset 0: expected the magic number 'P2' or 'P5', found ", describe_byte(b_[0]), " ",
         describe_byte(b_[1]));
  }

  /// Skips whitespace and comments. A comment stops before its CR/LF, which is then skipped as whitespace.
  void skip_space_and_comments() {
    while (pos_ < b_.size()) {
      if (is_space(b_[pos_])) {
        ++pos_;
      } else if (b_[pos_] == '#') {
        while (pos_ < b_.size() && b_[pos_] != '\n' && b_[pos_] != '\r') ++pos_;
      } else {
        break;
      }
    }
  }

  /// Reads the decimal digits at pos_; saturates at 2^40 so that a long run of digits cannot overflow.
  std::uint64_t read_digits() {
    std::uint64_t v = 0;
    constexpr std::uint64_t cap = std::uint64_t{1} << 40;
    while (pos_ < b_.size() && is_digit(b_[pos_])) {
      v = v * 10 + (b_[pos_] - '0');
      if (v > cap) v = cap;
      ++pos_;
    }
    return v;
  }

  std::uint64_t read_header_number(const char* field, std::uint64_t lo, std::uint64_t hi) {
    skip_space_and_comments();
    if (pos_ >= b_.size())
      fail("the header ends at byte offset ", pos_, " before the ", field, "; expected a decimal number");
    const std::size_t at = pos_;
    if (!is_digit(b_[pos_]))
      fail(field, " at byte offset ", at, ": expected a decimal number, found ", describe_byte(b_[pos_]));
    const std::uint64_t v = read_digits();
    if (pos_ < b_.size() && !is_space(b_[pos_]) && b_[pos_] != '#')
      fail(field, " at byte offset ", at, ": expected a decimal number followed by whitespace, found ",
           describe_byte(b_[pos_]), " at byte offset ", pos_);
    if (v < lo || v > hi) {
      if (v >= (std::uint64_t{1} << 40))
        fail(field, " at byte offset ", at, " is more than 2^40; expected ", lo, "..", hi);
      fail(field, " ", v, " at byte offset ", at, ": expected ", lo, "..", hi);
    }
    return v;
  }

  /// After maxval: an optional comment, then exactly one whitespace byte; the raster starts after it.
  void end_of_header() {
    if (pos_ < b_.size() && b_[pos_] == '#')
      while (pos_ < b_.size() && b_[pos_] != '\n' && b_[pos_] != '\r') ++pos_;
    if (pos_ >= b_.size())
      fail("the header ends at byte offset ", pos_,
           " right after maxval; expected one whitespace character and then the raster");
    ++pos_;  // the single whitespace byte (read_header_number checked that it is one)
  }

  void read_raw(image& img, std::uint64_t width, std::uint64_t height, std::uint32_t maxval) {
    const std::uint64_t bps = maxval < 256 ? 1 : 2;
    const std::uint64_t need = width * height * bps;  // < 2^49: no overflow (dimensions <= 2^24)
    const std::uint64_t have = b_.size() - pos_;
    if (need > have)
      fail("truncated raster: the header claims ", width, " x ", height, " samples of ", bps, " byte(s), ", need,
           " bytes from byte offset ", pos_, ", but only ", have, " bytes follow");
    img.rows = static_cast<std::int64_t>(height);
    img.cols = static_cast<std::int64_t>(width);
    img.pixels.resize(static_cast<std::size_t>(width * height));
    const std::uint8_t* p = b_.data() + pos_;
    for (std::size_t i = 0; i < img.pixels.size(); ++i) {
      const std::uint32_t v = bps == 1 ? p[i] : (std::uint32_t{p[2 * i]} << 8) | p[2 * i + 1];
      if (v > maxval) [[unlikely]]
        fail("sample ", v, " at row ", i / width, ", column ", i % width, " (byte offset ", pos_ + i * bps,
             ") exceeds maxval ", maxval);
      img.pixels[i] = static_cast<float>(v);
    }
    pos_ += static_cast<std::size_t>(need);
    for (std::size_t q = pos_; q < b_.size(); ++q)
      if (!is_space(b_[q]))
        fail(b_.size() - pos_, " byte(s) of trailing data after the raster, from byte offset ", pos_,
             " (first non-whitespace ", describe_byte(b_[q]), " at byte offset ", q,
             "); expected the end of the file: a PGM file holds one image, so the width or height is likely wrong");
  }

  void read_plain(image& img, std::uint64_t width, std::uint64_t height, std::uint32_t maxval) {
    // Each sample needs at least one digit and one separator (none after the last one): bound the count
    // by the bytes present before allocating.
    const std::uint64_t n = width * height;
    const std::uint64_t have = b_.size() - pos_;
    if (2 * n - 1 > have)
      fail("truncated raster: the header claims ", width, " x ", height, " = ", n,
           " ASCII samples, which need at least ", 2 * n - 1, " bytes from byte offset ", pos_, ", but only ", have,
           " bytes follow");
    img.rows = static_cast<std::int64_t>(height);
    img.cols = static_cast<std::int64_t>(width);
    img.pixels.resize(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < img.pixels.size(); ++i) {
      skip_space_and_comments();
      if (pos_ >= b_.size())
        fail("truncated raster: the file ends at byte offset ", pos_, " after ", i, " of ", n, " samples (row ",
             i / width, ", column ", i % width, " is missing)");
      const std::size_t at = pos_;
      if (!is_digit(b_[pos_]))
        fail("sample at row ", i / width, ", column ", i % width, " (byte offset ", at,
             "): expected a decimal number, found ", describe_byte(b_[pos_]));
      const std::uint64_t v = read_digits();
      if (pos_ < b_.size() && !is_space(b_[pos_]) && b_[pos_] != '#')
        fail("sample at row ", i / width, ", column ", i % width, " (byte offset ", at,
             "): expected a decimal number followed by whitespace, found ", describe_byte(b_[pos_]),
             " at byte offset ", pos_);
      if (v > maxval)
        fail("sample ", v, " at row ", i / width, ", column ", i % width, " (byte offset ", at, ") exceeds maxval ",
             maxval);
      img.pixels[i] = static_cast<float>(v);
    }
    const std::size_t end = pos_;
    skip_space_and_comments();
    if (pos_ < b_.size())
      fail("trailing data after the last of the ", n, " samples: ", describe_byte(b_[pos_]), " at byte offset ", pos_,
           " (the raster ended at byte offset ", end,
           "); expected the end of the file: a PGM file holds one image, so the width or height is likely wrong");
  }

  std::span<const std::uint8_t> b_;
  std::string name_;
  std::size_t pos_ = 0;
  bool binary_ = true;
};

/// The maxval to write: the option, or the image's max_value when it is an integer in 1..65535.
[[nodiscard]] inline std::uint32_t pgm_maxval_to_write(const image& img, const pgm_write_options& opt,
                                                       const std::string& who) {
  if (opt.maxval != 0) {
    MAMMOCL_CHECK(opt.maxval >= 1 && opt.maxval <= 65535, config_error, who, ": pgm_write_options::maxval = ",
                  opt.maxval, "; expected 1..65535 (or 0 for the image's max_value)");
    return static_cast<std::uint32_t>(opt.maxval);
  }
  const double m = img.meta.max_value;
  MAMMOCL_CHECK(m >= 1.0 && m <= 65535.0 && m == std::floor(m), config_error, who, ": the image's max_value ", m,
                " is not an integer in 1..65535; set pgm_write_options::maxval (and scale the pixels to it)");
  return static_cast<std::uint32_t>(m);
}

}  // namespace detail

/// Decodes a PGM (P2 or P5) held in memory. `name` is used in error messages and as `meta.source`.
/// Throws io_error for any malformed input (see the header comment for the rules).
[[nodiscard]] inline image read_pgm(std::span<const std::uint8_t> bytes, std::string_view name) {
  return detail::pgm_parser(bytes, name).parse();
}

/// Reads a PGM file (P2 or P5). Throws io_error when the file cannot be read or is malformed.
[[nodiscard]] inline image read_pgm(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, "read_pgm");
  return read_pgm(std::span<const std::uint8_t>(bytes), path.string());
}

/// Encodes `img` as a PGM in memory. Pixels are rounded to the nearest integer and must then lie in
/// [0, maxval] (config_error naming the pixel otherwise: nothing is clipped or scaled). `name` only
/// labels error messages.
[[nodiscard]] inline std::vector<std::uint8_t> encode_pgm(const image& img, const pgm_write_options& opt = {},
                                                          std::string_view name = "") {
  std::string who = "write_pgm";
  if (!name.empty()) (who += ": ") += name;
  detail::check_image_to_write(img, who);
  const std::uint32_t maxval = detail::pgm_maxval_to_write(img, opt, who);
  const bool binary = opt.encoding == pgm_encoding::binary;
  std::string header = std::string(binary ? "P5" : "P2") + "\n" + std::to_string(img.cols) + " " +
                       std::to_string(img.rows) + "\n" + std::to_string(maxval) + "\n";
  std::vector<std::uint8_t> out(header.begin(), header.end());
  const std::size_t n = img.pixels.size();
  if (binary) {
    const std::size_t bps = maxval < 256 ? 1 : 2;
    out.resize(header.size() + n * bps);
    std::uint8_t* p = out.data() + header.size();
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t v = detail::sample_to_write(img, i, maxval, who);
      if (bps == 1) {
        p[i] = static_cast<std::uint8_t>(v);
      } else {
        p[2 * i] = static_cast<std::uint8_t>(v >> 8);
        p[2 * i + 1] = static_cast<std::uint8_t>(v & 0xff);
      }
    }
  } else {
    // One image row per group of lines; Netpbm asks for lines of at most 70 characters.
    const auto cols = static_cast<std::size_t>(img.cols);
    std::size_t line = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string s = std::to_string(detail::sample_to_write(img, i, maxval, who));
      const bool row_start = i % cols == 0;
      if (!row_start && line + 1 + s.size() > 70) {
        out.push_back('\n');
        line = 0;
      } else if (!row_start) {
        out.push_back(' ');
        ++line;
      }
      out.insert(out.end(), s.begin(), s.end());
      line += s.size();
      if (i % cols == cols - 1) {
        out.push_back('\n');
        line = 0;
      }
    }
  }
  return out;
}

/// Writes `img` as a PGM file atomically (temporary file in the same directory, then rename).
/// Default: P5 with maxval = `img.meta.max_value` (1-byte samples up to 255, else 2-byte big-endian).
/// Throws config_error for an image that cannot be encoded, io_error when the file cannot be written.
inline void write_pgm(const std::filesystem::path& path, const image& img, const pgm_write_options& opt = {}) {
  const std::vector<std::uint8_t> bytes = encode_pgm(img, opt, path.string());
  detail::write_file_atomically(path, bytes, "write_pgm");
}

}  // namespace mammocl::data
