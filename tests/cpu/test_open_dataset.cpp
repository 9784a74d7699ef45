// Tests of open_dataset (data/open_dataset.hpp): recognition of mini-MIAS (real data, folder and Info.txt),
// INbreast (a tiny INbreast-shaped release written here) and CBIS-DDSM (the real description CSVs, which
// need the DICOM tree), and the exact error messages for a missing path, an empty or unrelated folder, a
// file that is no index, a folder of two datasets and CSV-only CBIS-DDSM.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mammocl/data/open_dataset.hpp"
#include "shared_data.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using namespace mammocl::data;
using mammocl::test::expect_error;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

const std::string looked_for =
    "looked for Info.txt (mini-MIAS), INbreast.csv with AllXML/ and AllDICOMs/ (INbreast), "
    "mass_case_description_*.csv or calc_case_description_*.csv (CBIS-DDSM)";

/// An INbreast-shaped release: 3 images of 2 patients, one with BI-RADS 3 (excluded by default), one XML.
void write_inbreast(const fs::path& dir) {
  write(dir / "INbreast.csv",
        "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\r\n"
        "removed;removed;R;CC;201001;50000001;4;1\r\n"
        "removed;removed;R;MLO;201001;50000002;2;3\r\n"
        "removed;removed;L;CC;201001;50000003;2;5\r\n");
  for (const char* f : {"50000001_00000000000000aa_MG_R_CC_ANON.dcm", "50000002_00000000000000aa_MG_R_ML_ANON.dcm",
                        "50000003_00000000000000bb_MG_L_CC_ANON.dcm"})
    write(dir / "AllDICOMs" / f, "");
  write(dir / "AllXML" / "50000003.xml",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n<key>Images</key>\n<array>\n<dict>\n"
        "<key>NumberOfROIs</key><integer>1</integer>\n<key>ROIs</key>\n<array>\n<dict>\n"
        "<key>Name</key><string>Mass</string>\n<key>NumberOfPoints</key><integer>3</integer>\n"
        "<key>Point_px</key>\n<array><string>(100, 200)</string><string>(140, 200)</string><string>(140, 260)</string></array>\n"
        "</dict>\n</array>\n</dict>\n</array>\n</dict>\n</plist>\n");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(open_dataset_tests)

BOOST_AUTO_TEST_CASE(kind_names) {
  BOOST_TEST(dataset_kind_name(dataset_kind::mini_mias) == "mini-MIAS");
  BOOST_TEST(dataset_kind_name(dataset_kind::cbis_ddsm) == "CBIS-DDSM");
  BOOST_TEST(dataset_kind_name(dataset_kind::inbreast) == "INbreast");
}

BOOST_AUTO_TEST_CASE(mini_mias_from_the_folder_and_from_info_txt) {
  const auto data = test::shared_data("mini-mias/Info.txt");
  if (!data) return;
  const fs::path dir = *data / "mini-mias";
  const auto direct = read_mini_mias(dir / "Info.txt");
  for (const fs::path& p : {dir, dir / "Info.txt"}) {
    const opened_dataset ds = open_dataset(p);
    BOOST_TEST((ds.kind == dataset_kind::mini_mias));
    BOOST_TEST(ds.root == dir);
    BOOST_TEST(!ds.needs_dicom);
    BOOST_REQUIRE_EQUAL(ds.records.size(), direct.records.size());
    for (std::size_t i = 0; i < ds.records.size(); ++i) {
      BOOST_TEST(ds.records[i].image_path == direct.records[i].image_path);
      BOOST_TEST(ds.records[i].patient_id == direct.records[i].patient_id);
      BOOST_TEST(ds.records[i].rois.size() == direct.records[i].rois.size());
      BOOST_TEST(fs::is_regular_file(ds.records[i].image_path));
    }
    BOOST_TEST(ds.report.rows_read == direct.report.rows_read);
    BOOST_TEST(ds.report.skipped.size() == direct.report.skipped.size());
  }
  // The data README: 244 images, one record per image unless ARCH/ASYM excludes it.
  const opened_dataset ds = open_dataset(dir);
  BOOST_TEST(ds.records.size() + ds.report.skipped.size() == 244u);
  // Options reach the reader: ARCH/ASYM as masses keeps every image.
  open_dataset_options o;
  o.mini_mias.arch_asym = mias_arch_asym::as_mass;
  BOOST_TEST(open_dataset(dir, o).records.size() == 244u);
}

BOOST_AUTO_TEST_CASE(inbreast_release_needs_dicom) {
  test::temp_dir t("open-inbreast");
  write_inbreast(t.path);
  for (const fs::path& p : {t.path, t.path / "INbreast.csv"}) {
    const opened_dataset ds = open_dataset(p);
    BOOST_TEST((ds.kind == dataset_kind::inbreast));
    BOOST_TEST(ds.needs_dicom);
    BOOST_TEST(ds.root == t.path);
    BOOST_REQUIRE_EQUAL(ds.records.size(), 2u);
    BOOST_TEST(ds.records[0].image_path == (t.path / "AllDICOMs" / "50000001_00000000000000aa_MG_R_CC_ANON.dcm").string());
    BOOST_TEST(ds.records[0].patient_id == "00000000000000aa");
    BOOST_TEST(ds.records[0].rois.empty());
    BOOST_TEST(ds.records[1].patient_id == "00000000000000bb");
    BOOST_REQUIRE_EQUAL(ds.records[1].rois.size(), 1u);
    BOOST_TEST(ds.records[1].rois[0].polygon.size() == 3u);
    BOOST_TEST((ds.records[1].rois[0].path == pathology::malignant));
    BOOST_TEST(ds.report.rows_read == 3u);
    BOOST_REQUIRE_EQUAL(ds.report.skipped.size(), 1u);
    BOOST_TEST(ds.report.skipped[0].item == "50000002");
  }
  // The reader's own errors come through: no AllDICOMs folder.
  fs::remove_all(t.path / "AllDICOMs");
  expect_error<io_error>([&] { (void)open_dataset(t.path); },
                         (t.path / "AllDICOMs").string() + ": no such folder (AllDICOMs)");
}

BOOST_AUTO_TEST_CASE(cbis_ddsm_csvs_alone_need_the_dicom_tree) {
  const auto data = test::shared_data("cbis-ddsm/mass_case_description_train_set.csv");
  if (!data) return;
  const fs::path dir = *data / "cbis-ddsm";
  expect_error<io_error>([&] { (void)open_dataset(dir); },
                         "open_dataset: " + dir.string() +
                             ": CBIS-DDSM description CSVs (4 files) found, but CBIS-DDSM images need the DICOM tree: "
                             "use open_dataset_dicom (mammocl/data/open_dataset_dicom.hpp, target mammocl::dicom)");
  // One CSV given directly, copied next to nothing else.
  test::temp_dir t("open-cbis");
  fs::copy_file(dir / "calc_case_description_test_set.csv", t / "calc_case_description_test_set.csv");
  expect_error<io_error>([&] { (void)open_dataset(t / "calc_case_description_test_set.csv"); },
                         "open_dataset: " + t.path.string() + ": CBIS-DDSM description CSVs (1 file) found, but");
  expect_error<io_error>([&] { (void)open_dataset(t.path); }, "(1 file) found, but CBIS-DDSM images need the DICOM tree");
}

BOOST_AUTO_TEST_CASE(errors) {
  test::temp_dir t("open-errors");
  const fs::path missing = t / "nowhere";
  expect_error<io_error>([&] { (void)open_dataset(missing); }, "open_dataset: " + missing.string() + " does not exist");
  // Empty folder, then a folder of unrelated files (a CSV of another name included).
  const fs::path empty = t / "empty";
  fs::create_directories(empty);
  expect_error<io_error>([&] { (void)open_dataset(empty); },
                         "open_dataset: no dataset recognised in the folder " + empty.string() + "; " + looked_for);
  const fs::path other = t / "other";
  write(other / "notes.txt", "hello");
  write(other / "metadata.csv", "a,b\n1,2\n");
  write(other / "info.txt", "lower case is not mini-MIAS's name");
  write(other / "sub" / "Info.txt", "subfolders are not searched");
  expect_error<io_error>([&] { (void)open_dataset(other); },
                         "open_dataset: no dataset recognised in the folder " + other.string() + "; " + looked_for);
  // A file that is no index.
  expect_error<io_error>([&] { (void)open_dataset(other / "notes.txt"); },
                         "open_dataset: " + (other / "notes.txt").string() +
                             " is not a dataset index file; expected Info.txt (mini-MIAS), INbreast.csv with AllXML/ and "
                             "AllDICOMs/ (INbreast), mass_case_description_*.csv or calc_case_description_*.csv "
                             "(CBIS-DDSM), or the folder that holds them");
  // Two datasets in one folder.
  const fs::path two = t / "two";
  write(two / "Info.txt", "REFNUM BG CLASS SEVERITY X Y RADIUS\n");
  write(two / "INbreast.csv", "File Name;Bi-Rads\n");
  expect_error<io_error>([&] { (void)open_dataset(two); },
                         "open_dataset: the folder " + two.string() +
                             " holds the files of more than one dataset (Info.txt, INbreast.csv); pass the index file "
                             "of the one to open");
}

BOOST_AUTO_TEST_SUITE_END()
