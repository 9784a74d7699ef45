// Augmentations (include/mammocl/data/augment.hpp): exact values for flips, 90° rotations, crops of a ramp,
// gamma and contrast; torchvision's RandomResizedCrop fallback; pipeline determinism and two views.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include "mammocl/data/augment.hpp"
#include "test_helpers.hpp"

namespace {

using namespace mammocl;
using namespace mammocl::data;

// rows x cols image with distinct values 100 r + c.
image numbered(std::int64_t rows, std::int64_t cols) {
  image im(rows, cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) im(r, c) = static_cast<float>(100 * r + c);
  return im;
}

bool same(const image& a, const image& b) { return a.rows == b.rows && a.cols == b.cols && a.pixels == b.pixels; }

}  // namespace

BOOST_AUTO_TEST_SUITE(augment)

BOOST_AUTO_TEST_CASE(flips_are_index_permutations) {
  const auto im = numbered(3, 4);
  const auto h = hflip(im), v = vflip(im);
  for (std::int64_t r = 0; r < 3; ++r)
    for (std::int64_t c = 0; c < 4; ++c) {
      BOOST_TEST(h(r, c) == im(r, 3 - c));
      BOOST_TEST(v(r, c) == im(2 - r, c));
    }
  BOOST_TEST(same(hflip(h), im));
  BOOST_TEST(same(vflip(v), im));
}

BOOST_AUTO_TEST_CASE(rotation_by_multiples_of_90_is_a_permutation) {
  for (std::int64_t n : {4, 5}) {  // even and odd sides (centre between pixels or on one)
    const auto im = numbered(n, n);
    const auto r90 = rotate(im, 90), r180 = rotate(im, 180), r270 = rotate(im, 270), rm90 = rotate(im, -90);
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t c = 0; c < n; ++c) {
        BOOST_TEST(r90(r, c) == im(c, n - 1 - r));  // numpy rot90: counter-clockwise
        BOOST_TEST(r180(r, c) == im(n - 1 - r, n - 1 - c));
        BOOST_TEST(r270(r, c) == im(n - 1 - c, r));
      }
    BOOST_TEST(same(rm90, r270));
    BOOST_TEST(same(rotate(im, 450), r90));
  }
  const auto rect = numbered(3, 5);  // 180° keeps a rectangle: both flips
  BOOST_TEST(same(rotate(rect, 180), hflip(vflip(rect))));
}

BOOST_AUTO_TEST_CASE(rotation_by_zero_is_identity) {
  const auto im = numbered(6, 9);
  BOOST_TEST(same(rotate(im, 0.0, -7.0f), im));
  BOOST_TEST(same(rotate(im, 360.0), im));
}

BOOST_AUTO_TEST_CASE(rotation_bilinear_values_and_fill) {
  // Bilinear interpolation reproduces a linear ramp exactly, so inside the image the rotated ramp
  // v = x (column) equals the source column of each output pixel: cx + dx cos t - dy sin t.
  const std::int64_t n = 21;
  image ramp(n, n);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < n; ++c) ramp(r, c) = static_cast<float>(c);
  const double t = 30.0 * std::acos(-1.0) / 180.0, cx = 10.0;
  const auto rot = rotate(ramp, 30.0, -1.0f);
  for (std::int64_t r = 5; r <= 15; ++r)
    for (std::int64_t c = 5; c <= 15; ++c) {
      const double expected = cx + (c - cx) * std::cos(t) - (r - cx) * std::sin(t);
      BOOST_TEST(rot(r, c) == expected, boost::test_tools::tolerance(1e-5));
    }
  // 45° on a constant 9x9: pixel (0,0) comes from (row 4 - 4·sqrt(2), col 4) = (-1.66, 4), outside: fill.
  // The centre comes from itself.
  const auto flat = rotate(image(9, 9, 0.5f), 45.0, -1.0f);
  BOOST_TEST(flat(0, 0) == -1.0f);
  BOOST_TEST(flat(8, 8) == -1.0f);
  BOOST_TEST(flat(4, 4) == 0.5f);
  BOOST_TEST(flat(0, 4) == 0.5f);  // from (4 - 4/sqrt2, 4 + 4/sqrt2) = (1.17, 6.83): inside
}

BOOST_AUTO_TEST_CASE(resized_crop_of_a_ramp) {
  image ramp(12, 16);
  for (std::int64_t r = 0; r < 12; ++r)
    for (std::int64_t c = 0; c < 16; ++c) ramp(r, c) = static_cast<float>(10 * r + c);
  const crop_box box{2, 3, 4, 6};
  // Same size: a plain copy of the box.
  const auto same_size = resized_crop(ramp, box, 4, 6);
  for (std::int64_t r = 0; r < 4; ++r)
    for (std::int64_t c = 0; c < 6; ++c) BOOST_TEST(same_size(r, c) == static_cast<float>(10 * (r + 2) + (c + 3)));
  // Half size: source (2 + 2r + 0.5, 3 + 2c + 0.5), the ramp's value there.
  const auto half = resized_crop(ramp, box, 2, 3);
  for (std::int64_t r = 0; r < 2; ++r)
    for (std::int64_t c = 0; c < 3; ++c) BOOST_TEST(half(r, c) == 10 * (2.5 + 2 * r) + (3.5 + 2 * c));
  // Double width of a 1 x 2 box: sources -0.25, 0.25, 0.75, 1.25 clamped to [0, 1] (PyTorch
  // align_corners=False): values 33, 33.25, 33.75, 34.
  const auto up = resized_crop(ramp, {3, 3, 1, 2}, 1, 4);
  BOOST_TEST(up.pixels == (std::vector<float>{33.0f, 33.25f, 33.75f, 34.0f}));
  test::expect_error<shape_error>([&] { (void)resized_crop(ramp, {10, 0, 4, 4}, 4, 4); },
                                  "resized_crop: box (top 10, left 0, 4 x 4) is not inside the 12 x 16 image");
}

BOOST_AUTO_TEST_CASE(random_resized_crop_params_follow_torchvision) {
  rng r(11);
  for (int k = 0; k < 2000; ++k) {
    const auto b = random_resized_crop_params(64, 80, {0.5, 1.0}, {3.0 / 4, 4.0 / 3}, r);
    BOOST_TEST((b.top >= 0 && b.left >= 0 && b.top + b.height <= 64 && b.left + b.width <= 80));
    const double area = static_cast<double>(b.height * b.width) / (64.0 * 80.0);
    BOOST_TEST((area > 0.45 && area < 1.05), "area fraction " << area);
    const double aspect = static_cast<double>(b.width) / static_cast<double>(b.height);
    BOOST_TEST((aspect > 0.7 && aspect < 1.4), "aspect " << aspect);
  }
  // A 10 x 100 strip: sqrt(area / aspect) >= 27 > 10 rows on every try, so after 10 tries (20 uniforms)
  // torchvision falls back to the centre crop with the aspect clamped to 4/3: h = 10, w = round(13.33) = 13,
  // left = (100 - 13) // 2 = 43.
  rng a(5), b(5);
  BOOST_TEST((random_resized_crop_params(10, 100, {0.99, 1.0}, {3.0 / 4, 4.0 / 3}, a) == crop_box{0, 43, 10, 13}));
  for (int k = 0; k < 20; ++k) (void)b.uniform();
  BOOST_TEST(a.next() == b.next());
  // The transposed strip: w = 10, h = round(10 / 0.75) = 13, top = 43.
  BOOST_TEST((random_resized_crop_params(100, 10, {0.99, 1.0}, {3.0 / 4, 4.0 / 3}, a) == crop_box{43, 0, 13, 10}));
  test::expect_error<config_error>([&] { (void)random_resized_crop_params(10, 10, {0.0, 1.0}, {1, 1}, a); },
                                   "random_resized_crop_params: scale (0, 1) is not an ordered range in (0, 1]");
}

BOOST_AUTO_TEST_CASE(gamma_and_contrast_of_known_values) {
  image im(1, 5);
  im.pixels = {0.0f, 0.25f, 1.0f, 1.5f, -0.2f};
  BOOST_TEST(adjust_gamma(im, 0.5).pixels == (std::vector<float>{0.0f, 0.5f, 1.0f, 1.0f, 0.0f}));
  BOOST_TEST(adjust_gamma(im, 2.0).pixels == (std::vector<float>{0.0f, 0.0625f, 1.0f, 1.0f, 0.0f}));
  image c(2, 2);
  c.pixels = {0.0f, 0.5f, 1.0f, 0.5f};  // mean 0.5
  BOOST_TEST(adjust_contrast(c, 0.5).pixels == (std::vector<float>{0.25f, 0.5f, 0.75f, 0.5f}));
  c.pixels = {0.2f, 0.4f, 0.4f, 0.6f};  // mean 0.4; factor 3: -0.2 -> 0, 0.4, 0.4, 1.0
  const auto hi = adjust_contrast(c, 3.0);
  BOOST_TEST(hi(0, 0) == 0.0f);
  BOOST_TEST(hi(0, 1) == 0.4f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(hi(1, 1) == 1.0f, boost::test_tools::tolerance(1e-6f));
  test::expect_error<config_error>([&] { (void)adjust_gamma(im, 0.0); }, "adjust_gamma: gamma 0 is not a positive number");
  test::expect_error<config_error>([&] { (void)adjust_contrast(im, -1.0); }, "adjust_contrast: factor -1 is not a number >= 0");
}

BOOST_AUTO_TEST_CASE(pipeline_is_deterministic_and_composed_of_the_parts) {
  image im(40, 48);
  rng fill(3);
  for (auto& v : im.pixels) v = static_cast<float>(fill.uniform());
  const augment_pipeline aug({.out_rows = 32, .out_cols = 32});
  rng r1(42), r2(42), r3(43);
  const auto a = aug(im, r1), b = aug(im, r2), c = aug(im, r3);
  BOOST_TEST((a.rows == 32 && a.cols == 32));
  BOOST_TEST(same(a, b));
  BOOST_TEST(!same(a, c));
  // operator() = apply(draw); apply = the public functions in the documented order.
  rng r4(42);
  const auto p = aug.draw(im.rows, im.cols, r4);
  image x = p.rotated ? rotate(im, p.degrees, 0.0f) : im;
  x = resized_crop(x, p.box, 32, 32);
  if (p.hflip) x = hflip(x);
  if (p.vflip) x = vflip(x);
  if (p.gamma != 1.0) x = adjust_gamma(x, p.gamma);
  if (p.contrast != 1.0) x = adjust_contrast(x, p.contrast);
  BOOST_TEST(same(x, a));
  // Over many draws every step occurs and stays within its range.
  int rotated = 0, hf = 0, gam = 0, con = 0;
  for (int k = 0; k < 400; ++k) {
    const auto q = aug.draw(64, 64, r4);
    rotated += q.rotated, hf += q.hflip, gam += q.gamma != 1.0, con += q.contrast != 1.0;
    BOOST_TEST(std::abs(q.degrees) <= 25.0);
    BOOST_TEST((q.gamma >= 0.8 && q.gamma <= 1.25));
    BOOST_TEST((q.contrast >= 0.8 && q.contrast <= 1.2));
  }
  BOOST_TEST(rotated == 400);
  BOOST_TEST((hf > 150 && hf < 250));
  BOOST_TEST((gam > 150 && gam < 250));
  BOOST_TEST((con > 150 && con < 250));
  // Everything off: identity.
  const augment_pipeline none({.hflip_p = 0, .vflip_p = 0, .rotate_p = 0, .random_crop = false, .gamma_p = 0, .contrast_p = 0});
  BOOST_TEST(same(none(im, r1), im));
}

BOOST_AUTO_TEST_CASE(two_views_are_independent_draws) {
  image im(32, 32);
  for (std::int64_t k = 0; k < 32 * 32; ++k) im.pixels[static_cast<std::size_t>(k)] = static_cast<float>(k % 29) / 29.0f;
  const augment_pipeline aug;
  rng r(7), s(7);
  const auto [v0, v1] = two_views(im, aug, r);
  BOOST_TEST(!same(v0, v1));
  BOOST_TEST(same(v0, aug(im, s)));
  BOOST_TEST(same(v1, aug(im, s)));
}

BOOST_AUTO_TEST_CASE(pipeline_option_errors) {
  test::expect_error<config_error>([] { augment_pipeline({.hflip_p = 1.5}); },
                                   "augment_pipeline: hflip_p = 1.5 is not a probability in [0, 1]");
  test::expect_error<config_error>([] { augment_pipeline({.out_rows = 10}); },
                                   "augment_pipeline: output size 10 x 0 must be both positive or both 0");
  test::expect_error<config_error>([] { augment_pipeline({.crop_scale = {0.8, 0.5}}); },
                                   "augment_pipeline: crop_scale (0.8, 0.5) is not an ordered range in (0, 1]");
  test::expect_error<config_error>([] { augment_pipeline({.gamma = {0.0, 1.0}}); },
                                   "augment_pipeline: gamma (0, 1) is not an ordered positive range");
  test::expect_error<config_error>([] { augment_pipeline({.max_degrees = 200}); },
                                   "augment_pipeline: max_degrees = 200 is not in [0, 180]");
  test::expect_error<shape_error>([] { (void)rotate(image(), 10); }, "rotate: image is 0 x 0 with 0 pixels");
}

BOOST_AUTO_TEST_SUITE_END()
