#pragma once
/// Small valid images made from real pixels, for the seed corpora of the image harnesses: a crop of the
/// first mini-MIAS PGM of the shared data folder (in sorted order: no image is named), or, when the
/// folder is absent, a smooth synthetic ramp of the same size.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "mammocl/data/image.hpp"
#include "mammocl/data/pgm.hpp"

namespace mammocl::fuzz {

/// A `rows x cols` crop from the centre of a real mammogram, 8-bit (meta.max_value 255).
inline data::image real_crop(const std::filesystem::path& data_root, std::int64_t rows, std::int64_t cols) {
  namespace fs = std::filesystem;
  std::vector<fs::path> pgms;
  if (!data_root.empty() && fs::is_directory(data_root / "mini-mias"))
    for (const auto& f : fs::directory_iterator(data_root / "mini-mias"))
      if (f.path().extension() == ".pgm") pgms.push_back(f.path());
  std::sort(pgms.begin(), pgms.end());
  data::image out(rows, cols);
  out.meta.max_value = 255.0;
  if (pgms.empty()) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) out(r, c) = static_cast<float>((r * 7 + c * 3) % 256);
    return out;
  }
  const data::image full = data::read_pgm(pgms.front());
  const std::int64_t r0 = (full.rows - rows) / 2, c0 = (full.cols - cols) / 4;  // left of centre: breast tissue
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) out(r, c) = full(r0 + r, c0 + c);
  return out;
}

/// The same crop scaled to 16 bits (x 257, max_value 65535).
inline data::image to_16bit(data::image img) {
  for (auto& v : img.pixels) v *= 257.0f;
  img.meta.max_value = 65535.0;
  return img;
}

}  // namespace mammocl::fuzz
