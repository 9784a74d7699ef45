// PGM and PNG reading and writing (data/pgm.hpp, data/png.hpp) and the format dispatch (data/image_io.hpp):
// every mini-MIAS PGM compared byte for byte with its raw file, hand-written P2/P5 files with comments,
// PNGs of every greyscale bit depth and of the colour types written here with libpng directly, round
// trips, atomic writes, and one test per malformed input with the exact message.
#include <boost/test/unit_test.hpp>

#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "mammocl/core/rng.hpp"
#include "mammocl/data/image_io.hpp"
#include "mammocl/data/pgm.hpp"
#include "mammocl/data/png.hpp"

#include "shared_data.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using mammocl::config_error;
using mammocl::io_error;
using mammocl::test::expect_error;
namespace data = mammocl::data;

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<std::uint8_t> slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(f.tellg()));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  return out;
}

data::image read_pgm_text(const std::string& s, const std::string& name = "t.pgm") {
  const auto b = bytes_of(s);
  return data::read_pgm(std::span<const std::uint8_t>(b), name);
}

/// An image with random values in [0, maxval] and both 0 and maxval present.
data::image random_image(std::int64_t rows, std::int64_t cols, std::uint32_t maxval, std::uint64_t seed) {
  data::image img(rows, cols);
  mammocl::rng g(seed);
  for (auto& v : img.pixels) v = static_cast<float>(g.below(std::uint64_t{maxval} + 1));
  img.pixels.front() = 0.0f;
  img.pixels.back() = static_cast<float>(maxval);
  img.meta.max_value = maxval;
  return img;
}

// ---- a PNG encoder written here with libpng directly, independent of data/png.hpp ------------------------

struct png_spec {
  png_uint_32 width = 0, height = 0;
  int depth = 8, color = PNG_COLOR_TYPE_GRAY;
  bool interlace = false;
  std::vector<png_color> palette;
  std::vector<std::vector<png_byte>> rows;  // packed rows exactly as PNG stores them (before filtering)
};

bool encode_steps(png_structp png, png_infop info, const png_spec* s, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, s->width, s->height, s->depth, s->color,
               s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!s->palette.empty()) png_set_PLTE(png, info, s->palette.data(), static_cast<int>(s->palette.size()));
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  return true;
}

std::vector<std::uint8_t> libpng_encode(png_spec s, const fs::path& file) {
  FILE* fp = std::fopen(file.c_str(), "wb");
  BOOST_REQUIRE(fp != nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, fp);
  std::vector<png_bytep> rows;
  for (auto& r : s.rows) rows.push_back(r.data());
  const bool ok = encode_steps(png, info, &s, rows.data());
  png_destroy_write_struct(&png, &info);
  std::fclose(fp);
  BOOST_REQUIRE(ok);
  return slurp(file);
}

/// Packs samples (already interleaved by channel) MSB first at `depth` bits, as PNG rows store them.
std::vector<png_byte> pack(const std::vector<unsigned>& samples, int depth) {
  std::vector<png_byte> out((samples.size() * static_cast<std::size_t>(depth) + 7) / 8, 0);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (depth == 16) {
      out[2 * i] = static_cast<png_byte>(samples[i] >> 8);
      out[2 * i + 1] = static_cast<png_byte>(samples[i] & 0xff);
    } else {
      const std::size_t bit = i * static_cast<std::size_t>(depth);
      out[bit / 8] |= static_cast<png_byte>(samples[i] << (8 - depth - bit % 8));
    }
  }
  return out;
}

/// CRC-32 of PNG chunks (ISO 3309 polynomial 0xEDB88320), bit by bit.
std::uint32_t crc32(const std::uint8_t* p, std::size_t n) {
  std::uint32_t c = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

/// Offset of the first chunk of type `type` (its length field) in a PNG.
std::size_t find_chunk(const std::vector<std::uint8_t>& png, const char* type) {
  std::size_t pos = 8;
  while (pos + 8 <= png.size()) {
    const std::uint32_t len = (std::uint32_t{png[pos]} << 24) | (std::uint32_t{png[pos + 1]} << 16) |
                              (std::uint32_t{png[pos + 2]} << 8) | png[pos + 3];
    if (std::equal(type, type + 4, png.begin() + static_cast<std::ptrdiff_t>(pos + 4))) return pos;
    pos += 12 + len;
  }
  BOOST_FAIL("chunk " << type << " not found");
  return 0;
}

void check_same_pixels(const data::image& a, const data::image& b) {
  BOOST_TEST_REQUIRE(a.rows == b.rows);
  BOOST_TEST_REQUIRE(a.cols == b.cols);
  BOOST_TEST_REQUIRE(a.pixels.size() == b.pixels.size());
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) mismatches += a.pixels[i] != b.pixels[i];
  BOOST_TEST(mismatches == 0u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(image_io)

// ---- real data -----------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_mini_mias_pgm_matches_its_raw_bytes) {
  const auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(*root / "mini-mias"))
    if (e.path().extension() == ".pgm") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  BOOST_TEST_REQUIRE(files.size() >= 100u);
  const std::string header = "P5\n1024 1024\n255\n";  // DATA-FORMATS.md §1.1: every file, 17 bytes
  std::size_t bad_pixels = 0, bad_reencodings = 0, via_dispatch = 0;
  for (const auto& f : files) {
    const std::vector<std::uint8_t> raw = slurp(f);
    BOOST_TEST_REQUIRE(raw.size() == header.size() + 1024u * 1024u, f);
    BOOST_TEST_REQUIRE(std::equal(header.begin(), header.end(), raw.begin()), f);
    const data::image img = data::read_pgm(f);
    BOOST_TEST_REQUIRE(img.rows == 1024);
    BOOST_TEST_REQUIRE(img.cols == 1024);
    BOOST_TEST(img.meta.max_value == 255.0);
    BOOST_TEST(img.meta.min_value == 0.0);
    BOOST_TEST(img.meta.bits_stored == 8);
    BOOST_TEST(img.meta.source == f.string());
    for (std::size_t i = 0; i < img.pixels.size(); ++i)
      bad_pixels += img.pixels[i] != static_cast<float>(raw[header.size() + i]);
    // Writing it back gives the same file, byte for byte.
    bad_reencodings += data::encode_pgm(img) != raw;
    if (&f == &files.front()) {
      check_same_pixels(data::read_image(f), img);
      ++via_dispatch;
    }
  }
  BOOST_TEST(bad_pixels == 0u);
  BOOST_TEST(bad_reencodings == 0u);
  BOOST_TEST(via_dispatch == 1u);
  BOOST_TEST_MESSAGE("read " << files.size() << " mini-MIAS images");
}

BOOST_AUTO_TEST_CASE(mini_mias_image_round_trips_through_png) {
  const auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  fs::path first;
  for (const auto& e : fs::directory_iterator(*root / "mini-mias"))
    if (e.path().extension() == ".pgm" && (first.empty() || e.path() < first)) first = e.path();
  const data::image img = data::read_pgm(first);
  mammocl::test::temp_dir dir("image_io");
  data::write_image(dir / "m.png", img);
  const data::image back = data::read_image(dir / "m.png");
  check_same_pixels(back, img);
  BOOST_TEST(back.meta.max_value == 255.0);
  BOOST_TEST(back.meta.bits_stored == 8);
}

BOOST_AUTO_TEST_CASE(truncated_real_pgm) {
  const auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  fs::path first;
  for (const auto& e : fs::directory_iterator(*root / "mini-mias"))
    if (e.path().extension() == ".pgm" && (first.empty() || e.path() < first)) first = e.path();
  const std::vector<std::uint8_t> raw = slurp(first);
  for (std::size_t keep : {std::size_t{17}, std::size_t{17 + 1000}, raw.size() - 1}) {
    const std::span<const std::uint8_t> cut(raw.data(), keep);
    expect_error<io_error>([&] { (void)data::read_pgm(cut, "cut.pgm"); },
                           "read_pgm: cut.pgm: truncated raster: the header claims 1024 x 1024 samples of 1 byte(s), "
                           "1048576 bytes from byte offset 17, but only " + std::to_string(keep - 17) + " bytes follow");
  }
  for (std::size_t keep : {std::size_t{0}, std::size_t{1}})
    expect_error<io_error>([&] { (void)data::read_pgm(std::span<const std::uint8_t>(raw.data(), keep), "cut.pgm"); },
                           "read_pgm: cut.pgm: the file holds " + std::to_string(keep) + " byte(s); expected at least");
  expect_error<io_error>([&] { (void)data::read_pgm(std::span<const std::uint8_t>(raw.data(), 8), "cut.pgm"); },
                         "read_pgm: cut.pgm: the header ends at byte offset 8 before the height");
  expect_error<io_error>([&] { (void)data::read_pgm(std::span<const std::uint8_t>(raw.data(), 9), "cut.pgm"); },
                         "read_pgm: cut.pgm: the header ends at byte offset 9 before the maxval");
  expect_error<io_error>([&] { (void)data::read_pgm(std::span<const std::uint8_t>(raw.data(), 16), "cut.pgm"); },
                         "read_pgm: cut.pgm: the header ends at byte offset 16 right after maxval");
}

// ---- hand-written PGM --------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(plain_pgm_with_comments_golden_pixels) {
  const data::image img = read_pgm_text(
      "P2\n# made by hand\n3 2 # width and height\n#another comment\n15\n0 1  2\n15 # end of row 0\n\t7\r\n8\n");
  BOOST_TEST(img.rows == 2);
  BOOST_TEST(img.cols == 3);
  const std::vector<float> want{0, 1, 2, 15, 7, 8};
  BOOST_TEST(img.pixels == want, boost::test_tools::per_element());
  BOOST_TEST(img.meta.max_value == 15.0);
  BOOST_TEST(img.meta.bits_stored == 4);
  BOOST_TEST(img.meta.source == "t.pgm");
  BOOST_TEST(img(1, 0) == 15.0f);

  // A comment glued to the magic number and to maxval; no final newline; leading zeros.
  const data::image g = read_pgm_text("P2#c\n2 1\n1000#maxval\n0999 1000");
  BOOST_TEST(g.pixels == (std::vector<float>{999, 1000}), boost::test_tools::per_element());
  BOOST_TEST(g.meta.max_value == 1000.0);
  BOOST_TEST(g.meta.bits_stored == 10);
}

BOOST_AUTO_TEST_CASE(raw_pgm_8_and_16_bit_golden_pixels) {
  std::string s8 = "P5 # comment\n2 2\n#before maxval\n255\n";
  s8 += std::string{'\x00', '\xff', '\x11', '\x80'};
  const data::image a = read_pgm_text(s8);
  BOOST_TEST(a.pixels == (std::vector<float>{0, 255, 17, 128}), boost::test_tools::per_element());
  BOOST_TEST(a.meta.bits_stored == 8);

  // maxval > 255: two bytes per sample, most significant first.
  std::string s16 = "P5\n3 1\n65535\n";
  s16 += std::string{'\x01', '\x02', '\xff', '\xfe', '\x00', '\x00'};
  const data::image b = read_pgm_text(s16);
  BOOST_TEST(b.pixels == (std::vector<float>{258, 65534, 0}), boost::test_tools::per_element());
  BOOST_TEST(b.meta.max_value == 65535.0);
  BOOST_TEST(b.meta.bits_stored == 16);

  std::string s12 = "P5\n1 1\n4095#c\n";
  s12 += std::string{'\x0f', '\xff'};
  const data::image c = read_pgm_text(s12);
  BOOST_TEST(c.pixels == (std::vector<float>{4095}), boost::test_tools::per_element());
  BOOST_TEST(c.meta.bits_stored == 12);

  // The single whitespace after maxval may itself be the start of nothing else: a raster byte that looks
  // like whitespace is data. Trailing whitespace after the raster is accepted.
  std::string sp = "P5\n2 1\n255\n";
  sp += std::string{'\n', ' ', '\n', '\n'};
  const data::image d = read_pgm_text(sp);
  BOOST_TEST(d.pixels == (std::vector<float>{10, 32}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(pgm_written_bytes_are_exact) {
  data::image img(2, 3);
  img.pixels = {0, 1, 2, 253, 254, 255};
  const auto p5 = data::encode_pgm(img);
  std::string want = "P5\n3 2\n255\n";
  want += std::string{'\x00', '\x01', '\x02', '\xfd', '\xfe', '\xff'};
  BOOST_TEST((p5 == bytes_of(want)));
  const auto p2 = data::encode_pgm(img, {data::pgm_encoding::ascii, 0});
  BOOST_TEST((p2 == bytes_of("P2\n3 2\n255\n0 1 2\n253 254 255\n")));
  img.meta.max_value = 300;
  img.pixels = {0, 1, 2, 255, 256, 300};
  const auto p16 = data::encode_pgm(img);
  std::string want16 = "P5\n3 2\n300\n";
  want16 += std::string{'\x00', '\x00', '\x00', '\x01', '\x00', '\x02', '\x00', '\xff', '\x01', '\x00', '\x01', '\x2c'};
  BOOST_TEST((p16 == bytes_of(want16)));
  // Plain lines stay within 70 characters.
  data::image wide = random_image(2, 100, 65535, 7);
  const auto text = data::encode_pgm(wide, {data::pgm_encoding::ascii, 0});
  std::size_t line = 0, longest = 0;
  for (auto ch : text) {
    line = ch == '\n' ? 0 : line + 1;
    longest = std::max(longest, line);
  }
  BOOST_TEST(longest <= 70u);
}

// ---- round trips ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(pgm_round_trips) {
  mammocl::test::temp_dir dir("image_io");
  std::uint64_t seed = 1;
  for (auto enc : {data::pgm_encoding::binary, data::pgm_encoding::ascii})
    for (std::uint32_t maxval : {1u, 255u, 256u, 4095u, 65535u})
      for (auto [r, c] : {std::pair<int, int>{1, 1}, {7, 3}, {3, 13}, {31, 17}}) {
        const data::image img = random_image(r, c, maxval, seed++);
        const fs::path p = dir / "x.pgm";
        data::write_pgm(p, img, {enc, 0});
        const data::image back = data::read_pgm(p);
        check_same_pixels(back, img);
        BOOST_TEST(back.meta.max_value == static_cast<double>(maxval));
        BOOST_TEST(back.meta.bits_stored == std::bit_width(maxval));
        const data::image mem = data::read_pgm(std::span<const std::uint8_t>(data::encode_pgm(img, {enc, 0})), "m");
        check_same_pixels(mem, img);
      }
  // Atomic writes leave no temporary file behind.
  BOOST_TEST(dir.listing() == (std::vector<std::string>{"x.pgm"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(png_round_trips) {
  mammocl::test::temp_dir dir("image_io");
  std::uint64_t seed = 100;
  for (int bits : {8, 16})
    for (auto [r, c] : {std::pair<int, int>{1, 1}, {7, 3}, {3, 13}, {64, 33}}) {
      const data::image img = random_image(r, c, bits == 8 ? 255u : 65535u, seed++);
      const fs::path p = dir / "x.png";
      data::write_png(p, img, bits);
      const data::image back = data::read_png(p);
      check_same_pixels(back, img);
      BOOST_TEST(back.meta.bits_stored == bits);
      BOOST_TEST(back.meta.max_value == (bits == 8 ? 255.0 : 65535.0));
      BOOST_TEST(back.meta.source == p.string());
      const data::image mem = data::read_png(std::span<const std::uint8_t>(data::encode_png(img, bits)), "");
      check_same_pixels(mem, img);
    }
  BOOST_TEST(dir.listing() == (std::vector<std::string>{"x.png"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(write_image_dispatch_and_depths) {
  mammocl::test::temp_dir dir("image_io");
  const data::image img12 = random_image(5, 9, 4095, 3);
  // .pgm keeps the 12-bit maxval; .PNG (any case) stores 16-bit samples with the values unchanged.
  data::write_image(dir / "a.pgm", img12);
  data::write_image(dir / "a.PNG", img12);
  const data::image p = data::read_image(dir / "a.pgm"), q = data::read_image(dir / "a.PNG");
  check_same_pixels(p, img12);
  check_same_pixels(q, img12);
  BOOST_TEST(p.meta.max_value == 4095.0);
  BOOST_TEST(q.meta.max_value == 65535.0);
  // bits = 16 with an 8-bit max_value: maxval 65535; bits = 8 keeps an 8-bit maxval.
  data::image img100 = random_image(4, 4, 100, 5);
  data::write_image(dir / "b.pgm", img100, 16);
  BOOST_TEST(data::read_image(dir / "b.pgm").meta.max_value == 65535.0);
  data::write_image(dir / "c.pgm", img100, 8);
  BOOST_TEST(data::read_image(dir / "c.pgm").meta.max_value == 100.0);
  check_same_pixels(data::read_image(dir / "c.pgm"), img100);
  // Non-integral values are rounded to the nearest integer.
  data::image frac(1, 3);
  frac.pixels = {0.4f, 1.5f, 254.6f};
  data::write_image(dir / "f.png", frac, 8);
  BOOST_TEST(data::read_image(dir / "f.png").pixels == (std::vector<float>{0, 2, 255}), boost::test_tools::per_element());
  // The dispatch goes by content, not by name.
  fs::rename(dir / "a.pgm", dir / "renamed.png");
  check_same_pixels(data::read_image(dir / "renamed.png"), img12);
}

// ---- PNG colour types and bit depths written with libpng here ------------------------------------------------

BOOST_AUTO_TEST_CASE(png_grey_bit_depths_1_2_4) {
  mammocl::test::temp_dir dir("image_io");
  for (int depth : {1, 2, 4, 8, 16})
    for (bool interlace : {false, true}) {
      png_spec s;
      s.width = 13;
      s.height = 5;
      s.depth = depth;
      s.interlace = interlace;
      const unsigned top = (1u << depth) - 1;
      std::vector<float> want;
      for (png_uint_32 r = 0; r < s.height; ++r) {
        std::vector<unsigned> row;
        for (png_uint_32 c = 0; c < s.width; ++c) {
          const unsigned v = (r * 7 + c * 3) % (top + 1);
          row.push_back(v);
          want.push_back(static_cast<float>(v));
        }
        s.rows.push_back(pack(row, depth));
      }
      const auto bytes = libpng_encode(s, dir / "d.png");
      const data::image img = data::read_png(std::span<const std::uint8_t>(bytes), "d.png");
      BOOST_TEST(img.rows == 5);
      BOOST_TEST(img.cols == 13);
      BOOST_TEST(img.pixels == want, boost::test_tools::per_element());
      BOOST_TEST(img.meta.bits_stored == depth);
      BOOST_TEST(img.meta.max_value == static_cast<double>(top));
    }
}

BOOST_AUTO_TEST_CASE(png_grey_alpha_drops_alpha) {
  mammocl::test::temp_dir dir("image_io");
  for (int depth : {8, 16}) {
    png_spec s;
    s.width = 3;
    s.height = 2;
    s.depth = depth;
    s.color = PNG_COLOR_TYPE_GRAY_ALPHA;
    s.rows = {pack({0, 9, 100, 0, 7, 300}, depth), pack({255, 255, 1, 2, 3, 4}, depth)};
    const data::image img = data::read_png(std::span<const std::uint8_t>(libpng_encode(s, dir / "ga.png")), "ga.png");
    BOOST_TEST(img.pixels == (std::vector<float>{0, 100, 7, 255, 1, 3}), boost::test_tools::per_element());
    BOOST_TEST(img.meta.max_value == (depth == 8 ? 255.0 : 65535.0));
  }
}

BOOST_AUTO_TEST_CASE(png_rgb_and_palette_with_bt601_luma) {
  mammocl::test::temp_dir dir("image_io");
  data::png_read_options opt;
  opt.convert_rgb_to_grey = true;
  // Luma by hand: 0.299 R + 0.587 G + 0.114 B.
  const std::vector<float> want{76.245f, 149.685f, 29.07f, 18.15f};
  png_spec rgb;
  rgb.width = 2;
  rgb.height = 2;
  rgb.color = PNG_COLOR_TYPE_RGB;
  rgb.rows = {pack({255, 0, 0, 0, 255, 0}, 8), pack({0, 0, 255, 10, 20, 30}, 8)};
  const auto rgb_bytes = libpng_encode(rgb, dir / "rgb.png");
  const data::image a = data::read_png(std::span<const std::uint8_t>(rgb_bytes), "rgb.png", opt);
  BOOST_TEST(a.pixels == want, boost::test_tools::tolerance(1e-5f) << boost::test_tools::per_element());
  BOOST_TEST(a.meta.max_value == 255.0);
  // Without the option: the colour type is named.
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(rgb_bytes), "rgb.png"); },
                         "read_png: rgb.png: colour type 2 (RGB) is not greyscale; set "
                         "png_read_options::convert_rgb_to_grey to convert it with ITU-R BT.601 luma");
  // The same through read_image's options.
  data::image_read_options iopt;
  iopt.png.convert_rgb_to_grey = true;
  BOOST_TEST(data::read_image(std::span<const std::uint8_t>(rgb_bytes), "rgb.png", iopt).pixels == want,
             boost::test_tools::tolerance(1e-5f) << boost::test_tools::per_element());

  // RGBA at 16 bits: alpha dropped, luma on the 16-bit scale.
  png_spec rgba;
  rgba.width = 1;
  rgba.height = 1;
  rgba.depth = 16;
  rgba.color = PNG_COLOR_TYPE_RGB_ALPHA;
  rgba.rows = {pack({1000, 2000, 3000, 7}, 16)};
  const data::image b = data::read_png(std::span<const std::uint8_t>(libpng_encode(rgba, dir / "rgba.png")), "x", opt);
  BOOST_TEST(b.pixels[0] == 1815.0f, boost::test_tools::tolerance(1e-5f));  // 299 + 1174 + 342
  BOOST_TEST(b.meta.max_value == 65535.0);

  // A 2-bit palette image: entries expanded, then luma.
  png_spec pal;
  pal.width = 4;
  pal.height = 1;
  pal.depth = 2;
  pal.color = PNG_COLOR_TYPE_PALETTE;
  pal.palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
  pal.rows = {pack({3, 2, 1, 0}, 2)};
  const auto pal_bytes = libpng_encode(pal, dir / "pal.png");
  const data::image c = data::read_png(std::span<const std::uint8_t>(pal_bytes), "pal.png", opt);
  BOOST_TEST(c.pixels == (std::vector<float>{18.15f, 29.07f, 149.685f, 76.245f}),
             boost::test_tools::tolerance(1e-5f) << boost::test_tools::per_element());
  BOOST_TEST(c.meta.max_value == 255.0);
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(pal_bytes), "pal.png"); },
                         "read_png: pal.png: colour type 3 (palette) is not greyscale");
}

// ---- bad input -------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(pgm_bad_magic) {
  expect_error<io_error>([] { (void)read_pgm_text("P6\n1 1\n255\n\x01\x02\x03"); },
                         "read_pgm: t.pgm: byte offset 0: the magic number 'P6' marks a raw PPM (colour), not a "
                         "greyscale PGM; expected 'P2' or 'P5'");
  expect_error<io_error>([] { (void)read_pgm_text("XY\n1 1\n255\n\x01"); },
                         "read_pgm: t.pgm: byte offset 0: expected the magic number 'P2' or 'P5', found 'X' 'Y'");
  expect_error<io_error>([] { (void)read_pgm_text("P51 1\n255\n\x01"); },
                         "read_pgm: t.pgm: byte offset 2: expected whitespace after the magic number, found '1'");
}

BOOST_AUTO_TEST_CASE(pgm_bad_header_fields) {
  expect_error<io_error>([] { (void)read_pgm_text("P5\n1 1\n0\n\x01"); },
                         "read_pgm: t.pgm: maxval 0 at byte offset 7: expected 1..65535");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n1 1\n70000\n\x01\x01"); },
                         "read_pgm: t.pgm: maxval 70000 at byte offset 7: expected 1..65535");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n0 1\n255\n"); },
                         "read_pgm: t.pgm: width 0 at byte offset 3: expected 1..16777216");
  expect_error<io_error>([] { (void)read_pgm_text("P2\n1 0\n255\n"); },
                         "read_pgm: t.pgm: height 0 at byte offset 5: expected 1..16777216");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n12a 4\n255\n"); },
                         "read_pgm: t.pgm: width at byte offset 3: expected a decimal number followed by whitespace, "
                         "found 'a' at byte offset 5");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n12 x\n255\n"); },
                         "read_pgm: t.pgm: height at byte offset 6: expected a decimal number, found 'x'");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n12 -4\n255\n"); },
                         "read_pgm: t.pgm: height at byte offset 6: expected a decimal number, found '-'");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n12 4 # no maxval"); },
                         "read_pgm: t.pgm: the header ends at byte offset 19 before the maxval");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n1 1\n255"); },
                         "read_pgm: t.pgm: the header ends at byte offset 10 right after maxval; expected one "
                         "whitespace character and then the raster");
}

BOOST_AUTO_TEST_CASE(pgm_huge_sizes_are_refused_before_allocating) {
  expect_error<io_error>([] { (void)read_pgm_text("P5\n99999999999999999999999 1\n255\n\x01"); },
                         "read_pgm: t.pgm: width at byte offset 3 is more than 2^40; expected 1..16777216");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n20000000 1\n255\n\x01"); },
                         "read_pgm: t.pgm: width 20000000 at byte offset 3: expected 1..16777216");
  // Within the per-dimension limit, but far more samples than the file holds.
  expect_error<io_error>([] { (void)read_pgm_text("P5\n16777216 16777216\n65535\n\x01\x02"); },
                         "read_pgm: t.pgm: truncated raster: the header claims 16777216 x 16777216 samples of 2 "
                         "byte(s), 562949953421312 bytes from byte offset 27, but only 2 bytes follow");
  expect_error<io_error>([] { (void)read_pgm_text("P2\n16777216 16777216\n255\n1 2 3"); },
                         "read_pgm: t.pgm: truncated raster: the header claims 16777216 x 16777216 = 281474976710656 "
                         "ASCII samples, which need at least 562949953421311 bytes from byte offset 25, but only 5 "
                         "bytes follow");
}

BOOST_AUTO_TEST_CASE(pgm_truncated_and_bad_samples) {
  expect_error<io_error>([] { (void)read_pgm_text(std::string("P5\n4 4\n255\n") + std::string(10, 'a')); },
                         "read_pgm: t.pgm: truncated raster: the header claims 4 x 4 samples of 1 byte(s), 16 bytes "
                         "from byte offset 11, but only 10 bytes follow");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n2 1\n256\n\x01\x02\x03"); },
                         "truncated raster: the header claims 2 x 1 samples of 2 byte(s), 4 bytes from byte offset 11, "
                         "but only 3 bytes follow");
  expect_error<io_error>([] { (void)read_pgm_text("P2\n3 1\n255\n1       2"); },
                         "read_pgm: t.pgm: truncated raster: the file ends at byte offset 20 after 2 of 3 samples (row "
                         "0, column 2 is missing)");
  expect_error<io_error>([] { (void)read_pgm_text("P2\n2 1\n10\n3 11\n"); },
                         "read_pgm: t.pgm: sample 11 at row 0, column 1 (byte offset 12) exceeds maxval 10");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n1 1\n100\n\xc8"); },
                         "read_pgm: t.pgm: sample 200 at row 0, column 0 (byte offset 11) exceeds maxval 100");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n1 1\n1000\n\x03\xe9"); },
                         "read_pgm: t.pgm: sample 1001 at row 0, column 0 (byte offset 12) exceeds maxval 1000");
  expect_error<io_error>([] { (void)read_pgm_text("P2\n2 1\n10\n3 x\n"); },
                         "read_pgm: t.pgm: sample at row 0, column 1 (byte offset 12): expected a decimal number, "
                         "found 'x'");
  expect_error<io_error>([] { (void)read_pgm_text("P2\n2 1\n10\n3 4x\n"); },
                         "read_pgm: t.pgm: sample at row 0, column 1 (byte offset 12): expected a decimal number "
                         "followed by whitespace, found 'x' at byte offset 13");
}

BOOST_AUTO_TEST_CASE(pgm_trailing_data_policy) {
  // Whitespace after the raster is fine; anything else is refused (also a second image).
  BOOST_TEST(read_pgm_text("P5\n1 1\n255\n\x05\n\n  ").pixels[0] == 5.0f);
  BOOST_TEST(read_pgm_text("P2\n1 1\n255\n5\n# a final comment\n").pixels[0] == 5.0f);
  expect_error<io_error>([] { (void)read_pgm_text("P5\n1 1\n255\n\x05\nx"); },
                         "read_pgm: t.pgm: 2 byte(s) of trailing data after the raster, from byte offset 12 (first "
                         "non-whitespace 'x' at byte offset 13); expected the end of the file");
  expect_error<io_error>([] { (void)read_pgm_text("P5\n1 1\n255\n\x05P5\n1 1\n255\n\x06"); },
                         "read_pgm: t.pgm: 12 byte(s) of trailing data after the raster, from byte offset 12");
  expect_error<io_error>([] { (void)read_pgm_text("P2\n1 1\n255\n5 6\n"); },
                         "read_pgm: t.pgm: trailing data after the last of the 1 samples: '6' at byte offset 13 (the "
                         "raster ended at byte offset 12)");
}

BOOST_AUTO_TEST_CASE(png_truncated) {
  const data::image img = random_image(40, 30, 255, 11);
  const auto full = data::encode_png(img, 8);
  for (std::size_t keep : {full.size() / 2, full.size() - 12, full.size() - 1}) {
    const std::span<const std::uint8_t> cut(full.data(), keep);
    expect_error<io_error>([&] { (void)data::read_png(cut, "cut.png"); },
                           "read_png: cut.png: libpng: unexpected end of data at byte offset");
    expect_error<io_error>([&] { (void)data::read_png(cut, "cut.png"); },
                           "but the file ends at " + std::to_string(keep) + " (truncated file)");
  }
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(full.data(), 5), "cut.png"); },
                         "read_png: cut.png: not a PNG file: expected the 8-byte PNG signature");
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(full.data(), 20), "cut.png"); },
                         "read_png: cut.png: libpng: unexpected end of data at byte offset 16: 13 more byte(s) needed "
                         "but the file ends at 20 (truncated file)");
}

BOOST_AUTO_TEST_CASE(png_corrupt_crc) {
  const data::image img = random_image(16, 16, 255, 12);
  const auto good = data::encode_png(img, 8);
  auto bad = good;
  const std::size_t idat = find_chunk(bad, "IDAT");
  const std::size_t idat_len = (std::size_t{bad[idat + 2]} << 8) | bad[idat + 3];
  bad[idat + 8 + idat_len] ^= 0x40;  // the stored CRC itself: the data still inflates
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(bad), "crc.png"); },
                         "read_png: crc.png: libpng: IDAT: CRC error");
  auto bad_ihdr = good;
  bad_ihdr[find_chunk(bad_ihdr, "IHDR") + 8 + 3] ^= 0x01;  // width changes, CRC does not
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(bad_ihdr), "crc.png"); },
                         "read_png: crc.png: libpng: IHDR: CRC error");
}

BOOST_AUTO_TEST_CASE(png_huge_header_is_refused_before_allocating) {
  const data::image img(1, 1, 7.0f);
  auto png = data::encode_png(img, 8);
  const std::size_t ihdr = find_chunk(png, "IHDR");
  put_be32(&png[ihdr + 8], 100000);  // width
  put_be32(&png[ihdr + 12], 2000);   // height
  put_be32(&png[ihdr + 8 + 13], crc32(&png[ihdr + 4], 4 + 13));  // a valid CRC over type + data
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(png), "big.png"); },
                         "read_png: big.png: the header claims 100000 x 2000 pixels (200000000 bytes of samples), "
                         "more than a " + std::to_string(png.size()) + "-byte file can hold (deflate expands at most "
                         "1032:1)");
  data::png_read_options opt;
  opt.max_pixels = 1000;
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(png), "big.png", opt); },
                         "read_png: big.png: the header claims 100000 x 2000 = 200000000 pixels, more than "
                         "png_read_options::max_pixels = 1000");
  // Beyond libpng's own limit (set to 2^24 per dimension).
  put_be32(&png[ihdr + 8], 1u << 25);
  put_be32(&png[ihdr + 8 + 13], crc32(&png[ihdr + 4], 4 + 13));
  expect_error<io_error>([&] { (void)data::read_png(std::span<const std::uint8_t>(png), "big.png"); },
                         "read_png: big.png: libpng: ");
}

BOOST_AUTO_TEST_CASE(read_image_dispatch_errors) {
  const std::vector<std::uint8_t> junk = bytes_of("GIF89a......");
  expect_error<io_error>([&] { (void)data::read_image(std::span<const std::uint8_t>(junk), "x.gif"); },
                         "read_image: x.gif: unknown image format: the first bytes are 'G' 'I' 'F' '8' '9' 'a' '.' "
                         "'.'; expected a PGM ('P2' or 'P5'), a PNG signature, or a DICOM file");
  std::vector<std::uint8_t> dicm(200, 0);
  std::copy_n("DICM", 4, dicm.begin() + 128);
  expect_error<io_error>([&] { (void)data::read_image(std::span<const std::uint8_t>(dicm), "x.dcm"); },
                         "read_image: x.dcm: is a DICOM file ('DICM' at byte offset 128); read it with "
                         "mammocl::data::read_dicom: #include \"mammocl/data/dicom.hpp\" and link the target "
                         "mammocl::dicom");
  if (const auto root = mammocl::test::shared_data("dicom/clunie_MG_pixelspacing_test.dcm")) {
    const fs::path dcm = *root / "dicom" / "clunie_MG_pixelspacing_test.dcm";
    expect_error<io_error>([&] { (void)data::read_image(dcm); },
                           "read_image: " + dcm.string() + ": is a DICOM file");
  }
  // A PBM is routed to the PGM reader, which names it.
  expect_error<io_error>([] { (void)data::read_image(std::span<const std::uint8_t>(bytes_of("P4\n1 1\n\x80")), "b"); },
                         "read_pgm: b: byte offset 0: the magic number 'P4' marks a raw PBM (bitmap)");
  expect_error<io_error>([] { (void)data::read_image(fs::path("/nonexistent/dir/none.pgm")); },
                         "read_image: cannot open '/nonexistent/dir/none.pgm': No such file or directory");
  expect_error<io_error>([] { (void)data::read_pgm(fs::path("/nonexistent/dir/none.pgm")); },
                         "read_pgm: cannot open '/nonexistent/dir/none.pgm'");
}

BOOST_AUTO_TEST_CASE(write_errors) {
  mammocl::test::temp_dir dir("image_io");
  data::image img(2, 3);
  img.pixels = {0, 1, 2, 3, 4, 256};
  expect_error<config_error>([&] { data::write_image(dir / "x.pgm", img, 8); },
                             "write_pgm: " + (dir / "x.pgm").string() +
                                 ": pixel (row 1, column 2) = 256 is outside [0, 255] after rounding");
  expect_error<config_error>([&] { data::write_image(dir / "x.png", img, 8); },
                             "write_png: " + (dir / "x.png").string() + ": pixel (row 1, column 2) = 256 is outside [0, 255]");
  img.pixels[5] = -0.7f;
  expect_error<config_error>([&] { (void)data::encode_png(img, 16); }, "pixel (row 1, column 2) = -0.7 is outside [0, 65535]");
  img.pixels[5] = std::numeric_limits<float>::quiet_NaN();
  expect_error<config_error>([&] { (void)data::encode_pgm(img); }, "pixel (row 1, column 2) = nan is outside [0, 255]");
  img.pixels[5] = 1.0f;
  expect_error<config_error>([&] { data::write_image(dir / "x.jpg", img); },
                             "write_image: " + (dir / "x.jpg").string() + ": unknown extension '.jpg'; expected .pgm or .png");
  expect_error<config_error>([&] { data::write_image(dir / "x.png", img, 12); }, "bits = 12; expected 8, 16 or 0");
  expect_error<config_error>([&] { (void)data::encode_png(img, 4); }, "write_png: bit depth 4; expected 8 or 16");
  data::image unit = img.normalized();  // max_value 1.0 is fine, 0.5 is not an integer
  unit.meta.max_value = 0.5;
  expect_error<config_error>([&] { (void)data::encode_pgm(unit); },
                             "write_pgm: the image's max_value 0.5 is not an integer in 1..65535");
  expect_error<config_error>([&] { (void)data::encode_pgm(img, {data::pgm_encoding::binary, 70000}); },
                             "write_pgm: pgm_write_options::maxval = 70000; expected 1..65535");
  expect_error<config_error>([&] { (void)data::encode_pgm(data::image{}); }, "write_pgm: cannot write an empty image (0 x 0)");
  expect_error<io_error>([&] { data::write_pgm(dir / "missing" / "x.pgm", img); },
                         "write_pgm: cannot create the temporary file '" + (dir / "missing").string());
  // A failed write leaves nothing behind and keeps an existing file as it was.
  data::write_pgm(dir / "keep.pgm", img);
  const auto before = slurp(dir / "keep.pgm");
  data::image worse = img;
  worse.pixels[0] = 999;
  BOOST_CHECK_THROW(data::write_pgm(dir / "keep.pgm", worse), config_error);
  BOOST_TEST((slurp(dir / "keep.pgm") == before));
  BOOST_TEST(dir.listing() == (std::vector<std::string>{"keep.pgm"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
