// Tests of the phantom generator (data/phantom.hpp): determinism, value range, geometry, lesion
// statistics; and of data/mask_ops.hpp and data/resize.hpp against hand-computed values.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <numeric>

#include "mammocl/data/mask_ops.hpp"
#include "mammocl/data/phantom.hpp"
#include "mammocl/data/resize.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using namespace mammocl::data;

namespace {

/// Small phantoms keep the suite fast: 384 x 288 at 0.4 mm is the same 154 x 115 mm breast field.
phantom_options small_options() {
  phantom_options o;
  o.rows = 384;
  o.cols = 288;
  o.pixel_spacing_mm = 0.4;
  return o;
}

/// 4-connected boundary pixels: set pixels with an unset (or outside) 4-neighbour.
std::int64_t perimeter(const mask& m) {
  std::int64_t n = 0;
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < m.cols; ++c) {
      if (!m(r, c)) continue;
      auto off = [&](std::int64_t rr, std::int64_t cc) { return rr < 0 || cc < 0 || rr >= m.rows || cc >= m.cols || !m(rr, cc); };
      n += off(r - 1, c) || off(r + 1, c) || off(r, c - 1) || off(r, c + 1);
    }
  return n;
}

/// Area / perimeter^2, relative to that of a digital disc of radius 20 (1 for a disc, smaller for
/// elongated or spiky shapes).
double compactness(const mask& m) {
  auto raw = [](const mask& x) {
    const double p = static_cast<double>(perimeter(x));
    return static_cast<double>(x.count()) / (p * p);
  };
  mask disc(50, 50);
  fill_circle(disc, 25, 25, 20);
  return raw(m) / raw(disc);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(mask_ops)

BOOST_AUTO_TEST_CASE(circle_rasterisation_matches_hand_count) {
  // Radius 1.5 around (3, 3): centres at squared distance <= 2.25 are (0,0), 4 at distance 1, 4 at sqrt 2.
  roi c;
  c.center = std::array<double, 2>{3, 3};
  c.radius = 1.5;
  const mask m = rasterize(c, 7, 7);
  BOOST_TEST(m.count() == 9);
  for (std::int64_t r = 0; r < 7; ++r)
    for (std::int64_t col = 0; col < 7; ++col)
      BOOST_TEST((m(r, col) != 0) == (std::abs(r - 3) <= 1 && std::abs(col - 3) <= 1));
  // Radius 2: adds the 4 points at distance exactly 2 (boundary counts as inside): 13 pixels.
  c.radius = 2.0;
  BOOST_TEST(rasterize(c, 7, 7).count() == 13);
  // Clipped at the image border: quarter of the radius-2 disc around (0, 0) plus the axes: 1 + 2 + 2 + 1 = 6.
  c.center = std::array<double, 2>{0, 0};
  BOOST_TEST(rasterize(c, 7, 7).count() == 6);
}

BOOST_AUTO_TEST_CASE(polygon_rasterisation_matches_hand_mask) {
  // Axis-aligned rectangle with corners on half-pixel positions: covers rows 1..3, columns 2..5 exactly.
  roi p;
  p.polygon = {{0.5, 1.5}, {0.5, 5.5}, {3.5, 5.5}, {3.5, 1.5}};
  const mask m = rasterize(p, 6, 8);
  BOOST_TEST(m.count() == 12);
  for (std::int64_t r = 0; r < 6; ++r)
    for (std::int64_t c = 0; c < 8; ++c) BOOST_TEST((m(r, c) != 0) == (r >= 1 && r <= 3 && c >= 2 && c <= 5));
  // Right triangle (0,0), (0,4), (4,0): centres with r + c < 4 or on the left/top edges; the half-open rule
  // keeps (r, c) with c < 4 - r: rows 0..3 give 4, 3, 2, 1 pixels.
  roi t;
  t.polygon = {{0, 0}, {0, 4}, {4, 0}};
  const mask mt = rasterize(t, 6, 6);
  BOOST_TEST(mt.count() == 10);
  BOOST_TEST(mt(0, 3) == 1);
  BOOST_TEST(mt(0, 4) == 0);
  BOOST_TEST(mt(3, 0) == 1);
  BOOST_TEST(mt(3, 1) == 0);
}

BOOST_AUTO_TEST_CASE(rasterise_errors) {
  roi none;
  test::expect_error<config_error>([&] { (void)rasterize(none, 4, 4); }, "rasterize: ROI (benign mass) has no location");
  roi file;
  file.mask_path = "roi_1.png";
  test::expect_error<config_error>([&] { (void)rasterize(file, 4, 4); },
                                   "ROI is given by the mask file roi_1.png; read it with an image reader");
  roi zero;
  zero.center = std::array<double, 2>{1, 1};
  test::expect_error<config_error>([&] { (void)rasterize(zero, 4, 4); },
                                   "circle ROI at (1, 1) has radius 0; expected a positive radius");
  roi two;
  two.polygon = {{0, 0}, {1, 1}};
  test::expect_error<config_error>([&] { (void)rasterize(two, 4, 4); }, "polygon ROI has 2 vertices; expected at least 3");
}

BOOST_AUTO_TEST_CASE(bounding_box_components_and_overlap) {
  mask m(10, 12);
  BOOST_TEST(!bounding_box(m).has_value());
  BOOST_TEST(!largest_component_box(m).has_value());
  // Component A: 2 x 2 block at rows 1..2, cols 1..2 (4 px). Component B: diagonal chain (8-connected)
  // (5,5), (6,6), (7,7), (8,8), (8,9) (5 px).
  for (int r = 1; r <= 2; ++r)
    for (int c = 1; c <= 2; ++c) m(r, c) = 1;
  m(5, 5) = m(6, 6) = m(7, 7) = m(8, 8) = m(8, 9) = 1;
  BOOST_TEST(area(m) == 9);
  BOOST_TEST((*bounding_box(m) == box{1, 1, 9, 10}));
  BOOST_TEST((*largest_component_box(m) == box{5, 5, 9, 10}));
  BOOST_TEST(largest_component(m).count() == 5);
  // Window rows [0, 6) x cols [0, 6): all of A and (5,5): 5 pixels. Window partly outside: rows [-3, 2).
  BOOST_TEST(overlap(m, 0, 0, 6, 6) == 5);
  BOOST_TEST(overlap(m, -3, -3, 5, 5) == 1);
  const mask_integral sat(m);
  BOOST_TEST(sat.total() == 9);
  for (int top = -4; top < 12; top += 3)
    for (int left = -4; left < 14; left += 3)
      for (int h : {1, 4, 7})
        BOOST_TEST(sat.count(top, left, h, 5) == overlap(m, top, left, h, 5));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(resizing)

BOOST_AUTO_TEST_CASE(constant_stays_constant) {
  image img(7, 9, 0.625f);
  for (auto [r, c] : {std::pair{3, 4}, {14, 18}, {5, 20}, {10, 2}}) {
    const image out = resize(img, r, c);
    for (float v : out.pixels) BOOST_TEST(v == 0.625f, boost::test_tools::tolerance(1e-6f));
  }
}

BOOST_AUTO_TEST_CASE(ramp_shrink_by_area_is_exact) {
  // v = c on 8 columns shrunk to 4: each output averages columns 2o, 2o+1 -> 0.5, 2.5, 4.5, 6.5.
  image img(2, 8);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 8; ++c) img(r, c) = static_cast<float>(c);
  const image out = resize(img, 2, 4);
  const float want[4] = {0.5f, 2.5f, 4.5f, 6.5f};
  for (int c = 0; c < 4; ++c) BOOST_TEST(out(1, c) == want[c], boost::test_tools::tolerance(1e-6f));
  // Non-integer ratio 6 -> 4 (s = 1.5): output 0 covers [0, 1.5): all of col 0, half of col 1 ->
  // (0 + 0.5 * 1) / 1.5 = 1/3; output 1 covers [1.5, 3): (0.5 * 1 + 2) / 1.5 = 5/3; and so on.
  image six(1, 6);
  for (int c = 0; c < 6; ++c) six(0, c) = static_cast<float>(c);
  const image four = resize(six, 1, 4);
  const float want4[4] = {1.0f / 3.0f, 5.0f / 3.0f, 10.0f / 3.0f, 14.0f / 3.0f};
  for (int c = 0; c < 4; ++c) BOOST_TEST(four(0, c) == want4[c], boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(ramp_enlarge_bilinear_is_exact) {
  // v = r on 4 rows enlarged to 8 (s = 0.5): x = (o + 0.5) / 2 - 0.5, clamped to [0, 3].
  image img(4, 3);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 3; ++c) img(r, c) = static_cast<float>(r);
  const image out = resize(img, 8, 3);
  const float want[8] = {0, 0.25f, 0.75f, 1.25f, 1.75f, 2.25f, 2.75f, 3};
  for (int r = 0; r < 8; ++r) BOOST_TEST(out(r, 2) == want[r], boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(area_preserved_when_shrinking_and_spacing_scaled) {
  image img(30, 20);
  img.meta.pixel_spacing_mm_row = 0.1;
  img.meta.pixel_spacing_mm_col = 0.1;
  rng r(7);
  for (auto& v : img.pixels) v = static_cast<float>(r.uniform());
  const double total = std::accumulate(img.pixels.begin(), img.pixels.end(), 0.0);
  const image out = resize(img, 12, 7);  // non-integer ratios 2.5 and 20/7
  const double out_total = std::accumulate(out.pixels.begin(), out.pixels.end(), 0.0);
  BOOST_TEST(out_total * (30.0 * 20.0) / (12.0 * 7.0) == total, boost::test_tools::tolerance(1e-5));
  BOOST_TEST(*out.meta.pixel_spacing_mm_row == 0.25, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(*out.meta.pixel_spacing_mm_col == 2.0 / 7.0, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(mask_resize_nearest_and_majority) {
  mask m(4, 4);
  m(0, 0) = m(0, 1) = m(1, 0) = 1;  // 3 of the top-left 2x2 block
  m(2, 2) = m(3, 3) = 1;            // 2 of the bottom-right block: exactly half stays unset
  const mask small = resize(m, 2, 2);
  BOOST_TEST(small(0, 0) == 1);
  BOOST_TEST(small(1, 1) == 0);
  BOOST_TEST(small.count() == 1);
  const mask big = resize(m, 8, 8);  // nearest: every pixel becomes a 2x2 block
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) BOOST_TEST(big(r, c) == m(r / 2, c / 2));
  test::expect_error<shape_error>([&] { (void)resize(m, 0, 3); }, "resize: target size 0 x 3 of a mask must be positive");
  image img(2, 2);
  img.meta.source = "a.pgm";
  test::expect_error<shape_error>([&] { (void)resize(img, 3, -1); }, "resize: target size 3 x -1 must be positive (image from a.pgm)");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(phantom)

BOOST_AUTO_TEST_CASE(deterministic_and_index_dependent) {
  const phantom_options o = small_options();
  const phantom_case a = generate_phantom(o, 3), b = generate_phantom(o, 3), c = generate_phantom(o, 4);
  BOOST_TEST(a.img.pixels.size() == b.img.pixels.size());
  BOOST_TEST(std::memcmp(a.img.pixels.data(), b.img.pixels.data(), a.img.pixels.size() * sizeof(float)) == 0);
  BOOST_TEST(a.record.rois.size() == b.record.rois.size());
  for (std::size_t k = 0; k < a.lesion_masks.size(); ++k) BOOST_TEST((a.lesion_masks[k].values == b.lesion_masks[k].values));
  BOOST_TEST(std::memcmp(a.img.pixels.data(), c.img.pixels.data(), a.img.pixels.size() * sizeof(float)) != 0);
  phantom_options o2 = o;
  o2.seed = 2;
  const phantom_case d = generate_phantom(o2, 3);
  BOOST_TEST(std::memcmp(a.img.pixels.data(), d.img.pixels.data(), a.img.pixels.size() * sizeof(float)) != 0);
}

BOOST_AUTO_TEST_CASE(range_metadata_and_record) {
  phantom_options o = small_options();
  o.view = phantom_view::cc;
  o.laterality = phantom_laterality::left;
  o.density = 3;
  const phantom_case p = generate_phantom(o, 0);
  BOOST_TEST(p.img.rows == 384);
  BOOST_TEST(p.img.cols == 288);
  for (float v : p.img.pixels) BOOST_TEST((v >= 0.0f && v <= 1.0f));
  BOOST_TEST(p.img.meta.source == "phantom");
  BOOST_TEST(p.img.meta.laterality == "L");
  BOOST_TEST(p.img.meta.view == "CC");
  BOOST_TEST(*p.img.meta.pixel_spacing_mm_row == 0.4);
  BOOST_TEST(*p.img.meta.pixel_spacing_mm_col == 0.4);
  BOOST_TEST(p.record.density == "C");
  BOOST_TEST(p.record.patient_id == "phantom-1-0");
  BOOST_TEST(p.record.rois.size() == p.lesion_masks.size());
  BOOST_TEST(p.record.rois.size() == p.lesions.size());
  // Chest wall on the left for "L": the left column is mostly breast, the right column is background.
  std::int64_t left_col = 0, right_col = 0;
  for (std::int64_t r = 0; r < p.breast.rows; ++r) left_col += p.breast(r, 0), right_col += p.breast(r, p.breast.cols - 1);
  BOOST_TEST(left_col > p.breast.rows / 2);
  BOOST_TEST(right_col == 0);
  // Background is dark, breast brighter on average.
  double in = 0, out = 0;
  std::int64_t nin = 0, nout = 0;
  for (std::size_t i = 0; i < p.img.pixels.size(); ++i)
    (p.breast.values[i] ? (in += p.img.pixels[i], ++nin) : (out += p.img.pixels[i], ++nout));
  BOOST_TEST(out / nout < 0.06);
  BOOST_TEST(in / nin > 0.2);
}

BOOST_AUTO_TEST_CASE(lesion_masks_inside_breast_and_classes_counted) {
  phantom_options o = small_options();
  o.min_masses = o.max_masses = 1;
  o.min_calc_clusters = o.max_calc_clusters = 1;
  int counts[5] = {};
  int total = 0;
  for (std::uint64_t i = 0; i < 24; ++i) {
    const phantom_case p = generate_phantom(o, i);
    for (std::size_t k = 0; k < p.lesion_masks.size(); ++k) {
      const mask& m = p.lesion_masks[k];
      BOOST_TEST(m.count() > 0);
      for (std::size_t j = 0; j < m.values.size(); ++j)
        if (m.values[j]) BOOST_TEST(p.breast.values[j] == 1);
      ++counts[static_cast<int>(p.record.rois[k].label())];
      ++total;
      // The mask is the roi rasterised and clipped to the breast.
      mask again = rasterize(p.record.rois[k], p.img.rows, p.img.cols);
      for (std::size_t j = 0; j < again.values.size(); ++j) again.values[j] = again.values[j] && p.breast.values[j];
      BOOST_TEST((again.values == m.values));
    }
  }
  // One mass and one cluster requested per case; placement may fail only rarely.
  BOOST_TEST(total >= 44);
  BOOST_TEST(counts[0] == 0);
  for (int c = 1; c < 5; ++c) BOOST_TEST(counts[c] >= 4, "class " << c << " appears " << counts[c] << " times");
  // Lesion counts follow the requested range.
  o.min_masses = o.max_masses = 0;
  o.min_calc_clusters = o.max_calc_clusters = 0;
  BOOST_TEST(generate_phantom(o, 5).record.rois.empty());
  BOOST_TEST(generate_phantom(o, 5).record.cancer() == 0);
}

BOOST_AUTO_TEST_CASE(pectoral_muscle_only_in_mlo) {
  phantom_options o = small_options();
  for (std::uint64_t i = 0; i < 4; ++i) {
    o.view = phantom_view::mlo;
    const phantom_case m = generate_phantom(o, i);
    BOOST_TEST(m.img.meta.view == "MLO");
    BOOST_TEST(m.pectoral.count() > m.breast.count() / 50);
    // The muscle touches the top edge at the chest wall and is brighter than the breast around it.
    const std::int64_t wall = m.img.meta.laterality == "L" ? 0 : m.img.cols - 1;
    BOOST_TEST(m.pectoral(0, wall) == 1);
    double pin = 0, pout = 0;
    std::int64_t nin = 0, nout = 0;
    for (std::size_t j = 0; j < m.img.pixels.size(); ++j) {
      if (!m.breast.values[j]) continue;
      (m.pectoral.values[j] ? (pin += m.img.pixels[j], ++nin) : (pout += m.img.pixels[j], ++nout));
    }
    BOOST_TEST(pin / nin > pout / nout);
    o.view = phantom_view::cc;
    BOOST_TEST(generate_phantom(o, i).pectoral.count() == 0);
  }
}

BOOST_AUTO_TEST_CASE(spiculated_masses_are_less_compact_than_benign) {
  // Full resolution (0.2 mm) so that the masks have enough pixels for a perimeter measurement.
  phantom_options o;
  o.rows = 512;
  o.cols = 384;
  o.min_masses = o.max_masses = 2;
  o.min_calc_clusters = o.max_calc_clusters = 0;
  double cb = 0, cm = 0;
  int nb = 0, nm = 0;
  for (std::uint64_t i = 0; i < 10; ++i) {
    const phantom_case p = generate_phantom(o, i);
    for (std::size_t k = 0; k < p.lesion_masks.size(); ++k) {
      const double cpt = compactness(p.lesion_masks[k]);
      if (p.lesions[k].path == pathology::malignant) {
        cm += cpt, ++nm;
        BOOST_TEST(p.lesions[k].spicules >= 6);
      } else {
        cb += cpt, ++nb;
        BOOST_TEST(p.lesions[k].spicules == 0);
      }
    }
  }
  BOOST_REQUIRE(nb >= 3);
  BOOST_REQUIRE(nm >= 3);
  BOOST_TEST_MESSAGE("compactness benign " << cb / nb << " malignant " << cm / nm);
  BOOST_TEST(cb / nb > 0.6);
  BOOST_TEST(cm / nm < 0.5 * (cb / nb));
}

BOOST_AUTO_TEST_CASE(calcification_cluster_statistics) {
  phantom_options o = small_options();
  o.pixel_spacing_mm = 0.2;  // 77 x 58 mm field: room for several clusters, 0.2 mm specks resolved
  o.min_masses = o.max_masses = 0;
  o.min_calc_clusters = o.max_calc_clusters = 2;
  double rad[2] = {}, specks[2] = {}, size[2] = {};
  int n[2] = {};
  for (std::uint64_t i = 0; i < 20; ++i) {
    const phantom_case p = generate_phantom(o, i);
    for (const auto& l : p.lesions) {
      BOOST_TEST((l.type == lesion_type::calcification));
      const int m = l.path == pathology::malignant;
      rad[m] += l.radius * 0.2, specks[m] += l.specks, size[m] += l.mean_speck_radius * 0.2, ++n[m];
      if (m) {
        BOOST_TEST((l.specks >= 6 && l.specks <= 15));
      } else {
        BOOST_TEST((l.specks >= 3 && l.specks <= 7));
      }
      BOOST_TEST(l.radius * 0.2 <= (m ? 4.0 + 0.8 + 1.0 + 1e-9 : 8.0 + 0.8 + 1.0 + 1e-9));  // cluster + speck + margin (mm)
    }
  }
  BOOST_REQUIRE(n[0] >= 5);
  BOOST_REQUIRE(n[1] >= 5);
  for (int m = 0; m < 2; ++m) rad[m] /= n[m], specks[m] /= n[m], size[m] /= n[m];
  BOOST_TEST_MESSAGE("cluster radius mm benign " << rad[0] << " malignant " << rad[1] << "; specks " << specks[0]
                                                 << " / " << specks[1] << "; speck radius mm " << size[0] << " / " << size[1]);
  // Malignant: tighter clusters, more and smaller specks (means of the drawn ranges: 3 vs 6 mm radius,
  // 10.5 vs 5 specks, 0.235 vs 0.575 mm).
  BOOST_TEST(rad[1] < rad[0]);
  BOOST_TEST(specks[1] > 1.5 * specks[0]);
  BOOST_TEST(size[1] < 0.6 * size[0]);
  BOOST_TEST(size[1] > 0.15);
  BOOST_TEST(size[1] < 0.32);
  BOOST_TEST(size[0] > 0.45);
  BOOST_TEST(size[0] < 0.7);
}

BOOST_AUTO_TEST_CASE(bad_options) {
  phantom_options o = small_options();
  o.rows = 32;
  test::expect_error<config_error>([&] { (void)generate_phantom(o, 0); },
                                   "generate_phantom: size 32 x 288 is below the minimum of 64 x 64 pixels");
  o = small_options();
  o.density = 5;
  test::expect_error<config_error>([&] { (void)generate_phantom(o, 0); },
                                   "generate_phantom: density 5 is not a BI-RADS category 1..4");
  o = small_options();
  o.min_masses = 3;
  o.max_masses = 1;
  test::expect_error<config_error>([&] { (void)generate_phantom(o, 0); },
                                   "generate_phantom: masses [3, 1] is not a range of non-negative counts");
  o = small_options();
  o.pixel_spacing_mm = 0;
  test::expect_error<config_error>([&] { (void)generate_phantom(o, 0); }, "generate_phantom: pixel_spacing_mm 0 must be positive");
  o = small_options();
  o.malignant_fraction = 1.5;
  test::expect_error<config_error>([&] { (void)generate_phantom(o, 0); },
                                   "generate_phantom: malignant_fraction 1.5 is outside [0, 1]");
}

BOOST_AUTO_TEST_SUITE_END()
