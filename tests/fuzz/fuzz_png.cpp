// Fuzz harness: mammocl::data::read_png (data/png.hpp), libpng behind a memory reader, its error hook
// and the reader's own size checks (deflate ratio, max_pixels). Inputs of odd length are read with
// convert_rgb_to_grey, so palette/RGB/RGBA conversion runs too. A decoded image must hold rows x cols
// pixels within [0, meta.max_value]. mammocl::error is the accepted failure.
#include <png.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_target.hpp"
#include "mammocl/data/png.hpp"
#include "real_crop.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mammocl::data;
  try {
    d::png_read_options opt;
    opt.convert_rgb_to_grey = size % 2 == 1;
    const d::image img = d::read_png(std::span(data, size), "fuzz.png", opt);
    if (img.rows <= 0 || img.cols <= 0 || img.pixels.size() != static_cast<std::size_t>(img.rows * img.cols))
      __builtin_trap();
    for (const float v : img.pixels)
      if (!(v >= img.meta.min_value && v <= img.meta.max_value)) __builtin_trap();
  } catch (const mammocl::error&) {
  }
  return 0;
}

namespace {
/// A PNG of the crop in one of libpng's simplified-API formats (colour, alpha, palette).
mammocl::fuzz::bytes encode_with_libpng(const mammocl::data::image& grey, std::uint32_t format) {
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  im.width = static_cast<png_uint_32>(grey.cols);
  im.height = static_cast<png_uint_32>(grey.rows);
  im.format = format;
  const std::size_t channels = PNG_IMAGE_SAMPLE_CHANNELS(format);
  std::vector<std::uint8_t> px(grey.size() * channels);
  for (std::size_t i = 0; i < grey.size(); ++i)
    for (std::size_t c = 0; c < channels; ++c)
      px[i * channels + c] = static_cast<std::uint8_t>(std::clamp(grey.pixels[i] + 17.0f * float(c), 0.0f, 255.0f));
  png_alloc_size_t n = 0;
  if (!png_image_write_to_memory(&im, nullptr, &n, 0, px.data(), 0, nullptr)) return {};
  mammocl::fuzz::bytes out(n);
  if (!png_image_write_to_memory(&im, out.data(), &n, 0, px.data(), 0, nullptr)) return {};
  out.resize(n);
  return out;
}
}  // namespace

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "png";
  // The shared data folder holds no PNG: every seed is a crop of a real mini-MIAS image, encoded here.
  t.generate = [](const std::filesystem::path& root) {
    namespace d = mammocl::data;
    const d::image crop = real_crop(root, 16, 12);
    std::vector<generated_seed> out{{"grey 8-bit", d::encode_png(crop, 8)},
                                    {"grey 16-bit", d::encode_png(to_16bit(crop), 16)},
                                    {"RGB", encode_with_libpng(crop, PNG_FORMAT_RGB)},
                                    {"RGBA", encode_with_libpng(crop, PNG_FORMAT_RGBA)},
                                    {"grey+alpha", encode_with_libpng(crop, PNG_FORMAT_GA)},
                                    {"palette", encode_with_libpng(crop, PNG_FORMAT_RGB_COLORMAP)}};
    std::erase_if(out, [](const generated_seed& s) { return s.data.empty(); });
    return out;
  };
  t.dictionary = {"IHDR", "IDAT", "IEND", "PLTE", "tRNS", "gAMA", "sBIT", "iCCP", "zTXt", "\x89PNG\r\n\x1a\n",
                  std::string("\x00\x00\x00\x0d", 4), std::string("\xff\xff\xff\xff", 4)};
  t.max_len = 8192;
  return t;
}
