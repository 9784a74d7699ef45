// plist parser and INbreast reader on a small INbreast-shaped release written to a temp folder here
// (INbreast is not public; DATA-FORMATS.md §3 gives the layout). The DICOM files are empty: the reader
// only uses their names.
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "mammocl/data/inbreast.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace mammocl::data;
using mammocl::io_error;
using mammocl::test::expect_error;

namespace {

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

std::string roi_xml(const std::string& name, const std::vector<std::string>& points, int declared = -1) {
  std::string s = "\t\t\t\t<dict>\n\t\t\t\t\t<key>Area</key>\n\t\t\t\t\t<real>12.5</real>\n"
                  "\t\t\t\t\t<key>Name</key>\n\t\t\t\t\t<string>" + name + "</string>\n"
                  "\t\t\t\t\t<key>NumberOfPoints</key>\n\t\t\t\t\t<integer>" +
                  std::to_string(declared >= 0 ? declared : static_cast<int>(points.size())) + "</integer>\n"
                  "\t\t\t\t\t<key>Point_mm</key>\n\t\t\t\t\t<array>\n\t\t\t\t\t\t<string>(1.0, 2.0, 0.0)</string>\n\t\t\t\t\t</array>\n"
                  "\t\t\t\t\t<key>Point_px</key>\n\t\t\t\t\t<array>\n";
  for (const auto& p : points) s += "\t\t\t\t\t\t<string>" + p + "</string>\n";
  s += "\t\t\t\t\t</array>\n\t\t\t\t</dict>\n";
  return s;
}

std::string plist_xml(const std::vector<std::string>& rois, int declared = -1) {
  std::string s =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
      "<plist version=\"1.0\">\n<dict>\n\t<key>Images</key>\n\t<array>\n\t\t<dict>\n"
      "\t\t\t<key>ImageHeight</key>\n\t\t\t<integer>4084</integer>\n\t\t\t<key>ImageIndex</key>\n\t\t\t<integer>0</integer>\n"
      "\t\t\t<key>NumberOfROIs</key>\n\t\t\t<integer>" +
      std::to_string(declared >= 0 ? declared : static_cast<int>(rois.size())) + "</integer>\n"
      "\t\t\t<key>ROIs</key>\n\t\t\t<array>\n";
  for (const auto& r : rois) s += r;
  s += "\t\t\t</array>\n\t\t</dict>\n\t</array>\n</dict>\n</plist>\n";
  return s;
}

// A release with 5 images of two patients.
struct release {
  mammocl::test::temp_dir dir{"inbreast"};
  release() {
    write(dir / "INbreast.csv",
          "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\r\n"
          "removed;removed;R;CC;201001;50000001;4;1\r\n"
          "removed;removed;R;MLO;201001;50000002;          ;3\r\n"
          "removed;removed;L;CC;201001;50000003;2;4a\r\n"
          "removed;removed;L;MLO;201001;50000004;2;5\r\n"
          "removed;removed;L;CC;201003;50000005;1;2\r\n");
    for (const char* f : {"50000001_00000000000000aa_MG_R_CC_ANON.dcm", "50000002_00000000000000aa_MG_R_ML_ANON.dcm",
                          "50000003_00000000000000bb_MG_L_CC_ANON.dcm", "50000004_00000000000000bb_MG_L_ML_ANON.dcm",
                          "50000005_00000000000000bb_MG_L_CC_ANON.dcm"})
      write(dir / "AllDICOMs" / f, "");
    write(dir / "AllDICOMs" / "README.txt", "not a DICOM");
    write(dir / "AllXML" / "50000003.xml",
          plist_xml({roi_xml("Mass", {"(100, 200)", "(140, 200)", "(140, 260)", "(100.5, 260.25)"}),
                     roi_xml("Calcification", {"(300, 400)"}),
                     roi_xml("Calcifications", {"(10, 20)", "(40, 60)"}),
                     roi_xml("Cluster", {"(500,600)", "(520,600)", "(520,640)"})}));
    write(dir / "AllXML" / "50000004.xml",
          plist_xml({roi_xml("Spiculated Region", {"(1, 2)", "(3, 4)", "(5, 7)"}), roi_xml("Assymetry", {"(9, 9)"}),
                     roi_xml("Pectoral muscle", {"(1, 1)", "(2, 2)", "(3, 1)"})}));
    write(dir / "AllXML" / "50000005.xml", plist_xml({roi_xml("Calcification", {"(7, 8)"})}));
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(datasets_inbreast)

BOOST_AUTO_TEST_CASE(plist_values_and_errors) {
  const auto v = parse_plist(
      "<?xml version=\"1.0\"?>\n<!-- c -->\n<plist version=\"1.0\">\n<dict>\n<key>a &amp; b</key><string>&lt;x&gt; &#65;&#x42;</string>\n"
      "<key>n</key><integer>-42</integer><key>r</key><real>2.5e1</real><key>t</key><true/><key>f</key><false/>\n"
      "<key>e</key><array/><key>s</key><string/><key>arr</key><array><integer>1</integer><dict></dict></array>\n"
      "</dict>\n</plist>\n",
      "p.plist");
  using K = plist_value::kind;
  BOOST_TEST_REQUIRE(v.is(K::dict));
  BOOST_TEST(v.keys.size() == 8u);
  BOOST_TEST(v.values.size() == 8u);
  BOOST_TEST(v.find("a & b")->text == "<x> AB");
  BOOST_TEST(v.find("a & b")->line == 5u);
  BOOST_TEST(v.find("n")->integer == -42);
  BOOST_TEST(v.find("r")->real == 25.0);
  BOOST_TEST(v.find("t")->boolean);
  BOOST_TEST(!v.find("f")->boolean);
  BOOST_TEST(v.find("e")->array.empty());
  BOOST_TEST(v.find("s")->text.empty());
  BOOST_TEST(v.find("arr")->array.size() == 2u);
  BOOST_TEST(v.find("arr")->array[1].is(K::dict));
  BOOST_TEST(v.find("missing") == nullptr);

  const auto p = [](std::string text) { return [text] { (void)parse_plist(text, "p.plist"); }; };
  expect_error<io_error>(p("<plist>\n<dict>\n<key>a</key><integer>1x</integer></dict></plist>"),
                         "p.plist:3: <integer> '1x' is not an integer");
  expect_error<io_error>(p("<plist><dict>\n<string>a</string></dict></plist>"), "p.plist:2: expected <key> in <dict>");
  expect_error<io_error>(p("<plist><dict><key>a</key>\n</dict></plist>"), "p.plist:2: key 'a' has no value");
  expect_error<io_error>(p("<plist><array><foo/></array></plist>"), "p.plist:1: unknown plist element <foo>");
  expect_error<io_error>(p("<plist><array><string>a</array></plist>"), "p.plist:1: expected </string>");
  expect_error<io_error>(p("<plist><string>a &nbsp; b</string></plist>"), "p.plist:1: unknown entity &nbsp;");
  expect_error<io_error>(p("<plist><array>\n<string>a</string>\n"), "p.plist:3: expected an opening tag");
  expect_error<io_error>(p("<plist><real>abc</real></plist>"), "p.plist:1: <real> 'abc' is not a number");
  expect_error<io_error>(p("<plist><true/></plist>x"), "p.plist:1: text after </plist>");
  expect_error<io_error>(p("<plist><>"), "p.plist:1: expected a tag name after '<'");
  std::string deep = "<plist>";
  for (int i = 0; i < 300; ++i) deep += "<array>";
  expect_error<io_error>(p(deep), "p.plist:1: nesting deeper than 256 levels");
}

BOOST_AUTO_TEST_CASE(birads_parsing) {
  for (const char* s : {"1", "2", "3", "4a", "4B", "4c", "5", "6", " 4 "}) BOOST_TEST(parse_birads(s).has_value(), s);
  for (const char* s : {"", "7", "4d", "a", "44", "3a"}) BOOST_TEST(!parse_birads(s).has_value(), s);
  BOOST_TEST(parse_birads("4b")->sub == 'b');
  const auto lab = [](const char* s, inbreast_birads c) { return birads_label(*parse_birads(s), c); };
  BOOST_TEST(lab("1", inbreast_birads::shen2019).value() == 0);
  BOOST_TEST(lab("2", inbreast_birads::shen2019).value() == 0);
  BOOST_TEST(!lab("3", inbreast_birads::shen2019).has_value());
  BOOST_TEST(lab("3", inbreast_birads::three_benign).value() == 0);
  BOOST_TEST(lab("4a", inbreast_birads::shen2019).value() == 1);
  BOOST_TEST(lab("6", inbreast_birads::three_benign).value() == 1);
}

BOOST_AUTO_TEST_CASE(records_labels_and_rois) {
  release rel;
  const auto res = read_inbreast(rel.dir.path);
  BOOST_TEST(res.report.rows_read == 5u);
  BOOST_TEST_REQUIRE(res.records.size() == 4u);  // BI-RADS 3 excluded
  BOOST_TEST((res.birads == std::vector<std::string>{"1", "4a", "5", "2"}));
  const auto& r1 = res.records[0];
  BOOST_TEST(r1.image_path == (rel.dir / "AllDICOMs" / "50000001_00000000000000aa_MG_R_CC_ANON.dcm").string());
  BOOST_TEST(r1.patient_id == "00000000000000aa");
  BOOST_TEST(r1.laterality == "R");
  BOOST_TEST(r1.view == "CC");
  BOOST_TEST(r1.density == "4");
  BOOST_TEST(r1.rois.empty());
  BOOST_TEST(r1.cancer() == 0);

  const auto& r3 = res.records[1];
  BOOST_TEST(r3.patient_id == "00000000000000bb");
  BOOST_TEST(r3.cancer() == 1);
  BOOST_TEST_REQUIRE(r3.rois.size() == 4u);
  BOOST_TEST((r3.rois[0].type == lesion_type::mass));
  BOOST_TEST((r3.rois[0].label() == patch_class::malignant_mass));
  BOOST_TEST(r3.rois[0].polygon.size() == 4u);
  BOOST_TEST((r3.rois[0].polygon[3] == std::array<double, 2>{260.25, 100.5}));  // (row, col) = (y, x)
  BOOST_TEST((r3.rois[1].type == lesion_type::calcification));
  BOOST_TEST((*r3.rois[1].center == std::array<double, 2>{400.0, 300.0}));
  BOOST_TEST(r3.rois[1].radius == 5.0);  // point_radius
  BOOST_TEST((*r3.rois[2].center == std::array<double, 2>{40.0, 25.0}));
  BOOST_TEST(r3.rois[2].radius == 25.0);  // half of hypot(30, 40)
  BOOST_TEST((r3.rois[3].label() == patch_class::malignant_calcification));
  BOOST_TEST(r3.rois[3].description == "Cluster, BI-RADS 4a");

  const auto& r4 = res.records[2];
  BOOST_TEST(r4.view == "MLO");
  BOOST_TEST_REQUIRE(r4.rois.size() == 1u);  // spiculated region kept; asymmetry and unknown left out
  BOOST_TEST((r4.rois[0].type == lesion_type::mass));
  const auto& r5 = res.records[3];
  BOOST_TEST(r5.cancer() == 0);
  BOOST_TEST_REQUIRE(r5.rois.size() == 1u);
  BOOST_TEST((r5.rois[0].label() == patch_class::benign_calcification));

  BOOST_TEST_REQUIRE(res.report.skipped.size() == 3u);
  BOOST_TEST(res.report.skipped[0].item == "50000002");
  BOOST_TEST(res.report.skipped[0].reason.find("BI-RADS 3") != std::string::npos);
  BOOST_TEST(res.report.skipped[1].item.find("'Assymetry'") != std::string::npos);
  BOOST_TEST(res.report.skipped[2].item.find("'Pectoral muscle'") != std::string::npos);
  BOOST_TEST(res.report.warnings.empty());
}

BOOST_AUTO_TEST_CASE(options) {
  release rel;
  inbreast_options opt;
  opt.birads = inbreast_birads::three_benign;
  opt.asymmetry_distortion = inbreast_other_roi::as_mass;
  opt.point_radius = 2.0;
  const auto res = read_inbreast(rel.dir.path, opt);
  BOOST_TEST_REQUIRE(res.records.size() == 5u);
  const auto& r2 = res.records[1];
  BOOST_TEST(r2.image_label.value() == 0);
  BOOST_TEST(r2.density == "");  // a blank ACR padded with spaces
  BOOST_TEST(r2.view == "MLO");
  BOOST_TEST_REQUIRE(res.records[2].rois.size() == 4u);
  BOOST_TEST(res.records[2].rois[1].radius == 2.0);   // one point: point_radius
  BOOST_TEST(res.records[2].rois[2].radius == 25.0);  // two points: half their distance
  BOOST_TEST_REQUIRE(res.records[3].rois.size() == 2u);  // asymmetry mapped to a mass
  BOOST_TEST((res.records[3].rois[1].type == lesion_type::mass));
  BOOST_TEST(res.records[3].rois[1].description == "Assymetry, BI-RADS 5");
  BOOST_TEST(res.report.skipped.size() == 1u);  // the unknown ROI name only

  // A missing DICOM: error by default, reported with the option.
  fs::remove(rel.dir / "AllDICOMs" / "50000005_00000000000000bb_MG_L_CC_ANON.dcm");
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         (rel.dir / "INbreast.csv").string() + ":6: no file 50000005_*.dcm in " +
                             (rel.dir / "AllDICOMs").string());
  inbreast_options skip;
  skip.skip_missing_dicom = true;
  const auto res2 = read_inbreast(rel.dir.path, skip);
  BOOST_TEST(res2.records.size() == 3u);
  BOOST_TEST(res2.report.skipped.back().item == "50000005");
}

BOOST_AUTO_TEST_CASE(errors) {
  release rel;
  const auto xml = rel.dir / "AllXML" / "50000004.xml";
  // NumberOfROIs disagrees with ROIs (line 13 holds the integer; lines counted by hand from plist_xml).
  write(xml, plist_xml({roi_xml("Mass", {"(1, 2)", "(3, 4)", "(5, 6)"})}, 2));
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         xml.string() + ":13: key 'NumberOfROIs' is 2 but 'ROIs' holds 1 entries");
  // NumberOfPoints disagrees with Point_px.
  write(xml, plist_xml({roi_xml("Mass", {"(1, 2)", "(3, 4)", "(5, 6)"}, 4)}));
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         xml.string() + ":22: key 'NumberOfPoints' is 4 but 'Point_px' holds 3 points (ROI 'Mass')");
  write(xml, plist_xml({roi_xml("Mass", {"(1; 2)"})}));
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         xml.string() + ":29: 'Point_px' entry '(1; 2)' is not \"(x, y)\"");
  write(xml, "<plist><dict><key>Images</key><dict></dict></dict></plist>");
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         xml.string() + ":1: key 'Images' is a dict, expected array");
  write(xml, plist_xml({}));

  const auto csv = rel.dir / "INbreast.csv";
  const std::string header = "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\r\n";
  write(csv, header + "removed;removed;R;CC;201001;50000001;4;7\r\n");
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         csv.string() + ":2: column 'Bi-Rads': '7' is not one of 1, 2, 3, 4a, 4b, 4c, 5, 6");
  write(csv, header + "removed;removed;X;CC;201001;50000001;4;1\r\n");
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); }, csv.string() + ":2: column 'Laterality': 'X' is not L or R");
  write(csv, "Patient ID;Laterality;View;File Name;ACR\r\nremoved;R;CC;50000001;4\r\n");
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         csv.string() + ":1: no column 'Bi-Rads' or 'BI-RADS' or 'BIRADS' or 'Bi_Rads' in the header");
  write(csv, header + "removed;removed;R;CC;201001;50000001;4\r\n");
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); },
                         csv.string() + ":2: column 8 ('Bi-Rads') missing: row has 7 fields, the header (line 1) has 8");
  // An XML that no row names is a warning.
  write(csv, header + "removed;removed;R;CC;201001;50000001;4;1\r\n");
  const auto res = read_inbreast(rel.dir.path);
  BOOST_TEST(res.records.size() == 1u);
  BOOST_TEST(res.report.warnings.size() == 3u);
  // Two DICOMs for one File Name.
  write(rel.dir / "AllDICOMs" / "50000001_00000000000000cc_MG_R_CC_ANON.dcm", "");
  expect_error<io_error>([&] { (void)read_inbreast(rel.dir.path); }, "two DICOM files for File Name 50000001");
}

BOOST_AUTO_TEST_SUITE_END()
