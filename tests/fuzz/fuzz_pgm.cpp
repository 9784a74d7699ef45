// Fuzz harness: mammocl::data::read_pgm (data/pgm.hpp), the P2/P5 reader of mini-MIAS, through
// read_image, whose magic-byte dispatch sends "P.." inputs to it (and PNG signatures to read_png).
// A decoded image must hold rows x cols pixels within [0, meta.max_value], and encode_pgm must accept it
// back. mammocl::error is the accepted failure.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_target.hpp"
#include "mammocl/data/image_io.hpp"
#include "mammocl/data/pgm.hpp"
#include "real_crop.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mammocl::data;
  try {
    const d::image img = d::read_image(std::span(data, size), "fuzz.pgm");
    if (img.rows <= 0 || img.cols <= 0 || img.pixels.size() != static_cast<std::size_t>(img.rows * img.cols))
      __builtin_trap();
    for (const float v : img.pixels)
      if (!(v >= img.meta.min_value && v <= img.meta.max_value)) __builtin_trap();
    if (img.size() <= 4096) (void)d::encode_pgm(img);
  } catch (const mammocl::error&) {
  }
  return 0;
}

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "pgm";
  // Real mini-MIAS files: the 17-byte header and the first rows of the first two images.
  t.data_seeds = {{"mini-mias", 4096, ".pgm", 2}};
  t.generate = [](const std::filesystem::path& root) {
    namespace d = mammocl::data;
    const d::image crop = real_crop(root, 24, 20);
    d::pgm_write_options ascii;
    ascii.encoding = d::pgm_encoding::ascii;
    std::vector<generated_seed> out{
        {"P5 crop 8-bit", d::encode_pgm(crop)},
        {"P2 crop 8-bit", d::encode_pgm(crop, ascii)},
        {"P5 crop 16-bit", d::encode_pgm(to_16bit(crop))},
        {"P2 crop 16-bit", d::encode_pgm(to_16bit(crop), ascii)},
        {"P5 comments", to_bytes("P5 # width\n3 # height\n2\n# maxval\n7\n\x01\x02\x03\x04\x05\x06")},
        {"P2 one pixel", to_bytes("P2\n1 1\n1\n1\n")},
    };
    return out;
  };
  t.dictionary = {"P5", "P2", "P6", "P1", "#", "\n", " ", "255", "256", "65535", "65536", "16777216", "0"};
  t.max_len = 8192;
  return t;
}
