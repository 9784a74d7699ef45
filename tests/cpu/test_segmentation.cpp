// Breast-region segmentation: synthetic shapes with a known answer, every mini-MIAS image of the shared
// data (fraction, one component, no holes, every located lesion centre inside, the corners opposite the
// breast outside), crop, and the error messages.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "mammocl/data/segmentation.hpp"
#include "shared_data.hpp"
#include "test_helpers.hpp"

namespace md = mammocl::data;
using mammocl::config_error;
using mammocl::numeric_error;
using mammocl::shape_error;
using mammocl::test::expect_error;

namespace {

// Minimal binary PGM (P5, maxval < 256) reader for the test; the library's reader lives elsewhere.
md::image read_p5(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  BOOST_TEST_REQUIRE(f.good(), "cannot open " << p);
  std::string magic;
  int w = 0, h = 0, maxval = 0;
  f >> magic >> w >> h >> maxval;
  f.get();
  BOOST_TEST_REQUIRE((magic == "P5" && w > 0 && h > 0 && maxval > 0 && maxval < 256), "bad PGM header in " << p);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  BOOST_TEST_REQUIRE(f.good(), "short PGM " << p);
  md::image im(h, w);
  for (std::size_t i = 0; i < bytes.size(); ++i) im.pixels[i] = bytes[i];
  im.meta.source = p.string();
  return im;
}

// Number of 8-connected components of the 1 pixels, and whether every 0 pixel is 4-connected to the
// border (no holes): a plain flood fill, independent of the library's run labelling.
struct topology {
  int components = 0;
  bool holes = false;
};
topology topology_of(const md::mask& m) {
  const std::int64_t R = m.rows, C = m.cols;
  std::vector<std::uint8_t> seen(m.values.size(), 0);
  std::vector<std::pair<std::int64_t, std::int64_t>> stack;  // (row, col): no division per pixel
  topology t;
  auto visit = [&](std::int64_t r, std::int64_t c, std::uint8_t want) {
    const auto q = static_cast<std::size_t>(r * C + c);
    if (m.values[q] == want && !seen[q]) { seen[q] = 1; stack.emplace_back(r, c); }
  };
  for (std::int64_t r0 = 0; r0 < R; ++r0)
    for (std::int64_t c0 = 0; c0 < C; ++c0) {
      if (!m(r0, c0) || seen[static_cast<std::size_t>(r0 * C + c0)]) continue;
      ++t.components;
      visit(r0, c0, 1);
      while (!stack.empty()) {
        const auto [r, c] = stack.back();
        stack.pop_back();
        for (std::int64_t rr = std::max<std::int64_t>(0, r - 1); rr <= std::min(R - 1, r + 1); ++rr)
          for (std::int64_t cc = std::max<std::int64_t>(0, c - 1); cc <= std::min(C - 1, c + 1); ++cc) visit(rr, cc, 1);
      }
    }
  // Background flood from the border with 4-connectivity; `seen` marks foreground already.
  for (std::int64_t c = 0; c < C; ++c) { visit(0, c, 0); visit(R - 1, c, 0); }
  for (std::int64_t r = 0; r < R; ++r) { visit(r, 0, 0); visit(r, C - 1, 0); }
  while (!stack.empty()) {
    const auto [r, c] = stack.back();
    stack.pop_back();
    if (r > 0) visit(r - 1, c, 0);
    if (r + 1 < R) visit(r + 1, c, 0);
    if (c > 0) visit(r, c - 1, 0);
    if (c + 1 < C) visit(r, c + 1, 0);
  }
  t.holes = std::find(seen.begin(), seen.end(), std::uint8_t{0}) != seen.end();
  return t;
}

// A half-disc "breast" against the left edge (value 0.6 on 0.1), a small bright "label" (0.95) far from
// it, and a dark hole inside the disc. Returns the image; `expected` gets the disc itself.
md::image half_disc_scene(std::int64_t R, std::int64_t C, md::mask& expected, md::mask& hole) {
  md::image im(R, C, 0.1f);
  expected = md::mask(R, C);
  hole = md::mask(R, C);
  const double rc = R / 2.0, rad = 0.4 * R, hole_rad = 0.03 * R;
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t c = 0; c < C; ++c) {
      const double d2 = (r - rc) * (r - rc) + double(c) * double(c);
      if (d2 <= rad * rad) {
        expected(r, c) = 1;
        im(r, c) = 0.6f;
      }
      const double h2 = (r - rc) * (r - rc) + (c - rad / 2) * (c - rad / 2);
      if (h2 <= hole_rad * hole_rad) {
        hole(r, c) = 1;
        im(r, c) = 0.1f;
      }
    }
  // The label: a bright square near the top-right corner, not touching the disc.
  for (std::int64_t r = R / 20; r < R / 20 + R / 15; ++r)
    for (std::int64_t c = C - C / 10 - C / 15; c < C - C / 10; ++c) im(r, c) = 0.95f;
  im.meta.max_value = 1.0;
  return im;
}

void check_box(const md::breast_region& b, const md::mask& m) {
  std::int64_t top = m.rows, left = m.cols, bottom = 0, right = 0;
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < m.cols; ++c)
      if (m(r, c)) {
        top = std::min(top, r);
        left = std::min(left, c);
        bottom = std::max(bottom, r + 1);
        right = std::max(right, c + 1);
      }
  BOOST_TEST(b.top == top);
  BOOST_TEST(b.left == left);
  BOOST_TEST(b.bottom == bottom);
  BOOST_TEST(b.right == right);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(segmentation)

// The half-disc with a label and a hole gives the disc exactly, at working resolution (f = 1) and
// with a block-averaged working copy (f = 3 and f = 4, the last one with partial blocks).
BOOST_AUTO_TEST_CASE(half_disc_with_label_gives_the_disc_exactly) {
  for (auto [R, C] : {std::pair<std::int64_t, std::int64_t>{300, 200}, {1500, 1000}, {2001, 1203}}) {
    md::mask expected, hole;
    const md::image im = half_disc_scene(R, C, expected, hole);
    const md::breast_region b = md::segment_breast(im);
    BOOST_TEST((b.threshold > 0.1 && b.threshold <= 0.6), "threshold " << b.threshold);
    BOOST_TEST((b.region.values == expected.values), R << " x " << C << ": mask differs from the disc");
    check_box(b, expected);
    BOOST_TEST(b.left == 0);

    md::segmentation_options keep_holes;
    keep_holes.fill_holes = false;
    const md::breast_region h = md::segment_breast(im, keep_holes);
    bool same = true;
    for (std::size_t i = 0; i < expected.values.size(); ++i)
      same = same && h.region.values[i] == (expected.values[i] && !hole.values[i]);
    BOOST_TEST(same, R << " x " << C << ": without hole filling the mask is not the disc minus the hole");
  }
}

// Of two separate bright regions, the larger is kept whatever its position or brightness.
BOOST_AUTO_TEST_CASE(largest_component_wins) {
  md::image im(100, 120, 0.0f);
  for (std::int64_t r = 10; r < 20; ++r)
    for (std::int64_t c = 10; c < 20; ++c) im(r, c) = 1.0f;  // 100 pixels, brighter
  for (std::int64_t r = 40; r < 90; ++r)
    for (std::int64_t c = 50; c < 110; ++c) im(r, c) = 0.7f;  // 3000 pixels
  const auto b = md::segment_breast(im);
  BOOST_TEST(b.region.count() == 3000);
  BOOST_TEST(b.top == 40);
  BOOST_TEST(b.left == 50);
  BOOST_TEST(b.bottom == 90);
  BOOST_TEST(b.right == 110);
  // A diagonal contact joins two squares (8-connectivity): the mask then holds both.
  md::image d(20, 20, 0.0f);
  for (std::int64_t r = 2; r < 6; ++r)
    for (std::int64_t c = 2; c < 6; ++c) d(r, c) = 1.0f;
  for (std::int64_t r = 6; r < 9; ++r)
    for (std::int64_t c = 6; c < 9; ++c) d(r, c) = 1.0f;
  BOOST_TEST(md::segment_breast(d).region.count() == 25);
}

// Closing fills a one-pixel notch cut into the edge (open to the outside, so not a hole) and adds
// nothing beyond one pixel of the shape.
BOOST_AUTO_TEST_CASE(closing_fills_a_notch) {
  md::image im(60, 60, 0.0f);
  md::mask square(60, 60);
  for (std::int64_t r = 10; r < 50; ++r)
    for (std::int64_t c = 10; c < 50; ++c) {
      im(r, c) = 1.0f;
      square(r, c) = 1;
    }
  for (std::int64_t c = 10; c < 25; ++c) im(30, c) = 0.0f;  // notch from the left edge
  const auto plain = md::segment_breast(im);
  BOOST_TEST(plain.region.count() == 1600 - 15);
  md::segmentation_options o;
  o.closing_radius = 1;
  const auto closed = md::segment_breast(im, o);
  BOOST_TEST((closed.region.values == square.values));
}

BOOST_AUTO_TEST_CASE(crop_image_and_mask) {
  md::image im(4, 5);
  for (std::size_t i = 0; i < im.size(); ++i) im.pixels[i] = static_cast<float>(i);
  im.meta.source = "a.pgm";
  const md::image c = md::crop(im, 1, 2, 3, 5);
  BOOST_TEST(c.rows == 2);
  BOOST_TEST(c.cols == 3);
  BOOST_TEST((c.pixels == std::vector<float>{7, 8, 9, 12, 13, 14}));
  BOOST_TEST(c.meta.source == "a.pgm");
  md::mask m(4, 5);
  m(2, 3) = 1;
  const md::mask mc = md::crop(m, 1, 2, 3, 5);
  BOOST_TEST((mc.values == std::vector<std::uint8_t>{0, 0, 0, 0, 1, 0}));
  expect_error<shape_error>([&] { (void)md::crop(im, 1, 2, 1, 5); },
                            "crop: box rows [1, 1) x cols [2, 5) is empty or outside the 4 x 5 image");
  expect_error<shape_error>([&] { (void)md::crop(m, 0, 0, 5, 5); },
                            "crop: box rows [0, 5) x cols [0, 5) is empty or outside the 4 x 5 mask");
  md::breast_region b;
  b.top = 0, b.left = 1, b.bottom = 2, b.right = 2;
  BOOST_TEST((md::crop(im, b).pixels == std::vector<float>{1, 6}));
}

BOOST_AUTO_TEST_CASE(errors) {
  expect_error<shape_error>([] { (void)md::segment_breast(md::image{}); }, "segment_breast: image (generated) is empty (0 x 0)");
  md::image flat(10, 10, 0.5f);
  flat.meta.source = "flat.pgm";
  expect_error<numeric_error>([&] { (void)md::segment_breast(flat); },
                              "segment_breast: image flat.pgm is uniform (every pixel is 0.5): no foreground to segment");
  md::image nan(10, 10, 0.5f);
  nan(3, 4) = std::nanf("");
  expect_error<numeric_error>([&] { (void)md::segment_breast(nan); },
                              "segment_breast: image (generated) has a non-finite pixel at (3, 4)");
  md::image bad(3, 3);
  bad.pixels.resize(5);
  expect_error<shape_error>([&] { (void)md::segment_breast(bad); }, "has 5 pixels for 3 x 3");
  md::image ok(10, 10, 0.0f);
  ok(5, 5) = 1.0f;
  md::segmentation_options o;
  o.working_size = 0;
  expect_error<config_error>([&] { (void)md::segment_breast(ok, o); }, "segment_breast: working_size 0 must be >= 1");
  o = {};
  o.histogram_bins = 1;
  expect_error<config_error>([&] { (void)md::segment_breast(ok, o); }, "segment_breast: histogram_bins 1 must be >= 2");
  o = {};
  o.closing_radius = -1;
  expect_error<config_error>([&] { (void)md::segment_breast(ok, o); }, "segment_breast: closing_radius -1 must be >= 0");
}

// Every mini-MIAS image of the shared data.
BOOST_AUTO_TEST_CASE(mini_mias_every_image) {
  const auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  const auto dir = *root / "mini-mias";
  // Info.txt, minimally: REFNUM BG CLASS [SEVERITY X Y RADIUS]; origin bottom-left, so row = 1024 - Y.
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> centres;
  {
    std::ifstream f(dir / "Info.txt");
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      std::istringstream ls(line);
      std::vector<std::string> tok;
      for (std::string t; ls >> t;) tok.push_back(t);
      if (tok.size() == 7 && std::isdigit(static_cast<unsigned char>(tok[4][0])))
        centres[tok[0]].push_back({1024 - std::stoll(tok[5]), std::stoll(tok[4])});
    }
  }
  std::vector<double> fractions;
  int images = 0, lesions = 0, lesions_inside = 0, lesions_on_background = 0, corners_outside = 0, one_component = 0, no_holes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".pgm") continue;
    const md::image im = read_p5(e.path());
    const md::breast_region b = md::segment_breast(im);
    ++images;
    const md::mask& m = b.region;
    fractions.push_back(static_cast<double>(m.count()) / static_cast<double>(im.size()));
    const topology t = topology_of(m);
    one_component += t.components == 1;
    no_holes += !t.holes;
    BOOST_TEST(t.components == 1, e.path().filename() << ": " << t.components << " components");
    BOOST_TEST(!t.holes, e.path().filename() << ": the mask has holes");
    for (const auto& [r, c] : centres[e.path().stem().string()]) {
      ++lesions;
      const bool in = r >= 0 && r < m.rows && c >= 0 && c < m.cols && m(r, c);
      lesions_inside += in;
      if (in) continue;
      // A few Info.txt centres lie off the breast, on the film background. Those are annotation
      // errors, not segmentation misses: accept them only when the 9 x 9 neighbourhood of the centre
      // is background-dark (mean below 20 of 255), and count them.
      double sum = 0;
      int n = 0;
      for (std::int64_t rr = std::max<std::int64_t>(0, r - 4); rr <= std::min(m.rows - 1, r + 4); ++rr)
        for (std::int64_t cc = std::max<std::int64_t>(0, c - 4); cc <= std::min(m.cols - 1, c + 4); ++cc, ++n)
          sum += im(rr, cc);
      ++lesions_on_background;
      BOOST_TEST(sum / n < 20.0, e.path().filename() << ": lesion centre (row " << r << ", col " << c
                                                       << ") on tissue (mean " << sum / n << ") outside the mask");
    }
    // The breast side is the half of the columns holding more of the mask; the two 64 x 64 corner
    // blocks on the other side (film background, labels, film edges) must be outside the mask.
    std::int64_t left_half = 0;
    for (std::int64_t r = 0; r < m.rows; ++r)
      for (std::int64_t c = 0; c < m.cols / 2; ++c) left_half += m(r, c);
    const bool breast_left = 2 * left_half > m.count();
    const std::int64_t c0 = breast_left ? m.cols - 64 : 0;
    std::int64_t corner = 0;
    for (std::int64_t r : {std::int64_t{0}, m.rows - 64})
      for (std::int64_t dr = 0; dr < 64; ++dr)
        for (std::int64_t dc = 0; dc < 64; ++dc) corner += m(r + dr, c0 + dc);
    corners_outside += corner == 0;
    BOOST_TEST(corner == 0, e.path().filename() << ": " << corner << " mask pixels in the corners opposite the breast");
    // The bounding box is the mask's, and the mask lies on the side the box says.
    BOOST_TEST((breast_left ? b.left == 0 || b.left < m.cols / 2 : b.right > m.cols / 2));
  }
  BOOST_TEST(images == 244);
  BOOST_TEST(lesions > 80);
  BOOST_TEST(lesions_on_background * 30 <= lesions, "more than 1 in 30 lesion centres outside the mask");
  std::sort(fractions.begin(), fractions.end());
  const double fmin = fractions.front(), fmed = fractions[fractions.size() / 2], fmax = fractions.back();
  BOOST_TEST_MESSAGE("mini-MIAS: " << images << " images; mask fraction min " << fmin << " median " << fmed << " max "
                                   << fmax << "; one component " << one_component << ", no holes " << no_holes
                                   << ", lesion centres inside " << lesions_inside << "/" << lesions << " (outside, on film background: "
                                   << lesions_on_background << ")"
                                   << ", opposite corners outside " << corners_outside);
  // Plausible fractions: the breast fills between a tenth and three quarters of a 1024 x 1024 frame.
  BOOST_TEST(fmin > 0.08);
  BOOST_TEST(fmax < 0.75);
  BOOST_TEST((fmed > 0.2 && fmed < 0.45));
}

BOOST_AUTO_TEST_SUITE_END()
