// mini-MIAS reader on the real Info.txt of ../shared/data/mini-mias: every count is recomputed here
// from a direct token count of the file, independently of the parser.
#include <boost/test/unit_test.hpp>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "mammocl/data/mini_mias.hpp"
#include "shared_data.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace mammocl::data;

namespace {

// Info.txt rows as plain token lists (header and blank lines dropped), read with istringstream.
std::vector<std::vector<std::string>> raw_rows(const fs::path& info) {
  std::istringstream in(read_text_file(info));
  std::vector<std::vector<std::string>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> tok;
    for (std::string t; ls >> t;) tok.push_back(t);
    if (tok.empty() || tok[0] == "REFNUM") continue;
    out.push_back(tok);
  }
  return out;
}

bool is_arch_asym(const std::string& c) { return c == "ARCH" || c == "ASYM"; }

}  // namespace

BOOST_AUTO_TEST_SUITE(datasets_mini_mias)

BOOST_AUTO_TEST_CASE(every_row_shape_is_parsed) {
  auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  const fs::path info = *root / "mini-mias" / "Info.txt";
  const auto raw = raw_rows(info);
  const auto rows = parse_mini_mias_info(read_text_file(info), info.string());
  BOOST_TEST_REQUIRE(rows.size() == raw.size());
  std::map<std::size_t, int> shapes;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const auto& t = raw[i];
    BOOST_TEST(r.tokens == t.size());
    BOOST_TEST(r.refnum == t[0]);
    BOOST_TEST(r.background == t[1]);
    BOOST_TEST(r.abnormality == t[2]);
    ++shapes[t.size()];
    if (t.size() == 3) BOOST_TEST(r.severity == 0);
    if (t.size() >= 4) BOOST_TEST(std::string(1, r.severity) == t[3]);
    BOOST_TEST(r.note3 == (t.size() == 6));
    BOOST_TEST(r.x.has_value() == (t.size() == 7));
    if (t.size() == 7) {
      BOOST_TEST(*r.x == std::stod(t[4]));
      BOOST_TEST(*r.y == std::stod(t[5]));
      BOOST_TEST(*r.radius == std::stod(t[6]));
    }
  }
  for (std::size_t s : {3u, 4u, 6u, 7u}) BOOST_TEST(shapes[s] > 0, "no row with " << s << " tokens");
  BOOST_TEST(shapes.size() == 4u);
}

BOOST_AUTO_TEST_CASE(counts_coordinates_and_patients) {
  auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  const fs::path info = *root / "mini-mias" / "Info.txt";
  const auto raw = raw_rows(info);

  // Independent tallies from the tokens.
  std::set<std::string> images, excluded;
  for (const auto& t : raw) {
    images.insert(t[0]);
    if (is_arch_asym(t[2])) excluded.insert(t[0]);
  }
  std::map<std::string, int> per_class;  // over kept images: "normal-image", "CALC B", "mass M", ...
  std::size_t located = 0;
  for (const auto& t : raw) {
    if (excluded.count(t[0])) continue;
    if (t[2] == "NORM") {
      ++per_class["normal-image"];
      continue;
    }
    ++per_class[(t[2] == "CALC" ? std::string("calc ") : std::string("mass ")) + t[3]];
    located += t.size() == 7;
  }

  const auto res = read_mini_mias(info);
  BOOST_TEST(res.records.size() == images.size() - excluded.size());
  BOOST_TEST(res.report.skipped.size() == excluded.size());
  BOOST_TEST(res.report.rows_read == raw.size());
  for (const auto& s : res.report.skipped) {
    BOOST_TEST(excluded.count(s.item) == 1u);
    BOOST_TEST(s.reason.find("ARCH/ASYM") != std::string::npos);
  }

  std::map<std::string, int> got;
  std::size_t got_located = 0;
  std::map<std::string, std::set<std::string>> patients;  // patient -> image stems
  for (const auto& r : res.records) {
    const std::string stem = fs::path(r.image_path).stem().string();
    BOOST_TEST(images.count(stem) == 1u);
    BOOST_TEST(!excluded.count(stem));
    BOOST_TEST(fs::exists(r.image_path));
    if (r.rois.empty()) ++got["normal-image"];
    for (const auto& o : r.rois) {
      BOOST_TEST(o.description.substr(0, 4) != "ARCH");
      BOOST_TEST(o.description.substr(0, 4) != "ASYM");
      ++got[(o.type == lesion_type::calcification ? std::string("calc ") : std::string("mass ")) +
            (o.path == pathology::malignant ? "M" : "B")];
      got_located += o.located();
    }
    patients[r.patient_id].insert(stem);
    BOOST_TEST(pgm_height(r.image_path).value_or(0) == 1024);
  }
  BOOST_TEST(got == per_class);
  BOOST_TEST(got_located == located);

  // Patients pair up: mdb(2k-1) and mdb(2k) share one id, and no patient has more than those two.
  for (const auto& [pid, stems] : patients) {
    BOOST_TEST(stems.size() <= 2u);
    std::set<int> ks;
    for (const auto& s : stems) ks.insert((std::stoi(s.substr(3)) + 1) / 2);
    BOOST_TEST(ks.size() == 1u, pid);
  }
  for (const auto& r : res.records) {
    const int n = std::stoi(fs::path(r.image_path).stem().string().substr(3));
    BOOST_TEST(r.laterality == (n % 2 == 0 ? "L" : "R"));
    for (const auto& q : res.records) {
      const int m = std::stoi(fs::path(q.image_path).stem().string().substr(3));
      BOOST_TEST((r.patient_id == q.patient_id) == ((n + 1) / 2 == (m + 1) / 2));
    }
  }

  // Coordinates: every 7-token row of a kept image is an ROI centred at (1024 - Y, X) with radius R.
  std::map<std::string, const case_record*> by_stem;
  for (const auto& r : res.records) by_stem[fs::path(r.image_path).stem().string()] = &r;
  for (const auto& t : raw) {
    if (t.size() != 7 || excluded.count(t[0])) continue;
    const auto& rec = *by_stem.at(t[0]);
    const double row = 1024.0 - std::stod(t[5]), col = std::stod(t[4]), rad = std::stod(t[6]);
    bool found = false;
    for (const auto& o : rec.rois)
      found |= o.center && (*o.center)[0] == row && (*o.center)[1] == col && o.radius == rad;
    BOOST_TEST(found, t[0] << ": no ROI at row " << row << ", col " << col);
  }
  // Images with several rows keep all of them.
  std::map<std::string, int> rows_per_image;
  for (const auto& t : raw)
    if (t[2] != "NORM") ++rows_per_image[t[0]];
  int multi = 0;
  for (const auto& [stem, k] : rows_per_image)
    if (!excluded.count(stem) && k > 1) {
      ++multi;
      BOOST_TEST(by_stem.at(stem)->rois.size() == static_cast<std::size_t>(k));
    }
  BOOST_TEST(multi > 0);
}

BOOST_AUTO_TEST_CASE(arch_asym_as_mass_option) {
  auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  const fs::path info = *root / "mini-mias" / "Info.txt";
  const auto raw = raw_rows(info);
  std::set<std::string> images;
  std::size_t arch_asym_rows = 0, mass_rows = 0;
  for (const auto& t : raw) {
    images.insert(t[0]);
    arch_asym_rows += is_arch_asym(t[2]);
    mass_rows += t[2] == "CIRC" || t[2] == "SPIC" || t[2] == "MISC" || is_arch_asym(t[2]);
  }
  BOOST_TEST_REQUIRE(arch_asym_rows > 0u);
  mini_mias_options opt;
  opt.arch_asym = mias_arch_asym::as_mass;
  const auto res = read_mini_mias(info, opt);
  BOOST_TEST(res.records.size() == images.size());
  BOOST_TEST(res.report.skipped.empty());
  std::size_t masses = 0, mapped = 0;
  for (const auto& r : res.records)
    for (const auto& o : r.rois) {
      masses += o.type == lesion_type::mass;
      if (o.description.substr(0, 4) == "ARCH" || o.description.substr(0, 4) == "ASYM") {
        ++mapped;
        BOOST_TEST((o.type == lesion_type::mass));
      }
    }
  BOOST_TEST(mapped == arch_asym_rows);
  BOOST_TEST(masses == mass_rows);
}

BOOST_AUTO_TEST_CASE(missing_images) {
  auto root = mammocl::test::shared_data("mini-mias/Info.txt");
  if (!root) return;
  const fs::path info = *root / "mini-mias" / "Info.txt";
  mammocl::test::temp_dir empty("mias-empty");
  const auto raw = raw_rows(info);
  const std::string first = raw.front()[0];
  mammocl::test::expect_error<mammocl::io_error>(
      [&] { (void)read_mini_mias(info, {}, empty.path); },
      "no image file for " + first + " (" + info.string() + " line 2): looked for " +
          (empty.path / (first + ".pgm")).string());
  mini_mias_options opt;
  opt.skip_missing_images = true;
  const auto res = read_mini_mias(info, opt, empty.path);
  BOOST_TEST(res.records.empty());
  BOOST_TEST(!res.report.skipped.empty());
}

BOOST_AUTO_TEST_CASE(malformed_rows) {
  using mammocl::io_error;
  using mammocl::test::expect_error;
  // Synthetic reference numbers outside the database's range.
  const auto parse = [](std::string text) { return [text] { (void)parse_mini_mias_info(text, "m.txt"); }; };
  expect_error<io_error>(parse("REFNUM BG CLASS SEVERITY X Y RADIUS \nmdb900 F CIRC B 1\n"),
                         "m.txt:2: 5 fields; expected 3 (NORM), 4 (no centre), 6 (*NOTE 3*) or 7");
  expect_error<io_error>(parse("mdb900 F CIRC X 1 2 3\n"), "m.txt:1: SEVERITY 'X' is not B or M");
  expect_error<io_error>(parse("mdb900 Q NORM\n"), "m.txt:1: BG 'Q' is not F, G or D");
  expect_error<io_error>(parse("abc900 F NORM\n"), "m.txt:1: REFNUM 'abc900' is not 'mdb' followed by a positive");
  expect_error<io_error>(parse("\nmdb900 F BLOB B\n"), "m.txt:2: CLASS 'BLOB' is not CALC");
  expect_error<io_error>(parse("mdb900 F CIRC B 1 y 3\n"), "m.txt:1: Y 'y' is not a non-negative number");
  expect_error<io_error>(parse("mdb900 F CALC M *NOTE 4*\n"), "m.txt:1: fields 5-6 are '*NOTE 4*'");
  expect_error<io_error>(parse("mdb900 F NORM B\n"), "m.txt:1: NORM row with 4 fields");
  expect_error<io_error>(parse("mdb900 F CIRC\n"), "m.txt:1: CIRC row without SEVERITY");

  // Conflicting rows of one image, and Y above the image.
  mammocl::test::temp_dir dir("mias-bad");
  const auto rows = parse_mini_mias_info("mdb900 F NORM\nmdb900 F CIRC B 1 2 3\n", "m.txt");
  expect_error<io_error>([&] { (void)build_mini_mias(rows, dir.path, "m.txt"); },
                         "m.txt:1: mdb900 has a NORM row and abnormality rows");
  const auto rows2 = parse_mini_mias_info("mdb900 F NORM\nmdb900 G NORM\n", "m.txt");
  expect_error<io_error>([&] { (void)build_mini_mias(rows2, dir.path, "m.txt"); },
                         "m.txt:2: BG 'G' of mdb900 differs from 'F' on line 1");
  { std::ofstream(dir / "mdb900.png") << "x"; }
  const auto rows3 = parse_mini_mias_info("mdb900 F CIRC B 10 1030 3\n", "m.txt");
  expect_error<io_error>([&] { (void)build_mini_mias(rows3, dir.path, "m.txt"); },
                         "m.txt:1: Y = 1030 lies above the image (height 1024)");
  // A 6-token and a 4-token row carry labels without a location; a 7-token row is located.
  const auto rows4 = parse_mini_mias_info("mdb900 F CALC M *NOTE 3* \nmdb900 F CIRC B\nmdb900 F SPIC M 10 24 5\n", "m.txt");
  const auto res = build_mini_mias(rows4, dir.path, "m.txt");
  BOOST_TEST_REQUIRE(res.records.size() == 1u);
  const auto& r = res.records[0];
  BOOST_TEST(r.patient_id == "mias-450");
  BOOST_TEST(r.laterality == "L");
  BOOST_TEST_REQUIRE(r.rois.size() == 3u);
  BOOST_TEST(!r.rois[0].located());
  BOOST_TEST((r.rois[0].label() == patch_class::malignant_calcification));
  BOOST_TEST(!r.rois[1].located());
  BOOST_TEST((r.rois[1].label() == patch_class::benign_mass));
  BOOST_TEST((*r.rois[2].center == std::array<double, 2>{1000.0, 10.0}));
  BOOST_TEST(r.cancer() == 1);
}

BOOST_AUTO_TEST_SUITE_END()
