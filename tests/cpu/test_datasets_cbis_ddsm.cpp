// CSV parser (RFC 4180 cases) and the CBIS-DDSM reader on the four real description CSVs of
// ../shared/data/cbis-ddsm. Counts are recomputed here from the raw bytes, independently of the parser.
#include <boost/test/unit_test.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "mammocl/data/cbis_ddsm.hpp"
#include "shared_data.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace mammocl::data;
using mammocl::io_error;
using mammocl::test::expect_error;

namespace {

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + what.size())) ++n;
  return n;
}

// Series UIDs of the full images, found in the raw text without a CSV parser: every ".dcm" path whose
// folder (1st component) ends in _CC or _MLO (crops and masks add "_<abnormality id>").
std::set<std::string> full_image_series(const std::string& text) {
  std::set<std::string> out;
  for (std::size_t end = text.find(".dcm"); end != std::string::npos; end = text.find(".dcm", end + 4)) {
    std::size_t b = end;
    while (b > 0 && text[b - 1] != ',' && text[b - 1] != '"' && text[b - 1] != '\n') --b;
    const std::string path = text.substr(b, end - b);
    const std::string folder = path.substr(0, path.find('/'));
    const bool full = folder.size() > 3 && (folder.substr(folder.size() - 3) == "_CC" ||
                                            (folder.size() > 4 && folder.substr(folder.size() - 4) == "_MLO"));
    if (!full) continue;
    const std::size_t s1 = path.find('/'), s2 = path.find('/', s1 + 1), s3 = path.find('/', s2 + 1);
    out.insert(path.substr(s2 + 1, s3 - s2 - 1));
  }
  return out;
}

const char* const kFiles[] = {"mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
                              "calc_case_description_train_set.csv", "calc_case_description_test_set.csv"};

}  // namespace

BOOST_AUTO_TEST_SUITE(datasets_cbis_ddsm)

BOOST_AUTO_TEST_CASE(csv_rfc4180) {
  const auto t = parse_csv("a,b,c\r\n1,\"x, y\",\"he said \"\"hi\"\"\"\r\n\r\n2,\"multi\nline\r\nfield\",\r\n3,,last", "t.csv");
  BOOST_TEST((t.header == std::vector<std::string>{"a", "b", "c"}));
  BOOST_TEST_REQUIRE(t.rows.size() == 3u);
  BOOST_TEST((t.rows[0] == std::vector<std::string>{"1", "x, y", "he said \"hi\""}));
  BOOST_TEST((t.rows[1] == std::vector<std::string>{"2", "multi\nline\r\nfield", ""}));
  BOOST_TEST((t.rows[2] == std::vector<std::string>{"3", "", "last"}));
  BOOST_TEST((t.row_lines == std::vector<std::size_t>{2, 4, 7}));
  BOOST_TEST(t.column({"B"}) == 1u);  // case-insensitive
  BOOST_TEST(t.column({"nope", " c "}) == 2u);  // alternatives, trimmed

  csv_options semi;
  semi.delimiter = ';';
  const auto s = parse_csv("\xEF\xBB\xBFx;y\n1;a,b\n", "s.csv", semi);
  BOOST_TEST((s.header == std::vector<std::string>{"x", "y"}));
  BOOST_TEST((s.rows.at(0) == std::vector<std::string>{"1", "a,b"}));

  const auto p = [](std::string text) { return [text] { (void)parse_csv(text, "bad.csv"); }; };
  expect_error<io_error>(p("a,b\n1,2\n3,\"open\n4,5\n"),
                         "bad.csv:3: column 2: unterminated quoted field (opened on line 3, the file ends inside it)");
  expect_error<io_error>(p("a,b\n1,2,3\n"), "bad.csv:2: column 3: row has 3 fields, the header (line 1) has 2");
  expect_error<io_error>(p("a,b,c\n\"1\n\",2\n"),
                         "bad.csv:2: column 3 ('c') missing: row has 2 fields, the header (line 1) has 3");
  expect_error<io_error>(p("a,b\n\"1\"x,2\n"), "bad.csv:2: column 1: unexpected character 'x' after a closing quote");
  expect_error<io_error>(p("a,b\n1,2\"\n"), "bad.csv:2: column 2: quote inside an unquoted field");
  expect_error<io_error>(p(""), "bad.csv: empty file, expected a header row");
  expect_error<io_error>([&] { (void)t.column({"breast density", "breast_density"}); },
                         "t.csv:1: no column 'breast density' or 'breast_density' in the header");
}

BOOST_AUTO_TEST_CASE(real_csvs_counts) {
  auto root = mammocl::test::shared_data("cbis-ddsm/mass_case_description_train_set.csv");
  if (!root) return;
  const fs::path dir = *root / "cbis-ddsm";
  std::size_t all_rows = 0, all_images = 0;
  for (const char* f : kFiles) {
    BOOST_TEST_CONTEXT(f) {
      const std::string text = read_text_file(dir / f);
      // Independent counts: 3 ".dcm" paths per row; pathology values between commas.
      const std::size_t rows = count_of(text, ".dcm") / 3;
      BOOST_TEST(count_of(text, ".dcm") % 3 == 0u);
      const std::size_t mal = count_of(text, ",MALIGNANT,"), ben = count_of(text, ",BENIGN,"),
                        bwc = count_of(text, ",BENIGN_WITHOUT_CALLBACK,");
      BOOST_TEST(mal + ben + bwc == rows);
      const auto series = full_image_series(text);

      const auto res = read_cbis_ddsm({dir / f});
      BOOST_TEST(res.rows.size() == rows);
      BOOST_TEST(res.report.rows_read == rows);
      BOOST_TEST(res.records.size() == series.size());
      BOOST_TEST(res.report.skipped.empty());
      std::map<std::string, std::size_t> by_text;
      for (const auto& r : res.rows) ++by_text[r.pathology_text];
      BOOST_TEST(by_text["MALIGNANT"] == mal);
      BOOST_TEST(by_text["BENIGN"] == ben);
      BOOST_TEST(by_text["BENIGN_WITHOUT_CALLBACK"] == bwc);
      const bool mass = std::string(f).substr(0, 4) == "mass";
      const cbis_split split = std::string(f).find("train") != std::string::npos ? cbis_split::train : cbis_split::test;
      std::size_t rois = 0, malignant_rois = 0;
      for (std::size_t i = 0; i < res.records.size(); ++i) {
        const auto& rec = res.records[i];
        BOOST_TEST(series.count(res.images[i].series_uid) == 1u);
        BOOST_TEST((res.images[i].split == split));
        BOOST_TEST(rec.image_path.find(res.images[i].series_uid) != std::string::npos);
        BOOST_TEST(!rec.rois.empty());
        BOOST_TEST((rec.laterality == "L" || rec.laterality == "R"));
        BOOST_TEST((rec.view == "CC" || rec.view == "MLO"));
        BOOST_TEST(rec.patient_id.substr(0, 2) == "P_");
        bool any_malignant = false;
        for (std::size_t k = 0; k < rec.rois.size(); ++k) {
          const auto& o = rec.rois[k];
          const auto& row = res.rows[res.images[i].rows[k]];
          BOOST_TEST((o.type == (mass ? lesion_type::mass : lesion_type::calcification)));
          BOOST_TEST((o.path == (row.pathology_text == "MALIGNANT" ? pathology::malignant : pathology::benign)));
          BOOST_TEST(o.mask_path == row.mask_path);
          BOOST_TEST(row.image_series == res.images[i].series_uid);
          any_malignant |= o.path == pathology::malignant;
          malignant_rois += o.path == pathology::malignant;
        }
        BOOST_TEST(rec.cancer() == (any_malignant ? 1 : 0));
        rois += rec.rois.size();
      }
      BOOST_TEST(rois == rows);
      BOOST_TEST(malignant_rois == mal);
      all_rows += rows;
      all_images += series.size();
    }
  }
  // The totals published in DATA-FORMATS.md §2.1.
  BOOST_TEST(all_rows == 3568u);
  BOOST_TEST(all_images == 3103u);
  const auto all = read_cbis_ddsm(cbis_ddsm_csvs(dir));
  BOOST_TEST(all.records.size() == 3103u);
}

BOOST_AUTO_TEST_CASE(density_spellings_and_embedded_newline) {
  auto root = mammocl::test::shared_data("cbis-ddsm/calc_case_description_test_set.csv");
  if (!root) return;
  const fs::path dir = *root / "cbis-ddsm";
  for (const char* f : kFiles) {
    BOOST_TEST_CONTEXT(f) {
      const std::string text = read_text_file(dir / f);
      const bool mass = std::string(f).substr(0, 4) == "mass";
      const auto table = read_csv(dir / f);
      BOOST_TEST(table.find_column({mass ? "breast_density" : "breast density"}).has_value());
      BOOST_TEST(!table.find_column({mass ? "breast density" : "breast_density"}).has_value());
      // The quoted field with the LF inside: ROI mask path (mass) or crop path (calc).
      const std::size_t col = table.column({mass ? "ROI mask file path" : "cropped image file path"});
      std::size_t with_lf = 0;
      for (const auto& r : table.rows) with_lf += !r[col].empty() && r[col].back() == '\n';
      BOOST_TEST(with_lf == table.rows.size());
      BOOST_TEST(count_of(text, "\n\"") == table.rows.size());
      const auto res = read_cbis_ddsm({dir / f});
      std::set<std::string> densities;
      for (const auto& r : res.rows) {
        densities.insert(r.density);
        for (const auto* p : {&r.image_path, &r.crop_path, &r.mask_path}) {
          BOOST_TEST(p->size() > 4u);
          BOOST_TEST(p->substr(p->size() - 4) == ".dcm");
          BOOST_TEST(p->find_first_of("\r\n\"") == std::string::npos);
        }
        // The joined path field is the raw text without the LF.
        BOOST_TEST(count_of(text, (mass ? r.mask_path : r.crop_path) + "\n\"") >= 1u);
        BOOST_TEST(r.line >= 2u);
      }
      BOOST_TEST(densities.size() >= 4u);
      // Rows start where the parser says: line numbers grow by 2 (each row spans two lines).
      BOOST_TEST(res.rows.front().line == 2u);
      BOOST_TEST(res.rows.back().line == 2u * res.rows.size());
    }
  }
}

BOOST_AUTO_TEST_CASE(benign_without_callback_option) {
  auto root = mammocl::test::shared_data("cbis-ddsm/calc_case_description_train_set.csv");
  if (!root) return;
  const fs::path f = *root / "cbis-ddsm" / "calc_case_description_train_set.csv";
  const std::string text = read_text_file(f);
  const std::size_t bwc = count_of(text, ",BENIGN_WITHOUT_CALLBACK,");
  const auto keep = read_cbis_ddsm({f});
  cbis_ddsm_options opt;
  opt.benign_without_callback = cbis_bwc::exclude;
  opt.image_root = "/data/CBIS-DDSM";
  const auto drop = read_cbis_ddsm({f}, opt);
  std::size_t keep_rois = 0, drop_rois = 0, keep_benign = 0;
  for (const auto& r : keep.records) {
    keep_rois += r.rois.size();
    for (const auto& o : r.rois) keep_benign += o.path == pathology::benign;
  }
  for (const auto& r : drop.records) {
    drop_rois += r.rois.size();
    BOOST_TEST(r.image_path.substr(0, 16) == "/data/CBIS-DDSM/");
    for (const auto& o : r.rois) BOOST_TEST(o.mask_path.substr(0, 16) == "/data/CBIS-DDSM/");
  }
  BOOST_TEST(keep_rois - drop_rois == bwc);
  BOOST_TEST(keep_benign == count_of(text, ",BENIGN,") + bwc);
  // Images whose rows were all BENIGN_WITHOUT_CALLBACK are dropped and reported.
  std::map<std::string, std::pair<int, int>> per_image;  // series -> (rows, bwc rows)
  for (const auto& r : drop.rows) {
    auto& c = per_image[r.image_series];
    ++c.first;
    c.second += r.pathology_text == "BENIGN_WITHOUT_CALLBACK";
  }
  std::size_t all_bwc_images = 0;
  for (const auto& [s, c] : per_image) all_bwc_images += c.first == c.second;
  BOOST_TEST(all_bwc_images > 0u);
  BOOST_TEST(drop.records.size() == keep.records.size() - all_bwc_images);
  BOOST_TEST(drop.report.skipped.size() == bwc + all_bwc_images);
  BOOST_TEST(drop.report.skipped.front().reason.find("BENIGN_WITHOUT_CALLBACK") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_csvs) {
  const std::string header =
      "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
      "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\r\n";
  const std::string good =
      "P_1,3,LEFT,CC,1,mass,OVAL,CIRCUMSCRIBED,4,MALIGNANT,4,F_CC/1.2/1.3/000000.dcm,F_CC_1/1.2/1.4/000000.dcm,"
      "\"F_CC_1/1.2/1.4/000001.dcm\n\"\r\n";
  const auto rows = parse_cbis_ddsm_csv(header + good, "m.csv", cbis_split::test);
  BOOST_TEST_REQUIRE(rows.size() == 1u);
  BOOST_TEST(rows[0].mask_path == "F_CC_1/1.2/1.4/000001.dcm");
  BOOST_TEST(rows[0].mask_series == "1.4");
  BOOST_TEST(rows[0].image_series == "1.3");
  BOOST_TEST((rows[0].split == cbis_split::test));

  const auto p = [](std::string text) { return [text] { (void)parse_cbis_ddsm_csv(text, "m.csv", cbis_split::train); }; };
  // Not a CBIS-DDSM description CSV.
  expect_error<io_error>(p("Patient ID;Patient age;Laterality\r\nremoved;removed;R\r\n"),
                         "m.csv:1: no column 'patient_id' in the header");
  std::string no_path = header;
  no_path.replace(no_path.find("pathology,"), 10, "");
  expect_error<io_error>(p(no_path), "m.csv:1: no column 'pathology' in the header");
  std::string no_density = header;
  no_density.replace(no_density.find("breast_density"), 14, "density");
  expect_error<io_error>(p(no_density), "m.csv:1: no column 'breast density' or 'breast_density' in the header");
  // Bad values.
  std::string bad = good;
  bad.replace(bad.find("MALIGNANT"), 9, "CANCER");
  expect_error<io_error>(p(header + good + bad),
                         "m.csv:4: column 'pathology': 'CANCER' is not MALIGNANT, BENIGN or BENIGN_WITHOUT_CALLBACK");
  std::string side = good;
  side.replace(side.find("LEFT"), 4, "L");
  expect_error<io_error>(p(header + side), "m.csv:2: column 'left or right breast': 'L' is not LEFT or RIGHT");
  std::string type = good;
  type.replace(type.find(",mass,"), 6, ",lump,");
  expect_error<io_error>(p(header + type), "m.csv:2: column 'abnormality type': 'lump' is not mass or calcification");
  std::string sub = good;
  sub.replace(sub.find(",4,F_CC"), 7, ",9,F_CC");
  expect_error<io_error>(p(header + sub), "m.csv:2: column 'subtlety': '9' is not an integer in [0, 5]");
  std::string path = good;
  path.replace(path.find("F_CC/1.2/1.3/"), 13, "F_CC/1.3/");
  expect_error<io_error>(p(header + path),
                         "m.csv:2: column 'image file path': 'F_CC/1.3/000000.dcm' is not <folder>/<StudyInstanceUID>/");
  // Wrong field count and unterminated quote name the row's first line.
  expect_error<io_error>(p(header + good + "P_1,3,LEFT\r\n"),
                         "m.csv:4: column 4 ('image view') missing: row has 3 fields, the header (line 1) has 14");
  expect_error<io_error>(p(header + good + good.substr(0, good.size() - 4)),
                         "m.csv:4: column 14: unterminated quoted field (opened on line 4");
  // Rows of one image that disagree.
  std::string other = good;
  other.replace(other.find(",CC,"), 4, ",MLO,");
  expect_error<io_error>([&] { (void)build_cbis_ddsm(parse_cbis_ddsm_csv(header + good + other, "m.csv", cbis_split::train)); },
                         "m.csv:4: image view differs from m.csv:2, a row of the same image (series 1.3)");
  expect_error<io_error>([] { (void)cbis_split_of("descriptions.csv"); },
                         "descriptions.csv: cannot tell the split from the file name");
}

BOOST_AUTO_TEST_SUITE_END()
