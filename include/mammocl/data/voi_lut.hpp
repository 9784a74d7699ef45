#pragma once
/// DICOM VOI LUT functions and MammoCL's LUT domain transform (METHOD.md §2.1).
///
/// Part 1, the three VOI LUT functions of DICOM PS3.3 (current edition), evaluated in double:
///  - LINEAR        C.11.2.1.2.1, with its `c - 0.5` and `w - 1` terms; needs w >= 1;
///  - LINEAR_EXACT  C.11.2.1.3.2, y = ((x - c)/w + 0.5)(ymax - ymin) + ymin, clipped; needs w > 0;
///  - SIGMOID       C.11.2.1.3.1, y = (ymax - ymin)/(1 + exp(-4(x - c)/w)) + ymin; needs w > 0; never
///                  rounded or clipped (pydicom `apply_windowing` does the same).
/// Part 2, the domain transform that builds domain B from a normalised image: c = median and
/// w = p99 - p1 of the breast pixels, then SIGMOID to [0, 1] in float. The parameters have an exact
/// text form so that domain B can be regenerated bit for bit.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/image.hpp"
#include "mammocl/data/pgm.hpp"  // detail::read_file_bytes, detail::write_file_atomically

namespace mammocl::data {

// ------------------------------------------------------------------------------------------------
// VOI LUT functions
// ------------------------------------------------------------------------------------------------

/// The VOI LUT Function (0028,1056) values MammoCL evaluates.
enum class voi_function { linear, linear_exact, sigmoid };

/// The DICOM spelling of `f`: "LINEAR", "LINEAR_EXACT" or "SIGMOID".
[[nodiscard]] constexpr std::string_view to_string(voi_function f) noexcept {
  switch (f) {
    case voi_function::linear: return "LINEAR";
    case voi_function::linear_exact: return "LINEAR_EXACT";
    case voi_function::sigmoid: return "SIGMOID";
  }
  return "?";
}

/// Parses a VOI LUT Function value. DICOM pads CS values with trailing spaces, so leading and trailing
/// spaces are ignored; an empty value means LINEAR, the default when (0028,1056) is absent
/// (PS3.3 C.11.2.1.3). Case matters, as in DICOM. Throws config_error naming the value otherwise.
[[nodiscard]] inline voi_function parse_voi_function(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  if (s.empty() || s == "LINEAR") return voi_function::linear;
  if (s == "LINEAR_EXACT") return voi_function::linear_exact;
  if (s == "SIGMOID") return voi_function::sigmoid;
  MAMMOCL_THROW(config_error, "VOI LUT Function (0028,1056): '", s,
                "' is not one of LINEAR, LINEAR_EXACT, SIGMOID");
}

namespace detail {
// Unchecked kernels: the checked public functions and apply_voi validate c and w once, then call these.
[[nodiscard]] inline double voi_linear_unchecked(double x, double c, double w, double ymin, double ymax) noexcept {
  // C.11.2.1.2.1: the window is [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2]; with w == 1 the "else" branch
  // is empty (x <= c - 0.5 or x > c - 0.5), so the division by w - 1 is never reached.
  const double c5 = c - 0.5, w1 = w - 1.0;
  if (x <= c5 - w1 / 2.0) return ymin;
  if (x > c5 + w1 / 2.0) return ymax;
  return ((x - c5) / w1 + 0.5) * (ymax - ymin) + ymin;
}
[[nodiscard]] inline double voi_linear_exact_unchecked(double x, double c, double w, double ymin, double ymax) noexcept {
  if (x <= c - w / 2.0) return ymin;
  if (x > c + w / 2.0) return ymax;
  return ((x - c) / w + 0.5) * (ymax - ymin) + ymin;
}
[[nodiscard]] inline double voi_sigmoid_unchecked(double x, double c, double w, double ymin, double ymax) noexcept {
  return (ymax - ymin) / (1.0 + std::exp(-4.0 * (x - c) / w)) + ymin;
}
inline void check_voi_window(voi_function f, double c, double w) {
  MAMMOCL_CHECK(std::isfinite(c), config_error, "VOI LUT ", to_string(f), ": window center ", c, " is not finite");
  if (f == voi_function::linear) {
    MAMMOCL_CHECK(std::isfinite(w) && w >= 1.0, config_error, "VOI LUT LINEAR: window width ", w,
                  " must be >= 1 (PS3.3 C.11.2.1.2.1)");
  } else {
    MAMMOCL_CHECK(std::isfinite(w) && w > 0.0, config_error, "VOI LUT ", to_string(f), ": window width ", w,
                  " must be > 0 (PS3.3 C.11.2.1.3)");
  }
}
}  // namespace detail

/// DICOM LINEAR (PS3.3 C.11.2.1.2.1): window centre `c`, width `w` >= 1, output range [ymin, ymax].
/// Throws config_error for w < 1 or a non-finite c or w.
[[nodiscard]] inline double voi_linear(double x, double c, double w, double ymin, double ymax) {
  detail::check_voi_window(voi_function::linear, c, w);
  return detail::voi_linear_unchecked(x, c, w, ymin, ymax);
}

/// DICOM LINEAR_EXACT (PS3.3 C.11.2.1.3.2): y = ((x - c)/w + 0.5)(ymax - ymin) + ymin, clipped to
/// [ymin, ymax]; w > 0. Throws config_error for w <= 0 or a non-finite c or w.
[[nodiscard]] inline double voi_linear_exact(double x, double c, double w, double ymin, double ymax) {
  detail::check_voi_window(voi_function::linear_exact, c, w);
  return detail::voi_linear_exact_unchecked(x, c, w, ymin, ymax);
}

/// DICOM SIGMOID (PS3.3 C.11.2.1.3.1, current edition, factor 4): y = (ymax - ymin)/(1 + exp(-4(x - c)/w))
/// + ymin; w > 0. Not rounded, not clipped. Throws config_error for w <= 0 or a non-finite c or w.
[[nodiscard]] inline double voi_sigmoid(double x, double c, double w, double ymin, double ymax) {
  detail::check_voi_window(voi_function::sigmoid, c, w);
  return detail::voi_sigmoid_unchecked(x, c, w, ymin, ymax);
}

/// Evaluates the VOI LUT function `f` at x (the checked function of that name).
[[nodiscard]] inline double voi_apply(voi_function f, double x, double c, double w, double ymin, double ymax) {
  detail::check_voi_window(f, c, w);
  switch (f) {
    case voi_function::linear: return detail::voi_linear_unchecked(x, c, w, ymin, ymax);
    case voi_function::linear_exact: return detail::voi_linear_exact_unchecked(x, c, w, ymin, ymax);
    case voi_function::sigmoid: return detail::voi_sigmoid_unchecked(x, c, w, ymin, ymax);
  }
  return x;
}

/// An output range [ymin, ymax] of a VOI LUT.
struct voi_output_range {
  double ymin = 0.0, ymax = 1.0;
};

/// The output range pydicom's `apply_windowing` uses: [0, 2^bits - 1] for unsigned data,
/// [-2^(bits-1), 2^(bits-1) - 1] for signed data, both passed through the Modality LUT
/// (y * slope + intercept). Throws config_error for bits_stored outside [1, 32].
[[nodiscard]] inline voi_output_range pydicom_output_range(int bits_stored, bool is_signed, double rescale_slope = 1.0,
                                                           double rescale_intercept = 0.0) {
  MAMMOCL_CHECK(bits_stored >= 1 && bits_stored <= 32, config_error, "pydicom_output_range: bits stored ",
                bits_stored, " is outside [1, 32]");
  double lo = 0.0, hi = 0.0;
  if (is_signed) {
    lo = -std::ldexp(1.0, bits_stored - 1);
    hi = std::ldexp(1.0, bits_stored - 1) - 1.0;
  } else {
    hi = std::ldexp(1.0, bits_stored) - 1.0;
  }
  return {lo * rescale_slope + rescale_intercept, hi * rescale_slope + rescale_intercept};
}

/// `pydicom_output_range` from an image's metadata (bits stored, signedness, rescale slope/intercept).
[[nodiscard]] inline voi_output_range pydicom_output_range(const image_metadata& m) {
  return pydicom_output_range(m.bits_stored, m.is_signed, m.rescale_slope, m.rescale_intercept);
}

/// Applies the VOI LUT function `f` with centre c and width w to every pixel (computed in double,
/// stored as float). The result's metadata records the output range ([ymin, ymax] becomes
/// [min_value, max_value]) and the window and function applied. Throws config_error for an invalid
/// window (see the scalar functions) or for ymax <= ymin.
[[nodiscard]] inline image apply_voi(const image& in, voi_function f, double c, double w, double ymin, double ymax) {
  detail::check_voi_window(f, c, w);
  MAMMOCL_CHECK(ymax > ymin, config_error, "apply_voi ", to_string(f), ": output range [", ymin, ", ", ymax,
                "] is empty (ymax must be > ymin)");
  image out = in;
  for (auto& v : out.pixels) {
    const double x = v;
    double y = x;
    switch (f) {
      case voi_function::linear: y = detail::voi_linear_unchecked(x, c, w, ymin, ymax); break;
      case voi_function::linear_exact: y = detail::voi_linear_exact_unchecked(x, c, w, ymin, ymax); break;
      case voi_function::sigmoid: y = detail::voi_sigmoid_unchecked(x, c, w, ymin, ymax); break;
    }
    v = static_cast<float>(y);
  }
  out.meta.min_value = ymin;
  out.meta.max_value = ymax;
  out.meta.window_center = c;
  out.meta.window_width = w;
  out.meta.voi_lut_function = std::string(to_string(f));
  return out;
}

// ------------------------------------------------------------------------------------------------
// Percentiles (numpy's default "linear" method)
// ------------------------------------------------------------------------------------------------

namespace detail {
// The k-th smallest of v (0-based); reorders v (nth_element), O(n).
[[nodiscard]] inline double kth_smallest(std::vector<double>& v, std::size_t k) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}
// The (k+1)-th smallest, valid right after kth_smallest(v, k): the minimum of the part after k.
[[nodiscard]] inline double next_smallest(const std::vector<double>& v, std::size_t k) {
  return *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(k) + 1, v.end());
}
}  // namespace detail

/// The q-th percentile (q in [0, 100]) of `values` with numpy's default method ("linear", type 7 of
/// Hyndman & Fan): with the values sorted as a[0..n-1], h = (n - 1) * (q / 100), i = floor(h),
/// g = h - i, the result is numpy's `_lerp(a[i], a[i+1], g)`: a[i] + (a[i+1] - a[i]) g for g < 0.5,
/// a[i+1] - (a[i+1] - a[i])(1 - g) otherwise. Equals np.percentile(np.float64(values), q).
/// Reorders `values`. Throws config_error for an empty input or q outside [0, 100].
[[nodiscard]] inline double percentile_linear(std::vector<double>& values, double q) {
  MAMMOCL_CHECK(!values.empty(), config_error, "percentile_linear: no values");
  MAMMOCL_CHECK(q >= 0.0 && q <= 100.0, config_error, "percentile_linear: q = ", q, " is outside [0, 100]");
  const std::size_t n = values.size();
  const double h = static_cast<double>(n - 1) * (q / 100.0);
  const double fl = std::floor(h);
  auto i = static_cast<std::size_t>(fl);
  if (i >= n - 1) return detail::kth_smallest(values, n - 1);
  const double g = h - fl;
  const double a = detail::kth_smallest(values, i);
  const double b = detail::next_smallest(values, i);
  const double d = b - a;
  return g >= 0.5 ? b - d * (1.0 - g) : a + d * g;
}

/// The median as np.median computes it: the middle value for odd n, the mean (a + b) / 2 of the two
/// middle values for even n. Reorders `values`. Throws config_error for an empty input.
[[nodiscard]] inline double median(std::vector<double>& values) {
  MAMMOCL_CHECK(!values.empty(), config_error, "median: no values");
  const std::size_t n = values.size();
  const double hi = detail::kth_smallest(values, n / 2);
  if (n % 2 == 1) return hi;
  const double lo = *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(n / 2));
  return (lo + hi) / 2.0;
}

// ------------------------------------------------------------------------------------------------
// The LUT domain transform (domain B)
// ------------------------------------------------------------------------------------------------

/// Window of the sigmoid LUT that makes domain B from a normalised image (METHOD.md §2.1 default).
struct lut_domain_params {
  double center = 0.0;  ///< median of the breast pixels of the normalised image
  double width = 0.0;   ///< p99 - p1 of the breast pixels

  /// Parses the text form written by `to_string(lut_domain_params)`; see `parse_lut_domain_params`.
  [[nodiscard]] static lut_domain_params parse(std::string_view text);

  friend bool operator==(const lut_domain_params&, const lut_domain_params&) = default;
};

namespace detail {
inline void check_normalized(const image& im, const char* who) {
  MAMMOCL_CHECK(im.meta.min_value == 0.0 && im.meta.max_value == 1.0, config_error, who, ": image ",
                im.meta.source.empty() ? std::string("(generated)") : im.meta.source, " has value range [",
                im.meta.min_value, ", ", im.meta.max_value, "]; pass image.normalized() (range [0, 1])");
}
inline void check_lut_params(const lut_domain_params& p, const char* who) {
  MAMMOCL_CHECK(std::isfinite(p.center), config_error, who, ": center ", p.center, " is not finite");
  MAMMOCL_CHECK(std::isfinite(p.width) && p.width > 0.0, config_error, who, ": width ", p.width,
                " must be > 0 and finite");
}
}  // namespace detail

/// Estimates the domain-B window from a normalised image (meta range [0, 1], see image::normalized)
/// and its breast mask: center = median, width = p99 - p1 (numpy linear percentiles) of the pixels
/// where the mask is non-zero, in double. Errors: shape_error when the mask size differs from the
/// image, config_error when the image is not normalised or the mask selects no pixel, numeric_error
/// when the breast is flat (p99 == p1, so the sigmoid would be a step): there is no fallback,
/// because a flat breast region means a blank image or a failed segmentation.
[[nodiscard]] inline lut_domain_params estimate_lut_params(const image& normalized, const mask& breast) {
  detail::check_normalized(normalized, "estimate_lut_params");
  const std::string src = normalized.meta.source.empty() ? std::string("(generated)") : normalized.meta.source;
  MAMMOCL_CHECK(breast.rows == normalized.rows && breast.cols == normalized.cols, shape_error,
                "estimate_lut_params: mask is ", breast.rows, " x ", breast.cols, " but image ", src, " is ",
                normalized.rows, " x ", normalized.cols);
  std::vector<double> v;
  v.reserve(static_cast<std::size_t>(breast.count()));
  for (std::size_t i = 0; i < normalized.pixels.size(); ++i)
    if (breast.values[i] != 0) v.push_back(normalized.pixels[i]);
  MAMMOCL_CHECK(!v.empty(), config_error, "estimate_lut_params: the breast mask of image ", src, " is empty");
  lut_domain_params p;
  p.center = median(v);
  const double p1 = percentile_linear(v, 1.0);
  const double p99 = percentile_linear(v, 99.0);
  p.width = p99 - p1;
  MAMMOCL_CHECK(p.width > 0.0, numeric_error, "estimate_lut_params: the breast region of image ", src,
                " is flat (p1 = p99 = ", p1, "); the sigmoid LUT needs a width > 0");
  return p;
}

/// Domain B: SIGMOID with the given window from [0, 1] to [0, 1], computed in double, stored as float.
/// Throws config_error when the image is not normalised or the width is not > 0.
[[nodiscard]] inline image apply_lut_domain(const image& normalized, const lut_domain_params& p) {
  detail::check_normalized(normalized, "apply_lut_domain");
  detail::check_lut_params(p, "apply_lut_domain");
  return apply_voi(normalized, voi_function::sigmoid, p.center, p.width, 0.0, 1.0);
}

/// Exact text form of the parameters: "center=<c> width=<w>", each number printed like printf("%.17g"),
/// which round-trips every double, and in the "C" locale whatever the global locale is.
[[nodiscard]] inline std::string to_string(const lut_domain_params& p) {
  char buf[64];
  std::string s = "center=";
  auto r = std::to_chars(buf, buf + sizeof buf, p.center, std::chars_format::general, 17);
  s.append(buf, r.ptr);
  s += " width=";
  r = std::to_chars(buf, buf + sizeof buf, p.width, std::chars_format::general, 17);
  s.append(buf, r.ptr);
  return s;
}

/// Parses the text of `to_string(lut_domain_params)` (surrounding spaces and one trailing newline
/// allowed). Throws config_error naming the field ("center" or "width") that is missing, not a number,
/// not finite, or (width) not > 0, and for trailing text.
[[nodiscard]] inline lut_domain_params parse_lut_domain_params(std::string_view text) {
  const std::string shown(text);
  std::string_view s = text;
  auto skip_spaces = [&] {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  };
  auto field = [&](std::string_view name) {
    skip_spaces();
    MAMMOCL_CHECK(s.substr(0, name.size() + 1) == std::string(name) + "=", config_error,
                  "lut_domain_params: field '", name, "' missing in \"", shown, "\" (expected \"center=<c> width=<w>\")");
    s.remove_prefix(name.size() + 1);
    double v = 0.0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
    MAMMOCL_CHECK(r.ec == std::errc() && r.ptr != s.data(), config_error, "lut_domain_params: field '", name,
                  "' is not a number in \"", shown, "\"");
    s.remove_prefix(static_cast<std::size_t>(r.ptr - s.data()));
    MAMMOCL_CHECK(std::isfinite(v), config_error, "lut_domain_params: field '", name, "' is not finite in \"",
                  shown, "\"");
    MAMMOCL_CHECK(s.empty() || s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r',
                  config_error, "lut_domain_params: field '", name, "' has trailing characters in \"", shown, "\"");
    return v;
  };
  lut_domain_params p;
  p.center = field("center");
  p.width = field("width");
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  MAMMOCL_CHECK(s.empty(), config_error, "lut_domain_params: unexpected text after field 'width' in \"", shown, "\"");
  MAMMOCL_CHECK(p.width > 0.0, config_error, "lut_domain_params: field 'width' = ", p.width, " must be > 0 in \"",
                shown, "\"");
  return p;
}

inline lut_domain_params lut_domain_params::parse(std::string_view text) { return parse_lut_domain_params(text); }

// ------------------------------------------------------------------------------------------------
// The side file of per-image windows (METHOD.md §2.1: "store c and w per image")
// ------------------------------------------------------------------------------------------------

/// First line of a LUT parameter file.
inline constexpr std::string_view lut_params_file_header = "# mammocl lut_domain_params v1";

/// The text of a LUT parameter file: the header line, then one line per image, sorted by key:
/// "<key>\tcenter=<c> width=<w>" (the exact %.17g form of `to_string`). Keys identify images within a
/// dataset (a file name, a case id); they must be non-empty and hold no tab, CR or LF (config_error).
[[nodiscard]] inline std::string format_lut_params_file(const std::map<std::string, lut_domain_params>& params) {
  std::string out(lut_params_file_header);
  out += '\n';
  for (const auto& [key, p] : params) {
    MAMMOCL_CHECK(!key.empty() && key.find_first_of("\t\r\n") == std::string::npos, config_error,
                  "lut params file: key \"", key, "\" must be non-empty and hold no tab or line break");
    detail::check_lut_params(p, "lut params file");
    out += key;
    out += '\t';
    out += to_string(p);
    out += '\n';
  }
  return out;
}

/// Parses `format_lut_params_file`'s text; `name` (the file) goes into every error. Throws io_error
/// naming the file and the line for a missing header, a line without a tab, an empty or repeated key, or
/// parameters that do not parse (with the field, as parse_lut_domain_params says).
[[nodiscard]] inline std::map<std::string, lut_domain_params> parse_lut_params_file(std::string_view text,
                                                                                  std::string_view name) {
  std::map<std::string, lut_domain_params> out;
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1) {
      MAMMOCL_CHECK(line == lut_params_file_header, io_error, name, ":1: expected the header \"",
                    lut_params_file_header, "\"; not a LUT parameter file");
      continue;
    }
    if (line.empty()) continue;
    const std::size_t tab = line.find('\t');
    MAMMOCL_CHECK(tab != std::string_view::npos && tab > 0, io_error, name, ":", line_no,
                  ": expected \"<key><TAB>center=<c> width=<w>\"");
    std::string key(line.substr(0, tab));
    lut_domain_params p;
    try {
      p = parse_lut_domain_params(line.substr(tab + 1));
    } catch (const config_error& e) {
      MAMMOCL_THROW(io_error, name, ":", line_no, ": image '", key, "': ", e.message());
    }
    MAMMOCL_CHECK(out.emplace(key, p).second, io_error, name, ":", line_no, ": image '", key, "' appears twice");
  }
  MAMMOCL_CHECK(line_no >= 1, io_error, name, ": empty file; expected the header \"", lut_params_file_header, "\"");
  return out;
}

/// Writes the per-image windows to `path` atomically (temporary file in the same folder, fsync, rename).
inline void write_lut_params(const std::filesystem::path& path, const std::map<std::string, lut_domain_params>& params) {
  const std::string text = format_lut_params_file(params);
  detail::write_file_atomically(path, std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
                                "write_lut_params");
}

/// Reads a file written by `write_lut_params` (errors as parse_lut_params_file, io_error when unreadable).
[[nodiscard]] inline std::map<std::string, lut_domain_params> read_lut_params(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, "read_lut_params");
  return parse_lut_params_file(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                               path.string());
}

}  // namespace mammocl::data
