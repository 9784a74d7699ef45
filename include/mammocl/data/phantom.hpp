#pragma once
/// `generate_phantom`: a deterministic synthetic mammogram with its annotations, so that the whole
/// pipeline (segmentation, patch sampling, training, evaluation) runs with no download. Case `index` of
/// a generator with options `o` is a pure function of (o, index): any subset regenerates bit for bit.
///
/// What is drawn (docs/data-phantom-patches.md has the numbers and their sources):
///  - a breast outline: a half-ellipse against the chest wall (left image edge for laterality "L", right
///    edge for "R"), with a slightly irregular boundary, a compressed-thickness profile that fades toward
///    the skin, and a brighter skin line; in MLO views the outline reaches the top edge (axilla) and a
///    bright pectoral-muscle triangle sits in the upper chest-wall corner;
///  - tissue texture: a Gaussian random field with a power-law spectrum P(f) ~ 1/f^beta (beta = 3 by
///    default, as measured on mammograms by Burgess et al. 2001), made with a radix-2 FFT written here;
///    thresholding one field gives the fibroglandular tissue with the area fraction of the density
///    category, a second independent field adds fine texture;
///  - masses: benign ones round to oval with a sharp (circumscribed) margin; malignant ones with a
///    lobulated, blurred margin and spicules radiating outward;
///  - calcification clusters: benign ones few, larger, round and scattered; malignant ones many, small,
///    pleomorphic (elongated, random orientation) and tightly clustered;
///  - additive Gaussian noise; values clamped to [0, 1].
/// Each lesion comes with a `roi` (polygon for masses, including the spicule tips; circle for clusters)
/// and the mask of that roi rasterised and intersected with the breast.
#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/image.hpp"
#include "mammocl/data/mask_ops.hpp"

namespace mammocl::data {

/// View of a phantom: drawn at random (half CC, half MLO) or fixed.
enum class phantom_view { random, cc, mlo };
/// Laterality of a phantom: drawn at random or fixed. The chest wall is at the left edge for "L" and at
/// the right edge for "R" (the usual back-to-back hanging).
enum class phantom_laterality { random, left, right };

/// Options of `generate_phantom`. Sizes in pixels unless named _mm. The defaults give a 1024 x 768 image
/// at 0.2 mm per pixel (205 x 154 mm) and a 5-class patch task of moderate difficulty.
struct phantom_options {
  std::uint64_t seed = 1;              ///< generator seed; case i of seed s is a pure function of (s, i)
  std::int64_t rows = 1024;            ///< image height, >= 64
  std::int64_t cols = 768;             ///< image width, >= 64
  double pixel_spacing_mm = 0.2;       ///< square pixels
  double breast_size = 1.0;            ///< scale of the breast outline (0.5 .. 1.2); 1 fills about 75% of the width
  phantom_view view = phantom_view::random;
  phantom_laterality laterality = phantom_laterality::random;
  int density = 0;                     ///< BI-RADS density 1..4 (a..d), 0 = drawn at random
  int min_masses = 0, max_masses = 2;  ///< number of masses, uniform in [min, max]
  int min_calc_clusters = 0, max_calc_clusters = 2;  ///< number of calcification clusters, uniform in [min, max]
  double malignant_fraction = 0.5;     ///< probability that a lesion is malignant
  double mass_contrast = 0.14;         ///< peak mass brightness above the tissue (before the thickness fall-off)
  double calc_contrast = 0.40;         ///< calcification brightness (a 0.5 mm speck's peak)
  double spiculation = 1.0;            ///< spicule brightness relative to the mass contrast (0 = no spicules)
  double lobulation = 0.25;            ///< amplitude of the malignant margin's radius harmonics
  double texture_beta = 3.0;           ///< exponent of the power-law tissue spectrum
  double texture_amplitude = 0.05;     ///< amplitude of the fine texture field
  double noise = 0.02;                 ///< standard deviation of the additive pixel noise
};

/// What `generate_phantom` drew for one lesion (pixel units), for tests and statistics.
struct phantom_lesion {
  lesion_type type = lesion_type::mass;
  pathology path = pathology::benign;
  double center_row = 0, center_col = 0;
  double radius = 0;            ///< mass: core radius; cluster: radius of the roi circle
  int specks = 0;               ///< calcifications in a cluster (0 for a mass)
  double mean_speck_radius = 0; ///< mean semi-major axis of the specks (0 for a mass)
  int spicules = 0;             ///< spicules of a malignant mass
};

/// One generated case: the image, its record (ROIs in the same order as `lesion_masks`), one mask per
/// lesion, the breast and pectoral masks (the latter empty of set pixels in CC views).
struct phantom_case {
  image img;
  case_record record;
  std::vector<mask> lesion_masks;
  std::vector<phantom_lesion> lesions;
  mask breast;
  mask pectoral;
};

namespace detail {

/// In-place iterative radix-2 complex FFT of n = 2^k values spaced `stride` apart (sign +1: inverse
/// direction; unnormalised). `tw` holds exp(i 2 pi j / n) for j < n / 2.
inline void fft_radix2(std::complex<double>* a, std::size_t n, const std::vector<std::complex<double>>& tw) {
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (std::size_t len = 2; len <= n; len <<= 1) {
    const std::size_t half = len / 2, step = n / len;
    for (std::size_t i = 0; i < n; i += len)
      for (std::size_t k = 0; k < half; ++k) {
        const std::complex<double> u = a[i + k], v = a[i + k + half] * tw[k * step];
        a[i + k] = u + v;
        a[i + k + half] = u - v;
      }
  }
}

inline std::vector<std::complex<double>> twiddles(std::size_t n) {
  std::vector<std::complex<double>> tw(n / 2);
  for (std::size_t j = 0; j < n / 2; ++j) {
    const double a = 2 * std::numbers::pi * static_cast<double>(j) / static_cast<double>(n);
    tw[j] = {std::cos(a), std::sin(a)};
  }
  return tw;
}

inline std::size_t next_pow2(std::int64_t v) {
  std::size_t n = 1;
  while (n < static_cast<std::size_t>(v)) n <<= 1;
  return n;
}

/// Two independent zero-mean, unit-variance Gaussian fields of rows x cols with power spectrum
/// ~ 1/f^beta (f in cycles per mm, flat below 1/40 mm^-1 so no single blob fills the breast): the real
/// and imaginary parts of the inverse FFT of white complex Gaussian noise shaped by f^(-beta/2).
inline std::array<std::vector<float>, 2> power_law_fields(std::int64_t rows, std::int64_t cols, double spacing_mm,
                                                          double beta, rng& r) {
  const std::size_t nr = next_pow2(rows), nc = next_pow2(cols);
  std::vector<std::complex<double>> f(nr * nc);
  const double fmin = 1.0 / 40.0;
  for (std::size_t i = 0; i < nr; ++i) {
    const double ky = (static_cast<double>(i) - (i < nr / 2 ? 0.0 : static_cast<double>(nr))) /
                      (static_cast<double>(nr) * spacing_mm);
    for (std::size_t j = 0; j < nc; ++j) {
      const double kx = (static_cast<double>(j) - (j < nc / 2 ? 0.0 : static_cast<double>(nc))) /
                        (static_cast<double>(nc) * spacing_mm);
      const double fr = std::max(std::sqrt(kx * kx + ky * ky), fmin);
      const double amp = (i == 0 && j == 0) ? 0.0 : std::pow(fr, -beta / 2);
      const double re = r.normal(), im = r.normal();
      f[i * nc + j] = {amp * re, amp * im};
    }
  }
  const auto twr = twiddles(nr), twc = twiddles(nc);
  for (std::size_t i = 0; i < nr; ++i) fft_radix2(f.data() + i * nc, nc, twc);
  std::vector<std::complex<double>> col(nr);
  // Only the first `cols` columns are kept, so only those need the column transform.
  for (std::size_t j = 0; j < static_cast<std::size_t>(cols); ++j) {
    for (std::size_t i = 0; i < nr; ++i) col[i] = f[i * nc + j];
    fft_radix2(col.data(), nr, twr);
    for (std::size_t i = 0; i < static_cast<std::size_t>(rows); ++i) f[i * nc + j] = col[i];
  }
  std::array<std::vector<float>, 2> out;
  for (int part = 0; part < 2; ++part) {
    double s = 0, s2 = 0;
    const auto n = static_cast<double>(rows * cols);
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) {
        const auto& z = f[static_cast<std::size_t>(i) * nc + static_cast<std::size_t>(j)];
        const double v = part == 0 ? z.real() : z.imag();
        s += v;
        s2 += v * v;
      }
    const double mean = s / n, sd = std::sqrt(std::max(s2 / n - mean * mean, 1e-300));
    out[part].resize(static_cast<std::size_t>(rows * cols));
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) {
        const auto& z = f[static_cast<std::size_t>(i) * nc + static_cast<std::size_t>(j)];
        out[part][static_cast<std::size_t>(i * cols + j)] =
            static_cast<float>(((part == 0 ? z.real() : z.imag()) - mean) / sd);
      }
  }
  return out;
}

inline void check_phantom_options(const phantom_options& o) {
  MAMMOCL_CHECK(o.rows >= 64 && o.cols >= 64, config_error, "generate_phantom: size ", o.rows, " x ", o.cols,
                " is below the minimum of 64 x 64 pixels");
  MAMMOCL_CHECK(o.pixel_spacing_mm > 0 && std::isfinite(o.pixel_spacing_mm), config_error,
                "generate_phantom: pixel_spacing_mm ", o.pixel_spacing_mm, " must be positive");
  MAMMOCL_CHECK(o.breast_size >= 0.5 && o.breast_size <= 1.2, config_error, "generate_phantom: breast_size ",
                o.breast_size, " is outside [0.5, 1.2]");
  MAMMOCL_CHECK(o.density >= 0 && o.density <= 4, config_error, "generate_phantom: density ", o.density,
                " is not a BI-RADS category 1..4 (or 0 for random)");
  MAMMOCL_CHECK(o.min_masses >= 0 && o.min_masses <= o.max_masses, config_error, "generate_phantom: masses [",
                o.min_masses, ", ", o.max_masses, "] is not a range of non-negative counts");
  MAMMOCL_CHECK(o.min_calc_clusters >= 0 && o.min_calc_clusters <= o.max_calc_clusters, config_error,
                "generate_phantom: calcification clusters [", o.min_calc_clusters, ", ", o.max_calc_clusters,
                "] is not a range of non-negative counts");
  MAMMOCL_CHECK(o.malignant_fraction >= 0 && o.malignant_fraction <= 1, config_error,
                "generate_phantom: malignant_fraction ", o.malignant_fraction, " is outside [0, 1]");
  MAMMOCL_CHECK(o.mass_contrast >= 0 && o.calc_contrast >= 0 && o.spiculation >= 0 && o.lobulation >= 0 &&
                    o.lobulation < 0.5 && o.texture_amplitude >= 0 && o.noise >= 0,
                config_error, "generate_phantom: mass_contrast ", o.mass_contrast, ", calc_contrast ",
                o.calc_contrast, ", spiculation ", o.spiculation, ", texture_amplitude ", o.texture_amplitude,
                " and noise ", o.noise, " must be >= 0 and lobulation ", o.lobulation, " in [0, 0.5)");
  MAMMOCL_CHECK(o.texture_beta > 0 && o.texture_beta < 6, config_error, "generate_phantom: texture_beta ",
                o.texture_beta, " is outside (0, 6)");
}

}  // namespace detail

/// Generates phantom case `index` of the generator `o` (see the file comment). Throws config_error for
/// options outside their documented ranges.
[[nodiscard]] inline phantom_case generate_phantom(const phantom_options& o, std::uint64_t index) {
  detail::check_phantom_options(o);
  constexpr double pi = std::numbers::pi;
  // One master stream per case; each part gets its own sub-stream so that, e.g., changing the number of
  // lesions leaves the tissue of the same case unchanged.
  rng master(o.seed * 0x9E3779B97F4A7C15ULL ^ (index + 1) * 0xD1B54A32D192ED03ULL);
  rng r_layout = master.split(), r_tex = master.split(), r_lesion = master.split(), r_noise = master.split();

  const std::int64_t R = o.rows, C = o.cols;
  const double sp = o.pixel_spacing_mm;
  const bool mlo = o.view == phantom_view::mlo || (o.view == phantom_view::random && r_layout.uniform() < 0.5);
  const bool left = o.laterality == phantom_laterality::left ||
                    (o.laterality == phantom_laterality::random && r_layout.uniform() < 0.5);
  const int density = o.density ? o.density : 1 + static_cast<int>(r_layout.below(4));
  // Fibroglandular area fractions for BI-RADS a..d (the 4th edition's quartiles' midpoints).
  constexpr double gland_fraction[5] = {0, 0.12, 0.37, 0.62, 0.85};

  // Outline: half-ellipse with depth b (chest wall to nipple) and half-heights a_up/a_down around row cr.
  const double b = C * o.breast_size * r_layout.uniform(0.68, 0.82);
  const double cr = R * (mlo ? r_layout.uniform(0.40, 0.48) : r_layout.uniform(0.47, 0.53));
  const double a_down = R * o.breast_size * (mlo ? r_layout.uniform(0.40, 0.46) : r_layout.uniform(0.36, 0.44));
  const double a_up = mlo ? cr * r_layout.uniform(1.2, 1.5) : a_down * r_layout.uniform(0.95, 1.05);
  double bh_amp[3], bh_ph[3];
  double bh_cos[3], bh_sin[3];
  for (int k = 0; k < 3; ++k) {
    bh_amp[k] = r_layout.uniform(0.0, 0.025), bh_ph[k] = r_layout.uniform(0, 2 * pi);
    bh_cos[k] = std::cos(bh_ph[k]), bh_sin[k] = std::sin(bh_ph[k]);
  }
  // Pectoral triangle (MLO): from the chest-wall top corner, width pw along the top edge, height ph down the wall.
  const double pw = C * r_layout.uniform(0.22, 0.36), ph = R * r_layout.uniform(0.38, 0.58);
  const double pect_level = r_layout.uniform(0.58, 0.68);

  auto depth_of = [&](double c) { return left ? c : static_cast<double>(C - 1) - c; };
  // Normalised radius: < 1 inside the breast.
  auto rho_at = [&](double r, double c) {
    const double y = (r - cr) / (r < cr ? a_up : a_down), x = depth_of(c) / b;
    const double rho = std::sqrt(x * x + y * y);
    if (rho == 0) return 0.0;
    // sin(k th + phase) for k = 2, 3, 4 through the angle-addition recurrences (no atan2, no sin per pixel).
    const double c1 = x / rho, s1 = y / rho;
    double ck = c1, sk = s1, g = 1;
    for (int k = 0; k < 3; ++k) {
      const double cn = ck * c1 - sk * s1, sn = sk * c1 + ck * s1;
      ck = cn, sk = sn;
      g += bh_amp[k] * (sk * bh_cos[k] + ck * bh_sin[k]);
    }
    return rho / g;
  };
  auto pect_at = [&](double r, double c) { return mlo ? 1.0 - depth_of(c) / pw - r / ph : -1.0; };

  phantom_case out;
  out.breast = mask(R, C);
  out.pectoral = mask(R, C);
  std::vector<float> thick(static_cast<std::size_t>(R * C), 0.0f), rho_map(static_cast<std::size_t>(R * C));
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t c = 0; c < C; ++c) {
      const auto i = static_cast<std::size_t>(r * C + c);
      const double rho = rho_at(static_cast<double>(r), static_cast<double>(c));
      rho_map[i] = static_cast<float>(rho);
      if (rho <= 1) {
        out.breast.values[i] = 1;
        // Compressed breast: constant thickness in the middle, falling to zero at the skin.
        thick[i] = static_cast<float>(std::min(1.0, std::sqrt(1 - rho * rho) / 0.45));
        if (pect_at(static_cast<double>(r), static_cast<double>(c)) > 0) out.pectoral.values[i] = 1;
      }
    }

  // Tissue.
  // The 1/f^3 spectrum has almost no power above 1.25 cycles/mm (its amplitude there is < 0.3% of the
  // lowest band's), so the fields are made on a grid of at most 0.4 mm and interpolated: 4x fewer FFTs.
  const std::int64_t k_sub = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(0.4 / sp + 1e-9)));
  const std::int64_t fr = (R - 1) / k_sub + 2, fc = (C - 1) / k_sub + 2;
  auto coarse = detail::power_law_fields(fr, fc, sp * static_cast<double>(k_sub), o.texture_beta, r_tex);
  std::array<std::vector<float>, 2> fields;
  for (int part = 0; part < 2; ++part) {
    fields[part].resize(static_cast<std::size_t>(R * C));
    for (std::int64_t r = 0; r < R; ++r) {
      const std::int64_t r0 = r / k_sub;
      const double wr = static_cast<double>(r % k_sub) / static_cast<double>(k_sub);
      for (std::int64_t c = 0; c < C; ++c) {
        const std::int64_t c0 = c / k_sub;
        const double wc = static_cast<double>(c % k_sub) / static_cast<double>(k_sub);
        const float* f = coarse[part].data() + r0 * fc + c0;
        fields[part][static_cast<std::size_t>(r * C + c)] = static_cast<float>(
            (1 - wr) * ((1 - wc) * f[0] + wc * f[1]) + wr * ((1 - wc) * f[fc] + wc * f[fc + 1]));
      }
    }
  }
  std::vector<float>& t1 = fields[0];
  const std::vector<float>& t2 = fields[1];
  // Glandular tissue gathers behind the nipple: bias the field toward the centre before thresholding.
  for (std::size_t i = 0; i < t1.size(); ++i) t1[i] += static_cast<float>(1.2 * (0.55 - rho_map[i]));
  std::vector<float> sample;
  for (std::size_t i = 0; i < t1.size(); i += 7)
    if (out.breast.values[i]) sample.push_back(t1[i]);
  float thr = 0;
  if (!sample.empty()) {
    const auto k = static_cast<std::size_t>((1.0 - gland_fraction[density]) * static_cast<double>(sample.size() - 1));
    std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(k), sample.end());
    thr = sample[k];
  }
  const double fat = 0.28, gland = 0.46, skin_px = 1.5 / sp;
  std::vector<float> img(static_cast<std::size_t>(R * C), 0.03f);
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t c = 0; c < C; ++c) {
      const auto i = static_cast<std::size_t>(r * C + c);
      if (!out.breast.values[i]) continue;
      const double g = 1.0 / (1.0 + std::exp(-(t1[i] - thr) / 0.5));
      double v = fat + (gland - fat) * g + o.texture_amplitude * t2[i];
      const double pe = pect_at(static_cast<double>(r), static_cast<double>(c));
      if (mlo && pe > -0.05) {  // pectoral muscle, blended over a short ramp at its edge
        const double w = std::clamp((pe + 0.05) / 0.1, 0.0, 1.0);
        v = (1 - w) * v + w * (pect_level + 0.3 * o.texture_amplitude * t2[i]);
      }
      // Skin line: a brighter band about 1.5 mm inside the outline (distance approximated along the depth).
      const double edge = (1 - rho_map[i]) * b;
      const double skin = edge < skin_px ? 0.06 * (1 - edge / skin_px) : 0.0;
      img[i] = static_cast<float>(0.03 + thick[i] * v + skin);
    }

  // Lesions.
  const int n_mass = o.min_masses + static_cast<int>(r_lesion.below(static_cast<std::uint64_t>(o.max_masses - o.min_masses) + 1));
  const int n_calc = o.min_calc_clusters +
                     static_cast<int>(r_lesion.below(static_cast<std::uint64_t>(o.max_calc_clusters - o.min_calc_clusters) + 1));
  struct placed { double r, c, rad; };
  std::vector<placed> taken;
  // A centre well inside the breast, outside the pectoral muscle, clear of earlier lesions; false after 200 tries.
  auto place = [&](double rad, double& pr, double& pc) {
    for (int t = 0; t < 200; ++t) {
      pr = r_lesion.uniform(0, static_cast<double>(R - 1));
      pc = r_lesion.uniform(0, static_cast<double>(C - 1));
      if (rho_at(pr, pc) > 0.72) continue;
      if (mlo && pect_at(pr, pc) > -0.25) continue;
      bool clear = true;
      for (const auto& p : taken) clear = clear && std::hypot(p.r - pr, p.c - pc) > p.rad + rad + 2.0 / sp;
      if (!clear) continue;
      taken.push_back({pr, pc, rad});
      return true;
    }
    return false;
  };
  auto thick_at = [&](std::int64_t r, std::int64_t c) { return static_cast<double>(thick[static_cast<std::size_t>(r * C + c)]); };
  auto add_lesion = [&](roi&& region, const phantom_lesion& info) {
    mask m = rasterize(region, R, C);
    for (std::size_t i = 0; i < m.values.size(); ++i) m.values[i] = m.values[i] && out.breast.values[i];
    if (m.count() == 0) return;  // cannot happen for a centre inside the breast; kept as a guard
    out.record.rois.push_back(std::move(region));
    out.lesion_masks.push_back(std::move(m));
    out.lesions.push_back(info);
  };

  for (int k = 0; k < n_mass + n_calc; ++k) {
    const bool is_mass = k < n_mass;
    const bool malignant = r_lesion.uniform() < o.malignant_fraction;
    rng lr = r_lesion.split();  // per-lesion stream: shape draws do not shift the next lesion's
    phantom_lesion info;
    info.type = is_mass ? lesion_type::mass : lesion_type::calcification;
    info.path = malignant ? pathology::malignant : pathology::benign;
    roi region;
    region.type = info.type;
    region.path = info.path;
    if (is_mass) {
      const double r0 = lr.uniform(4.0, 9.0) / sp;
      const int nspic = malignant && o.spiculation > 0 ? 6 + static_cast<int>(lr.below(9)) : 0;
      std::vector<double> sang(static_cast<std::size_t>(nspic)), slen(sang.size()), swid(sang.size());
      for (int s = 0; s < nspic; ++s) {
        sang[s] = lr.uniform(-pi, pi);
        slen[s] = r0 * lr.uniform(0.6, 1.5);
        swid[s] = lr.uniform(0.8, 1.6);
      }
      const double extent = r0 * (1 + 2 * o.lobulation) + (nspic ? r0 * 1.6 : 0.0);
      double pr, pc;
      if (!place(extent, pr, pc)) continue;
      info.center_row = pr, info.center_col = pc, info.radius = r0, info.spicules = nspic;
      double ha[6] = {}, hp[6] = {};
      const double aspect = malignant ? 1.0 : lr.uniform(0.65, 1.0), orient = lr.uniform(0, pi);
      if (malignant)
        for (int h = 0; h < 6; ++h) ha[h] = lr.uniform(0, o.lobulation) / std::sqrt(h + 1.0), hp[h] = lr.uniform(0, 2 * pi);
      // Radius of the margin in the direction th (angle in the image: atan2(d_row, d_col)).
      auto radius_at = [&](double th) {
        if (!malignant) {  // ellipse with semi-axes r0 and aspect * r0, rotated by orient
          const double u = std::cos(th - orient), v = std::sin(th - orient);
          return r0 * aspect / std::sqrt(aspect * aspect * u * u + v * v);
        }
        double g = 1;
        for (int h = 0; h < 6; ++h) g += ha[h] * std::cos((h + 2) * th + hp[h]);
        return r0 * g;
      };
      const double cs = o.mass_contrast * o.spiculation * 0.8;
      const auto r_lo = std::max<std::int64_t>(0, static_cast<std::int64_t>(pr - extent - 3));
      const auto r_hi = std::min<std::int64_t>(R - 1, static_cast<std::int64_t>(pr + extent + 3));
      const auto c_lo = std::max<std::int64_t>(0, static_cast<std::int64_t>(pc - extent - 3));
      const auto c_hi = std::min<std::int64_t>(C - 1, static_cast<std::int64_t>(pc + extent + 3));
      // Per spicule: direction (cos, sin) and where it leaves the body (80% of the margin radius).
      std::vector<std::array<double, 3>> sdir(sang.size());
      for (int s = 0; s < nspic; ++s) sdir[s] = {std::cos(sang[s]), std::sin(sang[s]), 0.8 * radius_at(sang[s])};
      const double soft = malignant ? 2.0 : 0.6;  // margin width in pixels: blurred vs circumscribed
      for (std::int64_t r = r_lo; r <= r_hi; ++r)
        for (std::int64_t c = c_lo; c <= c_hi; ++c) {
          const auto i = static_cast<std::size_t>(r * C + c);
          if (!out.breast.values[i]) continue;
          const double dr = static_cast<double>(r) - pr, dc = static_cast<double>(c) - pc, d = std::hypot(dr, dc);
          const double rad = radius_at(std::atan2(dr, dc)), u = d / rad;
          const double body = malignant ? std::sqrt(std::max(0.0, 1 - std::min(u, 1.0) * std::min(u, 1.0)))
                                        : std::sqrt(std::max(0.0, 1 - std::pow(std::min(u, 1.0), 4)));
          double v = o.mass_contrast * (0.35 + 0.65 * body) / (1 + std::exp((d - rad) / soft));
          for (int s = 0; s < nspic; ++s) {
            const double ux = sdir[s][0], uy = sdir[s][1], base = sdir[s][2];
            const double t = (dc * ux + dr * uy - base) / slen[s];
            if (t < 0 || t > 1) continue;
            const double q = dc * uy - dr * ux, w = swid[s] * (1 - 0.6 * t);
            v = std::max(v, cs * (1 - t) * std::exp(-q * q / (2 * w * w)));
          }
          img[i] += static_cast<float>(thick_at(r, c) * v);
        }
      // Outline polygon: the margin sampled every 360/96 degrees, plus a thin spike per spicule.
      std::vector<std::array<double, 2>> polar;  // (angle, radius)
      const int M = 96;
      for (int j = 0; j < M; ++j) {
        const double th = -pi + 2 * pi * j / M;
        bool near_spike = false;
        for (int s = 0; s < nspic; ++s)
          near_spike = near_spike || std::abs(std::remainder(th - sang[s], 2 * pi)) < 1.2 * swid[s] / radius_at(sang[s]);
        if (!near_spike) polar.push_back({th, radius_at(th)});
      }
      for (int s = 0; s < nspic; ++s) {
        const double rb = radius_at(sang[s]), delta = swid[s] / rb;
        polar.push_back({sang[s] - delta, radius_at(sang[s] - delta)});
        polar.push_back({sang[s], rb * 0.8 + 0.8 * slen[s]});
        polar.push_back({sang[s] + delta, radius_at(sang[s] + delta)});
      }
      for (auto& p : polar) p[0] = std::remainder(p[0], 2 * pi);
      std::sort(polar.begin(), polar.end());
      for (const auto& p : polar) region.polygon.push_back({pr + p[1] * std::sin(p[0]), pc + p[1] * std::cos(p[0])});
      region.description = malignant ? "phantom mass, irregular, spiculated" : "phantom mass, oval, circumscribed";
    } else {
      // Cluster radius, speck count and speck semi-axes (mm): malignant small, many, pleomorphic, tight.
      const double cluster_mm = malignant ? lr.uniform(2.0, 4.0) : lr.uniform(4.0, 8.0);
      const int n = malignant ? 6 + static_cast<int>(lr.below(10)) : 3 + static_cast<int>(lr.below(5));
      double pr, pc;
      if (!place(cluster_mm / sp + 1.0 / sp, pr, pc)) continue;
      double reach = 0, size_sum = 0;
      for (int s = 0; s < n; ++s) {
        double dr, dc;
        if (malignant) {  // Gaussian scatter, truncated to the cluster radius
          do dr = lr.normal() * 0.5, dc = lr.normal() * 0.5;
          while (dr * dr + dc * dc > 1);
        } else {  // uniform in the disc
          do dr = lr.uniform(-1, 1), dc = lr.uniform(-1, 1);
          while (dr * dr + dc * dc > 1);
        }
        const double sr = pr + dr * cluster_mm / sp, sc = pc + dc * cluster_mm / sp;
        const double sa = (malignant ? lr.uniform(0.12, 0.35) : lr.uniform(0.35, 0.8)) / sp;  // semi-major, px
        const double sb = sa * (malignant ? lr.uniform(0.3, 0.9) : lr.uniform(0.8, 1.0));
        const double ang = lr.uniform(0, pi);
        const double amp = o.calc_contrast * lr.uniform(0.7, 1.2);
        // A uniform ellipse seen through a ~0.5 px blur: Gaussian whose integral matches the ellipse's.
        const double ga = std::sqrt(0.36 * sa * sa + 0.25), gb = std::sqrt(0.36 * sb * sb + 0.25);
        const double peak = amp * std::min(1.0, sa * sb / (2 * ga * gb));
        const double ext = 4 * std::max(ga, gb);
        const double ca = std::cos(ang), sn = std::sin(ang);
        for (auto r = std::max<std::int64_t>(0, static_cast<std::int64_t>(sr - ext));
             r <= std::min<std::int64_t>(R - 1, static_cast<std::int64_t>(sr + ext)); ++r)
          for (auto c = std::max<std::int64_t>(0, static_cast<std::int64_t>(sc - ext));
               c <= std::min<std::int64_t>(C - 1, static_cast<std::int64_t>(sc + ext)); ++c) {
            const auto i = static_cast<std::size_t>(r * C + c);
            if (!out.breast.values[i]) continue;
            const double y = static_cast<double>(r) - sr, x = static_cast<double>(c) - sc;
            const double u = x * ca + y * sn, v = -x * sn + y * ca;
            img[i] += static_cast<float>(thick_at(r, c) * peak * std::exp(-0.5 * (u * u / (ga * ga) + v * v / (gb * gb))));
          }
        reach = std::max(reach, std::hypot(sr - pr, sc - pc) + sa);
        size_sum += sa;
      }
      info.center_row = pr, info.center_col = pc, info.specks = n, info.mean_speck_radius = size_sum / n;
      info.radius = reach + 1.0 / sp;  // 1 mm margin around the outermost speck
      region.center = std::array<double, 2>{pr, pc};
      region.radius = info.radius;
      region.description = malignant ? "phantom calcifications, fine pleomorphic, clustered"
                                     : "phantom calcifications, round, scattered";
    }
    add_lesion(std::move(region), info);
  }

  // Noise and the [0, 1] range.
  out.img = image(R, C);
  for (std::size_t i = 0; i < img.size(); ++i)
    out.img.pixels[i] = static_cast<float>(std::clamp(img[i] + o.noise * r_noise.normal(), 0.0, 1.0));

  const std::string id = "phantom-" + std::to_string(o.seed) + "-" + std::to_string(index);
  auto& meta = out.img.meta;
  meta.source = "phantom";
  meta.patient_id = id;
  meta.laterality = left ? "L" : "R";
  meta.view = mlo ? "MLO" : "CC";
  meta.presentation_intent = "FOR PROCESSING";
  meta.bits_stored = 16;
  meta.min_value = 0.0;
  meta.max_value = 1.0;
  meta.pixel_spacing_mm_row = sp;
  meta.pixel_spacing_mm_col = sp;
  out.record.image_path = id;
  out.record.patient_id = id;
  out.record.laterality = meta.laterality;
  out.record.view = meta.view;
  out.record.density = std::string(1, static_cast<char>('A' + density - 1));
  return out;
}

}  // namespace mammocl::data
