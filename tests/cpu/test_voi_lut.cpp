// VOI LUT functions (DICOM PS3.3 C.11.2.1.2.1, C.11.2.1.3.1, C.11.2.1.3.2) and the LUT domain transform
// (METHOD.md §2.1): the test vectors of METHOD.md, hand values, the properties of §2.1, numpy's
// percentile convention, the exact text round trip of the parameters and every error message.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <limits>
#include <vector>

#include "mammocl/data/voi_lut.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace md = mammocl::data;
using mammocl::config_error;
using mammocl::numeric_error;
using mammocl::shape_error;
using mammocl::test::expect_error;

namespace {
md::image normalized_image(std::int64_t rows, std::int64_t cols, const std::vector<float>& v) {
  md::image im(rows, cols);
  im.pixels = v;
  im.meta.min_value = 0.0;
  im.meta.max_value = 1.0;
  return im;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(voi_lut)

// METHOD.md §2.1, 12-bit table: c = 2000, w = 1000, [0, 4095].
BOOST_AUTO_TEST_CASE(method_table_12bit_sigmoid_and_linear) {
  const double x[] = {0, 1000, 1500, 1750, 2000, 2250, 2500, 3000, 4095};
  const double sig[] = {1.373259, 73.653530, 488.135966, 1101.315121, 2047.500000,
                        2993.684879, 3606.864034, 4021.346470, 4094.060782};
  const double lin[] = {0, 0, 0, 1024.774775, 2049.549550, 3074.324324, 4095, 4095, 4095};
  for (int i = 0; i < 9; ++i) {
    BOOST_TEST(std::abs(md::voi_sigmoid(x[i], 2000, 1000, 0, 4095) - sig[i]) < 1e-6, "sigmoid x=" << x[i]);
    BOOST_TEST(std::abs(md::voi_linear(x[i], 2000, 1000, 0, 4095) - lin[i]) < 1e-6, "linear x=" << x[i]);
    BOOST_TEST(md::voi_apply(md::voi_function::sigmoid, x[i], 2000, 1000, 0, 4095) ==
               md::voi_sigmoid(x[i], 2000, 1000, 0, 4095));
  }
}

// METHOD.md §2.1, normalised table: c = 0.5, w = 0.5, [0, 1] -> [0, 1].
BOOST_AUTO_TEST_CASE(method_table_normalised_sigmoid) {
  const double x[] = {0, 0.25, 0.5, 0.75, 1};
  const double y[] = {0.0179862100, 0.1192029220, 0.5, 0.8807970780, 0.9820137900};
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(std::abs(md::voi_sigmoid(x[i], 0.5, 0.5, 0, 1) - y[i]) < 1e-6, "x=" << x[i]);
  // -4 (0.75 - 0.5) / 0.5 = -2, so y = 1 / (1 + e^-2) by hand, to 1e-12.
  BOOST_TEST(std::abs(md::voi_sigmoid(0.75, 0.5, 0.5, 0, 1) - 1.0 / (1.0 + std::exp(-2.0))) < 1e-12);
}

// Hand values: LINEAR_EXACT ((x - c)/w + 0.5)(ymax - ymin) + ymin, clipped at x <= c - w/2 and x > c + w/2.
BOOST_AUTO_TEST_CASE(linear_exact_hand_values) {
  auto f = [](double x) { return md::voi_linear_exact(x, 2000, 1000, 0, 4095); };
  BOOST_TEST(f(1000) == 0.0);
  BOOST_TEST(f(1500) == 0.0);  // x == c - w/2 belongs to the lower branch
  BOOST_TEST(std::abs(f(1501) - 4.095) < 1e-9);
  BOOST_TEST(f(1750) == 1023.75);
  BOOST_TEST(f(2000) == 2047.5);
  BOOST_TEST(f(2250) == 3071.25);
  BOOST_TEST(f(2500) == 4095.0);  // formula branch, (0.5 + 0.5) * 4095
  BOOST_TEST(f(2501) == 4095.0);
  auto g = [](double x) { return md::voi_linear_exact(x, 0.5, 0.5, -1, 1); };
  BOOST_TEST(g(0.2) == -1.0);
  BOOST_TEST(g(0.375) == -0.5);
  BOOST_TEST(g(0.5) == 0.0);
  BOOST_TEST(g(0.625) == 0.5);
  BOOST_TEST(g(0.9) == 1.0);
}

// Hand values of LINEAR's -0.5 and w - 1 terms.
BOOST_AUTO_TEST_CASE(linear_hand_values_and_width_one) {
  // c = 0, w = 2: window (-1, 0]; y = ((x + 0.5)/1 + 0.5) * 10.
  BOOST_TEST(md::voi_linear(-1.0, 0, 2, 0, 10) == 0.0);
  BOOST_TEST(md::voi_linear(-0.5, 0, 2, 0, 10) == 5.0);
  BOOST_TEST(md::voi_linear(-0.25, 0, 2, 0, 10) == 7.5);
  BOOST_TEST(md::voi_linear(0.0, 0, 2, 0, 10) == 10.0);
  BOOST_TEST(md::voi_linear(0.01, 0, 2, 0, 10) == 10.0);
  // w = 1 is allowed and is a threshold at c - 0.5 (no division by w - 1 = 0).
  BOOST_TEST(md::voi_linear(99.5, 100, 1, 0, 255) == 0.0);
  BOOST_TEST(md::voi_linear(99.6, 100, 1, 0, 255) == 255.0);
}

// §2.1 properties: y(c) is the midpoint; the slope at c is (ymax - ymin)/w (sigmoid, LINEAR_EXACT),
// (ymax - ymin)/(w - 1) for LINEAR (its window is w - 1 wide, centred on c - 0.5).
BOOST_AUTO_TEST_CASE(midpoint_and_slope_properties) {
  struct win { double c, w, lo, hi; };
  for (const win& k : {win{2000, 1000, 0, 4095}, win{0.5, 0.5, 0, 1}, win{40, 300, -1024, 3071}}) {
    const double mid = (k.lo + k.hi) / 2, range = k.hi - k.lo;
    BOOST_TEST(md::voi_sigmoid(k.c, k.c, k.w, k.lo, k.hi) == mid);
    BOOST_TEST(md::voi_linear_exact(k.c, k.c, k.w, k.lo, k.hi) == mid);
    const double h = k.w * 1e-5;
    const double ds = (md::voi_sigmoid(k.c + h, k.c, k.w, k.lo, k.hi) - md::voi_sigmoid(k.c - h, k.c, k.w, k.lo, k.hi)) / (2 * h);
    BOOST_TEST(std::abs(ds - range / k.w) < 1e-6 * range / k.w, "sigmoid slope " << ds);
    const double de = (md::voi_linear_exact(k.c + h, k.c, k.w, k.lo, k.hi) -
                       md::voi_linear_exact(k.c - h, k.c, k.w, k.lo, k.hi)) / (2 * h);
    BOOST_TEST(std::abs(de - range / k.w) < 1e-6 * range / k.w, "linear_exact slope " << de);
    if (k.w >= 2) {
      BOOST_TEST(std::abs(md::voi_linear(k.c - 0.5, k.c, k.w, k.lo, k.hi) - mid) < 1e-9 * range);
      const double dl = (md::voi_linear(k.c + h, k.c, k.w, k.lo, k.hi) - md::voi_linear(k.c - h, k.c, k.w, k.lo, k.hi)) / (2 * h);
      BOOST_TEST(std::abs(dl - range / (k.w - 1)) < 1e-6 * range / k.w, "linear slope " << dl);
    }
  }
}

// §2.1: the sigmoid's bounds are asymptotes: never reached over the input range of both tables, and
// the output increases strictly with x (no rounding, no clipping).
BOOST_AUTO_TEST_CASE(sigmoid_never_reaches_its_asymptotes) {
  double prev = -1;
  for (int x = 0; x <= 4095; ++x) {
    const double y = md::voi_sigmoid(x, 2000, 1000, 0, 4095);
    BOOST_TEST_REQUIRE((y > 0.0 && y < 4095.0 && y > prev), "x=" << x << " y=" << y);
    prev = y;
  }
  prev = -1;
  for (int i = 0; i <= 1000; ++i) {
    const double y = md::voi_sigmoid(i / 1000.0, 0.5, 0.5, 0, 1);
    BOOST_TEST_REQUIRE((y > 0.0 && y < 1.0 && y > prev), "x=" << i / 1000.0 << " y=" << y);
    prev = y;
  }
}

BOOST_AUTO_TEST_CASE(width_out_of_range_errors) {
  expect_error<config_error>([] { (void)md::voi_sigmoid(1, 0, 0, 0, 1); }, "VOI LUT SIGMOID: window width 0 must be > 0");
  expect_error<config_error>([] { (void)md::voi_sigmoid(1, 0, -2, 0, 1); }, "VOI LUT SIGMOID: window width -2 must be > 0");
  expect_error<config_error>([] { (void)md::voi_linear_exact(1, 0, 0, 0, 1); },
                             "VOI LUT LINEAR_EXACT: window width 0 must be > 0");
  expect_error<config_error>([] { (void)md::voi_linear(1, 0, 0.5, 0, 1); }, "VOI LUT LINEAR: window width 0.5 must be >= 1");
  expect_error<config_error>([] { (void)md::voi_linear(1, 0, -1, 0, 1); }, "VOI LUT LINEAR: window width -1 must be >= 1");
  expect_error<config_error>([] { (void)md::voi_sigmoid(1, 0, std::numeric_limits<double>::infinity(), 0, 1); },
                             "VOI LUT SIGMOID: window width inf must be > 0");
  expect_error<config_error>([] { (void)md::voi_sigmoid(1, std::nan(""), 1, 0, 1); },
                             "VOI LUT SIGMOID: window center nan is not finite");
  expect_error<config_error>([] { (void)md::apply_voi(md::image(2, 2), md::voi_function::sigmoid, 0, 0, 0, 1); },
                             "VOI LUT SIGMOID: window width 0 must be > 0");
  expect_error<config_error>([] { (void)md::apply_voi(md::image(2, 2), md::voi_function::linear, 0, 10, 1, 1); },
                             "apply_voi LINEAR: output range [1, 1] is empty");
}

BOOST_AUTO_TEST_CASE(function_names_parse_and_format) {
  using F = md::voi_function;
  for (F f : {F::linear, F::linear_exact, F::sigmoid}) BOOST_TEST((md::parse_voi_function(md::to_string(f)) == f));
  BOOST_TEST(md::to_string(F::linear_exact) == "LINEAR_EXACT");
  BOOST_TEST((md::parse_voi_function("SIGMOID ") == F::sigmoid));  // DICOM CS padding
  BOOST_TEST((md::parse_voi_function("") == F::linear));           // absent attribute: LINEAR
  expect_error<config_error>([] { (void)md::parse_voi_function("sigmoid"); },
                             "VOI LUT Function (0028,1056): 'sigmoid' is not one of LINEAR, LINEAR_EXACT, SIGMOID");
}

BOOST_AUTO_TEST_CASE(pydicom_output_ranges) {
  auto r = md::pydicom_output_range(12, false);
  BOOST_TEST(r.ymin == 0.0);
  BOOST_TEST(r.ymax == 4095.0);
  r = md::pydicom_output_range(16, true);
  BOOST_TEST(r.ymin == -32768.0);
  BOOST_TEST(r.ymax == 32767.0);
  r = md::pydicom_output_range(12, false, 2.0, -1024.0);  // bounds through the Modality LUT
  BOOST_TEST(r.ymin == -1024.0);
  BOOST_TEST(r.ymax == 7166.0);
  md::image_metadata m;
  m.bits_stored = 10;
  m.is_signed = true;
  r = md::pydicom_output_range(m);
  BOOST_TEST(r.ymin == -512.0);
  BOOST_TEST(r.ymax == 511.0);
  expect_error<config_error>([] { (void)md::pydicom_output_range(0, false); }, "bits stored 0 is outside [1, 32]");
}

BOOST_AUTO_TEST_CASE(apply_voi_matches_the_scalar_functions) {
  md::image im(2, 3);
  im.pixels = {0.f, 1500.f, 1750.f, 2000.f, 2600.f, 4095.f};
  for (auto f : {md::voi_function::linear, md::voi_function::linear_exact, md::voi_function::sigmoid}) {
    const md::image out = md::apply_voi(im, f, 2000, 1000, 0, 4095);
    BOOST_TEST(out.rows == 2);
    BOOST_TEST(out.cols == 3);
    for (std::size_t i = 0; i < im.size(); ++i)
      BOOST_TEST(out.pixels[i] == static_cast<float>(md::voi_apply(f, im.pixels[i], 2000, 1000, 0, 4095)));
    BOOST_TEST(out.meta.max_value == 4095.0);
    BOOST_TEST(*out.meta.window_width == 1000.0);
    BOOST_TEST(out.meta.voi_lut_function == std::string(md::to_string(f)));
  }
}

// numpy's default percentile (linear interpolation) and median, against values numpy 2.4 printed
// (np.percentile(a, q), np.median(a) on float64 copies of float32 data).
BOOST_AUTO_TEST_CASE(percentiles_follow_numpy_linear) {
  for (int n : {1000, 1001}) {
    std::vector<double> a;
    for (int i = 0; i < n; ++i) a.push_back(static_cast<float>(((i * 7919) % 1009) / 1009.0));
    auto c = a;
    const double med = md::median(c);
    c = a;
    const double p1 = md::percentile_linear(c, 1);
    c = a;
    const double p99 = md::percentile_linear(c, 99);
    c = a;
    const double p375 = md::percentile_linear(c, 37.5);
    if (n == 1000) {
      BOOST_TEST(med == 0.50099107623100281);
      BOOST_TEST(p1 == 0.009900891557335853);
      BOOST_TEST(p99 == 0.98910804212093351);
      BOOST_TEST(p375 == 0.37623885273933411);
    } else {
      BOOST_TEST(med == 0.5004955530166626);
      BOOST_TEST(p1 == 0.0099108023568987846);
      BOOST_TEST(p99 == 0.98909813165664673);
      BOOST_TEST(p375 == 0.37561941146850586);
    }
  }
  std::vector<double> one{0.25};
  BOOST_TEST(md::percentile_linear(one, 99) == 0.25);
  std::vector<double> two{1.0, 0.0};
  BOOST_TEST(md::percentile_linear(two, 100) == 1.0);
  BOOST_TEST(md::percentile_linear(two, 0) == 0.0);
  expect_error<config_error>([] { std::vector<double> v; (void)md::percentile_linear(v, 50); }, "percentile_linear: no values");
  expect_error<config_error>([] { std::vector<double> v{1}; (void)md::percentile_linear(v, 101); }, "q = 101 is outside [0, 100]");
}

// A hand-made 3 x 4 image: 10 breast pixels k/16 and 2 bright pixels outside the mask.
// By hand (numpy linear): median = (8/16 + 9/16)/2 = 0.53125; p1: h = 9 * 0.01, 2/16 + (2/16) 0.09 =
// 0.13625; p99: h = 8.91, 15/16 - (1/16) 0.09 = 0.931875; w = 0.795625. With the 2 outside pixels
// (1 and 31/32) included: median 0.625, p1 0.13875, p99 0.9965625 (numpy gives the same numbers).
BOOST_AUTO_TEST_CASE(estimate_lut_params_with_mask) {
  const std::vector<float> v = {2 / 16.f, 1.f, 4 / 16.f, 5 / 16.f, 6 / 16.f, 8 / 16.f,
                                9 / 16.f, 31 / 32.f, 11 / 16.f, 12 / 16.f, 14 / 16.f, 15 / 16.f};
  const md::image im = normalized_image(3, 4, v);
  md::mask m(3, 4);
  for (auto& x : m.values) x = 1;
  const auto all = md::estimate_lut_params(im, m);
  BOOST_TEST(all.center == 0.625);
  BOOST_TEST(std::abs(all.width - (0.9965625 - 0.13875)) < 1e-15);
  m.values[1] = 0;
  m.values[7] = 0;
  const auto p = md::estimate_lut_params(im, m);
  BOOST_TEST(p.center == 0.53125);
  BOOST_TEST(std::abs(p.width - 0.795625) < 1e-15);

  expect_error<shape_error>([&] { (void)md::estimate_lut_params(im, md::mask(4, 3)); },
                            "estimate_lut_params: mask is 4 x 3 but image (generated) is 3 x 4");
  expect_error<config_error>([&] { (void)md::estimate_lut_params(im, md::mask(3, 4)); },
                             "estimate_lut_params: the breast mask of image (generated) is empty");
  md::image raw = im;
  raw.meta.max_value = 255.0;
  raw.meta.source = "x.pgm";
  expect_error<config_error>([&] { (void)md::estimate_lut_params(raw, m); },
                             "estimate_lut_params: image x.pgm has value range [0, 255]; pass image.normalized()");
  md::image flat = normalized_image(3, 4, std::vector<float>(12, 0.25f));
  expect_error<numeric_error>([&] { (void)md::estimate_lut_params(flat, m); },
                              "the breast region of image (generated) is flat (p1 = p99 = 0.25)");
}

BOOST_AUTO_TEST_CASE(apply_lut_domain_is_the_sigmoid_to_unit_range) {
  std::vector<float> v;
  for (int i = 0; i < 20; ++i) v.push_back(i / 19.f);
  const md::image im = normalized_image(4, 5, v);
  const md::lut_domain_params p{0.4, 0.3};
  const md::image b = md::apply_lut_domain(im, p);
  for (std::size_t i = 0; i < v.size(); ++i) {
    BOOST_TEST(b.pixels[i] == static_cast<float>(1.0 / (1.0 + std::exp(-4.0 * (double(v[i]) - 0.4) / 0.3))));
    BOOST_TEST((b.pixels[i] > 0.f && b.pixels[i] < 1.f));
  }
  BOOST_TEST(b.meta.min_value == 0.0);
  BOOST_TEST(b.meta.max_value == 1.0);
  expect_error<config_error>([&] { (void)md::apply_lut_domain(im, {0.4, 0.0}); }, "apply_lut_domain: width 0 must be > 0");
  md::image raw = im;
  raw.meta.max_value = 4095.0;
  expect_error<config_error>([&] { (void)md::apply_lut_domain(raw, p); }, "has value range [0, 4095]");
}

BOOST_AUTO_TEST_CASE(params_text_round_trip_is_bit_exact) {
  BOOST_TEST(md::to_string(md::lut_domain_params{0.5, 0.25}) == "center=0.5 width=0.25");
  BOOST_TEST(md::to_string(md::lut_domain_params{0.1, 1.0 / 3.0}) ==
             "center=0.10000000000000001 width=0.33333333333333331");
  const double vals[] = {0.1, 1.0 / 3.0, 0.30000000000000004, 5e-324, 1e308, -0.0, 0.53125, 2.0 / 3.0};
  for (double c : vals)
    for (double w : {0.795625, 1.0 / 7.0, 4.9406564584124654e-324, 123456789.123456789}) {
      const md::lut_domain_params p{c, w};
      const auto q = md::parse_lut_domain_params(md::to_string(p));
      BOOST_TEST(std::memcmp(&q.center, &p.center, sizeof(double)) == 0, md::to_string(p));
      BOOST_TEST(std::memcmp(&q.width, &p.width, sizeof(double)) == 0, md::to_string(p));
      BOOST_TEST((md::lut_domain_params::parse(md::to_string(p) + "\n") == p));
    }
  // Regenerating domain B from the stored text gives the same bits.
  std::vector<float> v;
  for (int i = 0; i < 64; ++i) v.push_back(static_cast<float>(((i * 37) % 64) / 63.0));
  const md::image im = normalized_image(8, 8, v);
  md::mask m(8, 8);
  for (auto& x : m.values) x = 1;
  const auto p = md::estimate_lut_params(im, m);
  const auto a = md::apply_lut_domain(im, p);
  const auto b = md::apply_lut_domain(im, md::parse_lut_domain_params(md::to_string(p)));
  BOOST_TEST(std::memcmp(a.pixels.data(), b.pixels.data(), a.pixels.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(params_text_errors_name_the_field) {
  auto bad = [](const char* text, const char* fragment) {
    expect_error<config_error>([&] { (void)md::parse_lut_domain_params(text); }, fragment);
  };
  bad("width=0.2", "lut_domain_params: field 'center' missing in \"width=0.2\"");
  bad("center=0.5", "field 'width' missing in \"center=0.5\"");
  bad("center=abc width=1", "field 'center' is not a number in \"center=abc width=1\"");
  bad("center=0.5 width=", "field 'width' is not a number");
  bad("center=0.5x width=1", "field 'center' has trailing characters");
  bad("center=nan width=1", "field 'center' is not finite");
  bad("center=0.5 width=inf", "field 'width' is not finite");
  bad("center=0.5 width=0", "field 'width' = 0 must be > 0");
  bad("center=0.5 width=-0.1", "field 'width' = -0.1 must be > 0");
  bad("center=0.5 width=0.2 extra", "unexpected text after field 'width'");
}

// The side file that stores every image's window so that domain B can be regenerated exactly.
BOOST_AUTO_TEST_CASE(lut_params_side_file_round_trip_and_errors) {
  using mammocl::data::lut_domain_params;
  std::map<std::string, lut_domain_params> params{
      {"mdb001.pgm", {0.1 + 0.2, 1.0 / 3.0}},
      {"case 17/L_CC", {0.5, 0.25}},
      {"z", {-0.0, std::nextafter(0.0, 1.0)}},
  };
  mammocl::test::temp_dir dir("lut-params");
  const auto path = dir / "lut_params.tsv";
  mammocl::data::write_lut_params(path, params);
  const auto back = mammocl::data::read_lut_params(path);
  BOOST_TEST_REQUIRE(back.size() == params.size());
  for (const auto& [k, p] : params) {
    const auto& q = back.at(k);
    BOOST_TEST(std::memcmp(&q.center, &p.center, sizeof(double)) == 0, k);
    BOOST_TEST(std::memcmp(&q.width, &p.width, sizeof(double)) == 0, k);
  }
  // The exact text: header, then sorted keys.
  std::ifstream in(path);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  BOOST_TEST(first == std::string(mammocl::data::lut_params_file_header));
  BOOST_TEST(second == "case 17/L_CC\tcenter=0.5 width=0.25");

  using mammocl::io_error;
  using mammocl::test::expect_error;
  const std::string h = std::string(mammocl::data::lut_params_file_header) + "\n";
  expect_error<io_error>([&] { (void)mammocl::data::parse_lut_params_file("center=1 width=1\n", "f.tsv"); },
                         "f.tsv:1: expected the header");
  expect_error<io_error>([&] { (void)mammocl::data::parse_lut_params_file(h + "a center=1 width=1\n", "f.tsv"); },
                         "f.tsv:2: expected \"<key><TAB>center=<c> width=<w>\"");
  expect_error<io_error>(
      [&] { (void)mammocl::data::parse_lut_params_file(h + "a\tcenter=1 width=1\na\tcenter=2 width=1\n", "f.tsv"); },
      "f.tsv:3: image 'a' appears twice");
  expect_error<io_error>([&] { (void)mammocl::data::parse_lut_params_file(h + "a\tcenter=1 width=0\n", "f.tsv"); },
                         "f.tsv:2: image 'a': lut_domain_params: field 'width' = 0 must be > 0");
  expect_error<io_error>([&] { (void)mammocl::data::parse_lut_params_file(h + "a\tcenter=x width=1\n", "f.tsv"); },
                         "f.tsv:2: image 'a': lut_domain_params: field 'center' is not a number");
  expect_error<mammocl::config_error>(
      [&] { (void)mammocl::data::format_lut_params_file({{"a\tb", {0.5, 0.5}}}); }, "must be non-empty and hold no tab");
}

BOOST_AUTO_TEST_SUITE_END()
