// Tests of Shen et al.'s patch sampler (data/patches.hpp): the overlap rules, the cut-off fallback,
// counts, labels, padding, rescale and crop, determinism and the error messages.
#include <boost/test/unit_test.hpp>

#include <cstring>

#include "mammocl/data/patches.hpp"
#include "mammocl/data/phantom.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using namespace mammocl::data;

namespace {

/// Image whose pixel (r, c) holds r * 1000 + c (exact in float), so a patch shows where it was cut.
image coordinate_image(std::int64_t rows, std::int64_t cols) {
  image img(rows, cols);
  img.meta.source = "coords.pgm";
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) img(r, c) = static_cast<float>(r * 1000 + c);
  return img;
}

mask rect_mask(std::int64_t rows, std::int64_t cols, std::int64_t top, std::int64_t left, std::int64_t h, std::int64_t w) {
  mask m(rows, cols);
  for (std::int64_t r = top; r < top + h; ++r)
    for (std::int64_t c = left; c < left + w; ++c) m(r, c) = 1;
  return m;
}

/// Both overlap ratios of the s x s window centred at (r, c), counted directly (not through the sampler's
/// summed-area table).
std::array<double, 2> direct_ratios(const mask& roi, std::int64_t r, std::int64_t c, std::int64_t s) {
  const double inter = static_cast<double>(overlap(roi, r - s / 2, c - s / 2, s, s));
  return {inter / static_cast<double>(roi.count()), inter / static_cast<double>(s * s)};
}

}  // namespace

BOOST_AUTO_TEST_CASE(lesion_and_background_patches_obey_the_overlap_rules) {
  const image img = coordinate_image(120, 100);
  const std::vector<mask> rois{rect_mask(120, 100, 20, 30, 10, 12), rect_mask(120, 100, 70, 10, 30, 30)};
  const std::vector<patch_class> labels{patch_class::benign_calcification, patch_class::malignant_mass};
  patch_options o;
  o.patch_size = 24;
  o.per_roi = 12;
  o.per_image = 20;
  const std::vector<patch> ps = sample_patches(img, rois, labels, mask(), o, 7);
  BOOST_TEST(ps.size() == 12u + 12u + 20u);
  int lesion = 0, background = 0;
  for (const patch& p : ps) {
    BOOST_TEST(p.pixels.rows == 24);
    BOOST_TEST(p.pixels.cols == 24);
    BOOST_TEST(p.source == "coords.pgm");
    if (p.roi >= 0) {
      ++lesion;
      BOOST_TEST(p.label == (p.roi == 0 ? 1 : 4));
      BOOST_TEST(p.cutoff == 0.75);
      const auto q = direct_ratios(rois[static_cast<std::size_t>(p.roi)], p.center_row, p.center_col, 24);
      BOOST_TEST(q[0] == p.roi_ratio);
      BOOST_TEST(q[1] == p.patch_ratio);
      BOOST_TEST((q[0] > 0.75 || q[1] > 0.75), "centre " << p.center_row << ", " << p.center_col);
      // Centre inside the ROI's bounding box.
      const box bb = *bounding_box(rois[static_cast<std::size_t>(p.roi)]);
      BOOST_TEST((p.center_row >= bb.top && p.center_row < bb.bottom && p.center_col >= bb.left && p.center_col < bb.right));
    } else {
      ++background;
      BOOST_TEST(p.label == 0);
      for (const mask& m : rois) {
        const auto q = direct_ratios(m, p.center_row, p.center_col, 24);
        BOOST_TEST(q[0] <= 0.35);
        BOOST_TEST(q[1] <= 0.35);
      }
    }
    // The patch is the window of the (zero-padded) image around its centre.
    for (std::int64_t r = 0; r < 24; r += 5)
      for (std::int64_t c = 0; c < 24; c += 5) {
        const std::int64_t sr = p.center_row - 12 + r, sc = p.center_col - 12 + c;
        const float want = (sr < 0 || sc < 0 || sr >= 120 || sc >= 100) ? 0.0f : static_cast<float>(sr * 1000 + sc);
        BOOST_TEST(p.pixels(r, c) == want);
      }
  }
  BOOST_TEST(lesion == 24);
  BOOST_TEST(background == 20);
  // Lesion patches come first, ROI by ROI, in the fixed label order of annotation.hpp.
  BOOST_TEST(ps.front().label == static_cast<int>(patch_class::benign_calcification));
  BOOST_TEST(ps[12].label == static_cast<int>(patch_class::malignant_mass));
}

BOOST_AUTO_TEST_CASE(fallback_lowers_the_cutoff_when_075_is_impossible) {
  // A 48 x 48 checkerboard ROI and 16 x 16 patches: a window inside it holds exactly 128 of its 1152
  // pixels, so overlap/patch is at most 0.5 and overlap/ROI at most 0.111. 0.75, 0.70, ..., 0.55 fail; the
  // fifth step gives 0.75 - 5 x 0.05 in floating point, 0.49999999999999983 (as in Shen's Python), which
  // the ratio 0.5 passes.
  const std::int64_t n = 80;
  mask roi(n, n);
  for (std::int64_t r = 16; r < 64; ++r)
    for (std::int64_t c = 16; c < 64; ++c) roi(r, c) = (r + c) % 2;
  const image img = coordinate_image(n, n);
  patch_options o;
  o.patch_size = 16;
  o.per_roi = 10;
  o.per_image = 0;
  const auto ps = sample_patches(img, {roi}, {patch_class::benign_mass}, mask(), o);
  BOOST_TEST(ps.size() == 10u);
  double fifth = 0.75;
  for (int k = 0; k < 5; ++k) fifth -= 0.05;
  for (const patch& p : ps) {
    BOOST_TEST(p.cutoff == fifth);
    BOOST_TEST(p.cutoff < 0.75);
    const auto q = direct_ratios(roi, p.center_row, p.center_col, 16);
    BOOST_TEST((q[0] > p.cutoff || q[1] > p.cutoff));
    BOOST_TEST(q[1] <= 0.5);
  }
}

BOOST_AUTO_TEST_CASE(background_centres_inside_the_breast_and_counts_capped) {
  const image img = coordinate_image(90, 90);
  // Breast: columns 0..39 only. One ROI inside it.
  const mask breast = rect_mask(90, 90, 0, 0, 90, 40);
  const mask roi = rect_mask(90, 90, 40, 10, 8, 8);
  patch_options o;
  o.patch_size = 20;
  o.per_roi = 5;
  o.per_image = 15;
  o.crop_to_breast = true;
  const auto ps = sample_patches(img, {roi}, {patch_class::malignant_calcification}, breast, o, 3);
  BOOST_TEST(ps.size() == 20u);
  for (const patch& p : ps) {
    BOOST_TEST(breast(p.center_row, p.center_col) == 1);
    if (p.label == 0) {
      const auto q = direct_ratios(roi, p.center_row, p.center_col, 20);
      BOOST_TEST((q[0] <= 0.35 && q[1] <= 0.35));
    } else {
      BOOST_TEST(p.label == 2);
    }
    // After the crop to columns [0, 40) the padding starts at column 40: the patch holds zeros there.
    const std::int64_t c40 = 40 - (p.center_col - 10);
    if (c40 >= 0 && c40 < 20) BOOST_TEST(p.pixels(10, c40) == 0.0f);
  }
  // When every window centred in the breast lies inside the ROI, no background window can pass: the
  // count is capped by the draw budget instead of looping for ever.
  o.per_roi = 1;
  o.max_background_tries = 500;
  o.crop_to_breast = false;
  const auto none = sample_patches(img, {rect_mask(90, 90, 0, 0, 90, 90)}, {patch_class::benign_mass},
                                   rect_mask(90, 90, 30, 30, 30, 30), o, 3);
  BOOST_TEST(none.size() == 1u);
}

BOOST_AUTO_TEST_CASE(rescale_and_output_size) {
  const image img = coordinate_image(200, 160);
  const mask roi = rect_mask(200, 160, 100, 60, 30, 30);
  patch_options o;
  o.patch_size = 32;
  o.output_size = 16;
  o.target_height = 100;  // half size: the ROI becomes 15 x 15 at (50, 30)
  o.per_roi = 8;
  o.per_image = 4;
  const auto ps = sample_patches(img, {roi}, {patch_class::benign_mass}, mask(), o, 1);
  BOOST_TEST(ps.size() == 12u);
  for (const patch& p : ps) {
    BOOST_TEST(p.pixels.rows == 16);
    BOOST_TEST(p.pixels.cols == 16);
    if (p.label == 3) {
      // Centres reported in the input frame: inside the ROI's box (rescaled centres map to 2 r + 0.5).
      BOOST_TEST((p.center_row >= 99 && p.center_row <= 131 && p.center_col >= 59 && p.center_col <= 91));
    }
  }
}

BOOST_AUTO_TEST_CASE(deterministic_per_stream) {
  phantom_options po;
  po.rows = 256;
  po.cols = 192;
  po.pixel_spacing_mm = 0.6;
  po.min_masses = po.max_masses = 1;
  po.min_calc_clusters = po.max_calc_clusters = 1;
  const phantom_case pc = generate_phantom(po, 2);
  patch_options o;
  o.patch_size = 48;
  o.per_roi = 6;
  o.per_image = 6;
  const auto a = sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, o, 2);
  const auto b = sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, o, 2);
  const auto c = sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, o, 3);
  BOOST_REQUIRE(a.size() == b.size());
  BOOST_TEST(a.size() == 6 * pc.record.rois.size() + 6);
  bool differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    BOOST_TEST(a[i].center_row == b[i].center_row);
    BOOST_TEST(a[i].center_col == b[i].center_col);
    BOOST_TEST(std::memcmp(a[i].pixels.pixels.data(), b[i].pixels.pixels.data(), a[i].pixels.size() * sizeof(float)) == 0);
    BOOST_TEST(a[i].source == pc.record.image_path);
    if (a[i].roi >= 0) BOOST_TEST(a[i].label == static_cast<int>(pc.record.rois[static_cast<std::size_t>(a[i].roi)].label()));
    else BOOST_TEST(pc.breast(a[i].center_row, a[i].center_col) == 1);
    differs = differs || i >= c.size() || a[i].center_row != c[i].center_row || a[i].center_col != c[i].center_col;
  }
  BOOST_TEST(differs);
}

BOOST_AUTO_TEST_CASE(errors_name_the_source_and_the_sizes) {
  image img(40, 50);
  img.meta.source = "test.pgm";
  const mask roi = rect_mask(40, 50, 5, 5, 4, 4);
  patch_options o;
  o.patch_size = 64;
  o.pad = false;
  test::expect_error<shape_error>([&] { (void)sample_patches(img, {roi}, {patch_class::benign_mass}, mask(), o); },
                                  "sample_patches: patch size 64 is larger than the 40 x 50 image test.pgm (40 x 50 padded by 0)");
  o = patch_options{};
  o.patch_size = 16;
  test::expect_error<config_error>([&] { (void)sample_patches(img, {mask(40, 50)}, {patch_class::benign_mass}, mask(), o); },
                                   "sample_patches: ROI 0 (benign mass) of test.pgm has no pixels in the 40 x 50 image it is sampled from");
  test::expect_error<shape_error>([&] { (void)sample_patches(img, {mask(40, 49)}, {patch_class::benign_mass}, mask(), o); },
                                  "sample_patches: ROI 0 mask of test.pgm is 40 x 49; expected the image size 40 x 50");
  test::expect_error<shape_error>([&] { (void)sample_patches(img, {roi}, {patch_class::benign_mass}, mask(10, 10), o); },
                                  "sample_patches: breast mask of test.pgm is 10 x 10; expected the image size 40 x 50 (or 0 x 0 for none)");
  test::expect_error<config_error>([&] { (void)sample_patches(img, {roi}, {patch_class::normal}, mask(), o); },
                                   "sample_patches: ROI 0 of test.pgm has the label 0 (normal); a ROI must be a lesion class 1..4");
  test::expect_error<config_error>([&] { (void)sample_patches(img, {roi}, {}, mask(), o); },
                                   "sample_patches: 1 ROI masks but 0 labels for test.pgm");
  test::expect_error<config_error>([&] { (void)sample_patches(img, {roi}, {patch_class::benign_mass}, mask(40, 50), o); },
                                   "sample_patches: the breast mask of test.pgm (40 x 50) has no pixels");
  // A ROI that vanishes in the rescale (a single pixel, quartered) is reported with the rescaled size.
  o.target_height = 10;
  o.patch_size = 4;
  test::expect_error<config_error>(
      [&] { (void)sample_patches(img, {rect_mask(40, 50, 7, 7, 1, 1)}, {patch_class::malignant_mass}, mask(), o); },
      "sample_patches: ROI 0 (malignant mass) of test.pgm has no pixels in the 10 x 13 image it is sampled from");
  case_record rec;
  rec.image_path = "case.dcm";
  test::expect_error<config_error>([&] { (void)sample_patches(img, rec, {roi}, mask(), o); },
                                   "sample_patches: case.dcm has 0 ROIs but 1 ROI masks");
}
