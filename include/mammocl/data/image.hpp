#pragma once
/// `data::image`: one single-channel image in float, plus what its source said about it. Every reader
/// (PGM, PNG, DICOM) returns this type and every later stage (VOI LUT, segmentation, patch sampling,
/// augmentation) consumes it, so the pixel convention is fixed here:
///  - row-major, `rows x cols`, `pixels[r * cols + c]`, row 0 at the top of the displayed image;
///  - values are the stored values after the Modality LUT (rescale slope and intercept) and, for
///    MONOCHROME1, after inversion, so that larger always means brighter (denser tissue);
///  - `meta.max_value` is the largest value the source could hold (255 for 8-bit PGM, 2^bits_stored - 1
///    for unsigned DICOM, ...); `normalized()` divides by it to give [0, 1].
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mammocl/core/error.hpp"

namespace mammocl::data {

/// What the source file said about an image; fields the source does not have keep their defaults.
struct image_metadata {
  std::string source;                 ///< file the image came from ("" when generated)
  std::string patient_id;             ///< patient identifier, used for patient-level splits
  std::string laterality;             ///< "L", "R" or ""
  std::string view;                   ///< "CC", "MLO", ... or ""
  std::string presentation_intent;    ///< "FOR PRESENTATION", "FOR PROCESSING" or ""
  std::string photometric = "MONOCHROME2";  ///< as stored; pixels are already inverted for MONOCHROME1
  int bits_stored = 8;                ///< bits per stored sample
  bool is_signed = false;             ///< Pixel Representation 1
  double min_value = 0.0;             ///< smallest value the source could hold (after rescale)
  double max_value = 255.0;           ///< largest value the source could hold (after rescale)
  double rescale_slope = 1.0;         ///< Modality LUT, already applied to `pixels`
  double rescale_intercept = 0.0;
  std::optional<double> pixel_spacing_mm_row, pixel_spacing_mm_col;         ///< (0028,0030)
  std::optional<double> imager_spacing_mm_row, imager_spacing_mm_col;       ///< (0018,1164)
  std::optional<double> window_center, window_width;                         ///< first of (0028,1050/1051)
  std::string voi_lut_function;       ///< (0028,1056): "LINEAR", "LINEAR_EXACT", "SIGMOID" or ""
};

/// A single-channel float image, row-major.
struct image {
  std::int64_t rows = 0, cols = 0;
  std::vector<float> pixels;
  image_metadata meta;

  image() = default;
  image(std::int64_t r, std::int64_t c, float value = 0.0f) : rows(r), cols(c) {
    MAMMOCL_CHECK(r >= 0 && c >= 0, shape_error, "image: negative size ", r, " x ", c);
    pixels.assign(static_cast<std::size_t>(r * c), value);
  }

  [[nodiscard]] bool empty() const noexcept { return pixels.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return pixels.size(); }
  [[nodiscard]] float& operator()(std::int64_t r, std::int64_t c) noexcept {
    return pixels[static_cast<std::size_t>(r * cols + c)];
  }
  [[nodiscard]] float operator()(std::int64_t r, std::int64_t c) const noexcept {
    return pixels[static_cast<std::size_t>(r * cols + c)];
  }
  /// Bounds-checked access (throws shape_error naming the index and the size).
  [[nodiscard]] float at(std::int64_t r, std::int64_t c) const {
    MAMMOCL_CHECK(r >= 0 && r < rows && c >= 0 && c < cols, shape_error, "image::at(", r, ", ", c,
                  "): outside the ", rows, " x ", cols, " image", meta.source.empty() ? "" : " from ",
                  meta.source);
    return (*this)(r, c);
  }
  /// A copy with values mapped to [0, 1] by the source range [min_value, max_value].
  [[nodiscard]] image normalized() const {
    MAMMOCL_CHECK(meta.max_value > meta.min_value, config_error, "image::normalized: value range [",
                  meta.min_value, ", ", meta.max_value, "] of ", meta.source.empty() ? "image" : meta.source,
                  " is empty");
    image out = *this;
    const double lo = meta.min_value, inv = 1.0 / (meta.max_value - meta.min_value);
    for (auto& v : out.pixels) v = static_cast<float>((v - lo) * inv);
    out.meta.min_value = 0.0;
    out.meta.max_value = 1.0;
    return out;
  }
};

/// A binary mask of the same size as an image (1 inside), row-major.
struct mask {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::uint8_t> values;

  mask() = default;
  mask(std::int64_t r, std::int64_t c) : rows(r), cols(c), values(static_cast<std::size_t>(r * c), 0) {
    MAMMOCL_CHECK(r >= 0 && c >= 0, shape_error, "mask: negative size ", r, " x ", c);
  }
  [[nodiscard]] std::uint8_t& operator()(std::int64_t r, std::int64_t c) noexcept {
    return values[static_cast<std::size_t>(r * cols + c)];
  }
  [[nodiscard]] std::uint8_t operator()(std::int64_t r, std::int64_t c) const noexcept {
    return values[static_cast<std::size_t>(r * cols + c)];
  }
  [[nodiscard]] std::int64_t count() const noexcept {
    std::int64_t n = 0;
    for (auto v : values) n += v != 0;
    return n;
  }
};

}  // namespace mammocl::data
