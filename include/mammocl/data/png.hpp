#pragma once
/// PNG reading and writing through libpng (linked by mammocl::mammocl).
///
/// Reading: greyscale at bit depth 1, 2, 4, 8 or 16, with or without alpha (alpha is dropped). Samples
/// are returned unchanged as floats: `meta.max_value` = 2^depth - 1 and `meta.bits_stored` = depth, so
/// a 4-bit file gives values 0..15 (libpng's expansion to 8 bits would give v * 17; `normalized()` is the
/// same either way). Palette and RGB(A) files are an io_error naming the colour type unless
/// `png_read_options::convert_rgb_to_grey` is set; then each pixel is the ITU-R BT.601 luma
/// 0.299 R + 0.587 G + 0.114 B (palette entries expanded first), unrounded, on the file's 8- or 16-bit
/// scale.
///
/// Writing: 8- or 16-bit greyscale, non-interlaced, atomically.
///
/// libpng reports errors by longjmp. No C++ object with a destructor lives in a frame that a longjmp
/// crosses: each libpng call runs inside a small function that holds only plain values and its own
/// setjmp; the error callback copies libpng's message into a fixed buffer and jumps back there; the
/// C++ caller then throws io_error naming the file and the message. Callbacks never throw.
#include <png.h>

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/image.hpp"
#include "mammocl/data/pgm.hpp"  // detail::read_file_bytes, write_file_atomically, sample checks

namespace mammocl::data {

/// Options of `read_png`.
struct png_read_options {
  /// Accept palette, RGB and RGBA files and convert them with ITU-R BT.601 luma (alpha dropped).
  bool convert_rgb_to_grey = false;
  /// Largest width * height accepted (default 2^28, about 268 million pixels, 1 GiB of floats).
  std::int64_t max_pixels = std::int64_t{1} << 28;
};

namespace detail {

/// Deflate's largest possible expansion (zlib FAQ: 1032:1). An image whose raw samples exceed
/// 1032 x the file size cannot be encoded in that file; rejecting it before allocating bounds the memory
/// any input can make the reader take.
inline constexpr std::uint64_t deflate_max_ratio = 1032;

/// State shared with the libpng callbacks: plain data only.
struct png_io_state {
  const std::uint8_t* data = nullptr;   // reading: the encoded bytes
  std::size_t size = 0, pos = 0;
  std::vector<std::uint8_t>* out = nullptr;  // writing: the encoded bytes
  std::size_t alloc_cap = 0;             // reading: largest single allocation libpng may make (0: none)
  char message[512] = {};
};

/// libpng's allocator while reading: refuses any single block above the state's cap, which libpng then
/// reports as "Out of Memory" through the error callback. libpng 1.6.39 allocates an ancillary chunk's
/// declared length (up to 2^31 - 1) before it reads the data (fuzzing: 1 GiB from a 47-byte zTXt),
/// and png_set_chunk_malloc_max does not stop it there.
inline png_voidp png_capped_malloc(png_structp png, png_alloc_size_t n) {
  const auto* st = static_cast<const png_io_state*>(png_get_mem_ptr(png));
  if (st && st->alloc_cap && n > st->alloc_cap) return nullptr;
  return std::malloc(n);
}
inline void png_free_block(png_structp, png_voidp p) { std::free(p); }

inline void png_on_error(png_structp png, png_const_charp msg) {
  if (auto* st = static_cast<png_io_state*>(png_get_error_ptr(png)))
    std::snprintf(st->message, sizeof st->message, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

inline void png_on_warning(png_structp, png_const_charp) {}  // warnings change nothing we return

inline void png_read_memory(png_structp png, png_bytep dst, png_size_t n) {
  auto* st = static_cast<png_io_state*>(png_get_io_ptr(png));
  if (n > st->size - st->pos) {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "unexpected end of data at byte offset %zu: %zu more byte(s) needed but the file ends at %zu "
                  "(truncated file)",
                  st->pos, static_cast<std::size_t>(n), st->size);
    png_error(png, buf);
  }
  std::memcpy(dst, st->data + st->pos, n);
  st->pos += n;
}

inline void png_write_memory(png_structp png, png_bytep src, png_size_t n) {
  auto* st = static_cast<png_io_state*>(png_get_io_ptr(png));
  bool ok = true;
  try {
    st->out->insert(st->out->end(), src, src + n);
  } catch (...) {
    ok = false;  // no exception may cross libpng's frames: turn it into a libpng error outside the handler
  }
  if (!ok) png_error(png, "out of memory while encoding");
}

inline void png_flush_nothing(png_structp) {}

struct png_header {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
};

// The three functions below are the only frames a longjmp returns to. They hold plain values only and
// modify nothing local after setjmp.
inline bool png_step_read_info(png_structp png, png_infop info, png_header* h) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  png_get_IHDR(png, info, &h->width, &h->height, &h->bit_depth, &h->color_type, &h->interlace, nullptr, nullptr);
  return true;
}

inline bool png_step_transforms(png_structp png, png_infop info, bool palette, bool unpack, std::size_t* rowbytes,
                                int* channels, int* depth) {
  if (setjmp(png_jmpbuf(png))) return false;
  if (palette) png_set_palette_to_rgb(png);
  if (unpack) png_set_packing(png);  // 1/2/4-bit grey: one byte per sample, value unchanged
  (void)png_set_interlace_handling(png);
  png_read_update_info(png, info);
  *rowbytes = png_get_rowbytes(png, info);
  *channels = png_get_channels(png, info);
  *depth = png_get_bit_depth(png, info);
  return true;
}

inline bool png_step_read_rows(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, info);  // reads and CRC-checks the chunks after the image data up to IEND
  return true;
}

inline bool png_step_write(png_structp png, png_infop info, png_uint_32 w, png_uint_32 h, int depth, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, w, h, depth, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  return true;
}

struct png_read_handles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~png_read_handles() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

struct png_write_handles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~png_write_handles() { png_destroy_write_struct(&png, info ? &info : nullptr); }
};

[[nodiscard]] inline const char* png_color_type_name(int t) noexcept {
  switch (t) {
    case PNG_COLOR_TYPE_GRAY: return "greyscale";
    case PNG_COLOR_TYPE_RGB: return "RGB";
    case PNG_COLOR_TYPE_PALETTE: return "palette";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "greyscale+alpha";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "RGB+alpha";
  }
  return "unknown";
}

}  // namespace detail

/// Decodes a PNG held in memory. `name` is used in error messages and as `meta.source`. Throws io_error
/// (naming `name` and libpng's message, or the colour type / size that is refused) for any input it
/// cannot return as a greyscale image.
[[nodiscard]] inline image read_png(std::span<const std::uint8_t> bytes, std::string_view name,
                                    const png_read_options& opt = {}) {
  std::string who = "read_png: ";
  who += name.empty() ? std::string_view("<memory>") : name;
  if (bytes.size() < 8 || png_sig_cmp(bytes.data(), 0, 8) != 0) {
    std::string found;
    for (std::size_t i = 0; i < bytes.size() && i < 8; ++i) {
      if (i) found += ' ';
      found += detail::describe_byte(bytes[i]);
    }
    MAMMOCL_THROW(io_error, who, ": not a PNG file: expected the 8-byte PNG signature 0x89 'P' 'N' 'G' 0x0D 0x0A 0x1A "
                  "0x0A at byte offset 0, found ", found.empty() ? std::string("an empty file") : found);
  }
  detail::png_io_state st;
  st.data = bytes.data();
  st.size = bytes.size();
  detail::png_read_handles h;
  // No valid file needs a single libpng buffer larger than what its bytes can inflate to.
  st.alloc_cap = static_cast<std::size_t>(std::min<std::uint64_t>(
      (std::uint64_t{1} << 62), detail::deflate_max_ratio * bytes.size() + (std::uint64_t{1} << 20)));
  h.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &st, detail::png_on_error, detail::png_on_warning, &st,
                                   detail::png_capped_malloc, detail::png_free_block);
  MAMMOCL_CHECK(h.png != nullptr, io_error, who, ": libpng could not create a read structure");
  h.info = png_create_info_struct(h.png);
  MAMMOCL_CHECK(h.info != nullptr, io_error, who, ": libpng could not create an info structure");
  png_set_read_fn(h.png, &st, detail::png_read_memory);
  png_set_user_limits(h.png, 1u << 24, 1u << 24);
  auto libpng_failed = [&]() { MAMMOCL_THROW(io_error, who, ": libpng: ", st.message); };

  detail::png_header hd;
  if (!detail::png_step_read_info(h.png, h.info, &hd)) libpng_failed();
  const bool grey = hd.color_type == PNG_COLOR_TYPE_GRAY || hd.color_type == PNG_COLOR_TYPE_GRAY_ALPHA;
  if (!grey && !opt.convert_rgb_to_grey)
    MAMMOCL_THROW(io_error, who, ": colour type ", hd.color_type, " (", detail::png_color_type_name(hd.color_type),
                  ") is not greyscale; set png_read_options::convert_rgb_to_grey to convert it with ITU-R BT.601 "
                  "luma (0.299 R + 0.587 G + 0.114 B)");
  const std::uint64_t w = hd.width, ht = hd.height;
  MAMMOCL_CHECK(w * ht <= static_cast<std::uint64_t>(opt.max_pixels), io_error, who, ": the header claims ", w, " x ",
                ht, " = ", w * ht, " pixels, more than png_read_options::max_pixels = ", opt.max_pixels);
  const int file_channels = hd.color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                            : hd.color_type == PNG_COLOR_TYPE_RGB      ? 3
                            : hd.color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4
                                                                        : 1;
  const std::uint64_t raw = ht * ((w * static_cast<std::uint64_t>(hd.bit_depth * file_channels) + 7) / 8);
  MAMMOCL_CHECK(raw <= detail::deflate_max_ratio * bytes.size(), io_error, who, ": the header claims ", w, " x ", ht,
                " pixels (", raw, " bytes of samples), more than a ", bytes.size(),
                "-byte file can hold (deflate expands at most 1032:1)");

  std::size_t rowbytes = 0;
  int channels = 0, depth = 0;
  if (!detail::png_step_transforms(h.png, h.info, hd.color_type == PNG_COLOR_TYPE_PALETTE,
                                   grey && hd.bit_depth < 8, &rowbytes, &channels, &depth))
    libpng_failed();
  const std::size_t bps = depth == 16 ? 2 : 1;
  MAMMOCL_CHECK(rowbytes == static_cast<std::size_t>(w) * static_cast<std::size_t>(channels) * bps, io_error, who,
                ": unexpected row layout after libpng's transforms (", rowbytes, " bytes for ", w, " pixels of ",
                channels, " channel(s) at ", depth, " bits)");
  std::vector<png_byte> buf(rowbytes * static_cast<std::size_t>(ht));
  std::vector<png_bytep> rows(static_cast<std::size_t>(ht));
  for (std::size_t r = 0; r < rows.size(); ++r) rows[r] = buf.data() + r * rowbytes;
  if (!detail::png_step_read_rows(h.png, h.info, rows.data())) libpng_failed();

  image img;
  img.rows = static_cast<std::int64_t>(ht);
  img.cols = static_cast<std::int64_t>(w);
  img.pixels.resize(static_cast<std::size_t>(w * ht));
  const std::size_t n = img.pixels.size();
  const std::size_t stride = static_cast<std::size_t>(channels) * bps;
  auto sample = [&](std::size_t i, std::size_t c) -> double {
    const png_byte* p = buf.data() + i * stride + c * bps;
    return bps == 1 ? p[0] : static_cast<double>((unsigned{p[0]} << 8) | p[1]);
  };
  if (channels >= 3) {
    for (std::size_t i = 0; i < n; ++i)
      img.pixels[i] = static_cast<float>(0.299 * sample(i, 0) + 0.587 * sample(i, 1) + 0.114 * sample(i, 2));
  } else {
    for (std::size_t i = 0; i < n; ++i) img.pixels[i] = static_cast<float>(sample(i, 0));
  }
  const int bits = hd.color_type == PNG_COLOR_TYPE_PALETTE ? 8 : hd.bit_depth;
  img.meta.source = std::string(name);
  img.meta.bits_stored = bits;
  img.meta.min_value = 0.0;
  img.meta.max_value = static_cast<double>((std::uint32_t{1} << bits) - 1);
  img.meta.photometric = "MONOCHROME2";
  return img;
}

/// Reads a PNG file; see the memory overload.
[[nodiscard]] inline image read_png(const std::filesystem::path& path, const png_read_options& opt = {}) {
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, "read_png");
  return read_png(std::span<const std::uint8_t>(bytes), path.string(), opt);
}

/// Encodes `img` as a greyscale PNG of `bits` = 8 or 16 (0: 8 when `meta.max_value` <= 255, else 16).
/// Pixels are rounded to the nearest integer and must lie in [0, 2^bits - 1] (config_error naming the
/// pixel otherwise; nothing is scaled). `name` only labels error messages.
[[nodiscard]] inline std::vector<std::uint8_t> encode_png(const image& img, int bits = 0, std::string_view name = "") {
  std::string who = "write_png";
  if (!name.empty()) (who += ": ") += name;
  detail::check_image_to_write(img, who);
  if (bits == 0) bits = img.meta.max_value <= 255.0 ? 8 : 16;
  MAMMOCL_CHECK(bits == 8 || bits == 16, config_error, who, ": bit depth ", bits, "; expected 8 or 16 (or 0)");
  MAMMOCL_CHECK(img.rows <= (1 << 24) && img.cols <= (1 << 24), config_error, who, ": ", img.rows, " x ", img.cols,
                " is larger than the 16777216 x 16777216 this writer allows");
  const std::uint32_t maxval = bits == 8 ? 255u : 65535u;
  const std::size_t bps = bits / 8, cols = static_cast<std::size_t>(img.cols);
  std::vector<png_byte> buf(img.pixels.size() * bps);
  for (std::size_t i = 0; i < img.pixels.size(); ++i) {
    const std::uint32_t v = detail::sample_to_write(img, i, maxval, who);
    if (bps == 1) {
      buf[i] = static_cast<png_byte>(v);
    } else {
      buf[2 * i] = static_cast<png_byte>(v >> 8);  // PNG stores 16-bit samples big-endian
      buf[2 * i + 1] = static_cast<png_byte>(v & 0xff);
    }
  }
  std::vector<png_bytep> rows(static_cast<std::size_t>(img.rows));
  for (std::size_t r = 0; r < rows.size(); ++r) rows[r] = buf.data() + r * cols * bps;

  std::vector<std::uint8_t> out;
  out.reserve(buf.size() / 2 + 1024);
  detail::png_io_state st;
  st.out = &out;
  detail::png_write_handles h;
  h.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, detail::png_on_error, detail::png_on_warning);
  MAMMOCL_CHECK(h.png != nullptr, io_error, who, ": libpng could not create a write structure");
  h.info = png_create_info_struct(h.png);
  MAMMOCL_CHECK(h.info != nullptr, io_error, who, ": libpng could not create an info structure");
  png_set_write_fn(h.png, &st, detail::png_write_memory, detail::png_flush_nothing);
  if (!detail::png_step_write(h.png, h.info, static_cast<png_uint_32>(img.cols), static_cast<png_uint_32>(img.rows),
                              bits, rows.data()))
    MAMMOCL_THROW(io_error, who, ": libpng: ", st.message);
  return out;
}

/// Writes `img` as a greyscale PNG file atomically (see `encode_png` for `bits` and the value rules).
inline void write_png(const std::filesystem::path& path, const image& img, int bits = 0) {
  const std::vector<std::uint8_t> bytes = encode_png(img, bits, path.string());
  detail::write_file_atomically(path, bytes, "write_png");
}

}  // namespace mammocl::data
