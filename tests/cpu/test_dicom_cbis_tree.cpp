// Joining CBIS-DDSM rows to a DICOM tree: a tiny tree in the NBIA download layout is written here with
// DCMTK (full images, crops, binary masks), with SeriesInstanceUIDs matching the CSV rows written here.
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "mammocl/data/cbis_ddsm_dicom.hpp"
#include "dicom_test_writer.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace mammocl::data;
using mammocl::io_error;
using mammocl::test::expect_error;
using mammocl::test::write_test_dicom;

namespace {

std::vector<std::uint16_t> grey(int rows, int cols, int seed) {
  std::vector<std::uint16_t> v(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint16_t>((i * 37 + seed * 101) % 4096);
  return v;
}

std::vector<std::uint16_t> binary(int rows, int cols, std::uint16_t on) {
  std::vector<std::uint16_t> v(static_cast<std::size_t>(rows * cols), 0);
  for (int r = rows / 4; r < rows / 2; ++r)
    for (int c = cols / 4; c < cols / 2; ++c) v[static_cast<std::size_t>(r * cols + c)] = on;
  return v;
}

const std::string kHeader =
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
    "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\r\n";

std::string row(const std::string& pid, const std::string& side, int id, const std::string& path,
                const std::string& full, const std::string& crop, const std::string& mask) {
  const std::string folder = "Mass-Training_" + pid + "_" + side + "_CC";
  return pid + ",3," + side + ",CC," + std::to_string(id) + ",mass,OVAL,CIRCUMSCRIBED,4," + path + ",3," + folder +
         "/1.9/" + full + "/000000.dcm," + folder + "_" + std::to_string(id) + "/1.9/" + crop + "/000000.dcm,\"" +
         folder + "_" + std::to_string(id) + "/1.9/" + mask + "/000001.dcm\n\"\r\n";
}

// The tree: image A (2 ROIs: one with crop and mask in one series under misleading names, one with crop
// and mask in separate series and a 0/1 mask), image B whose full series is absent, image C whose mask
// series is absent.
struct tree {
  mammocl::test::temp_dir dir{"cbis-tree"};
  fs::path csv;
  tree() {
    const fs::path root = dir / "CBIS-DDSM";
    write_test_dicom(root / "Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-NA-1/1.000000-full mammogram images-1/1-1.dcm",
                "1.2.3.100", 64, 48, 16, grey(64, 48, 1));
    // ROI 1: one series, the mask named like a crop and vice versa.
    const fs::path roi1 = root / "Mass-Training_P_00001_LEFT_CC_1/07-21-2016-DDSM-NA-2/1.000000-ROI mask images-2";
    write_test_dicom(roi1 / "1-1.dcm", "1.2.3.111", 64, 48, 8, binary(64, 48, 255));  // the mask
    write_test_dicom(roi1 / "1-2.dcm", "1.2.3.111", 10, 12, 16, grey(10, 12, 2));    // the crop
    // ROI 2: crop and mask in separate series; mask 0/1.
    write_test_dicom(root / "Mass-Training_P_00001_LEFT_CC_2/07-21-2016-DDSM-NA-3/1.000000-cropped images-3/1-1.dcm",
                "1.2.3.121", 9, 7, 16, grey(9, 7, 3));
    write_test_dicom(root / "Mass-Training_P_00001_LEFT_CC_2/07-21-2016-DDSM-NA-4/1.000000-ROI mask images-4/1-1.dcm",
                "1.2.3.122", 64, 48, 8, binary(64, 48, 1));
    // Image C with its crop only.
    write_test_dicom(root / "Mass-Training_P_00003_RIGHT_CC/x/1.000000-full mammogram images-5/1-1.dcm", "1.2.3.300", 32,
                16, 16, grey(32, 16, 4));
    write_test_dicom(root / "Mass-Training_P_00003_RIGHT_CC_1/x/1.000000-cropped images-6/1-1.dcm", "1.2.3.311", 8, 8, 16,
                grey(8, 8, 5));
    // Not DICOM: reported, not fatal.
    std::ofstream(root / "broken.dcm") << "not a dicom file";
    std::ofstream(root / "metadata.csv") << "Series UID,File Location\r\n";
    csv = dir / "mass_case_description_train_set.csv";
    std::ofstream(csv, std::ios::binary)
        << kHeader << row("P_00001", "LEFT", 1, "MALIGNANT", "1.2.3.100", "1.2.3.111", "1.2.3.111")
        << row("P_00001", "LEFT", 2, "BENIGN", "1.2.3.100", "1.2.3.121", "1.2.3.122")
        << row("P_00002", "RIGHT", 1, "BENIGN", "1.2.3.200", "1.2.3.211", "1.2.3.211")
        << row("P_00003", "RIGHT", 1, "BENIGN_WITHOUT_CALLBACK", "1.2.3.300", "1.2.3.311", "1.2.3.312");
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(dicom_cbis_tree)

BOOST_AUTO_TEST_CASE(classification_by_content) {
  tree t;
  const fs::path root = t.dir / "CBIS-DDSM";
  const fs::path roi1 = root / "Mass-Training_P_00001_LEFT_CC_1/07-21-2016-DDSM-NA-2/1.000000-ROI mask images-2";
  BOOST_TEST((classify_cbis_roi_file(roi1 / "1-1.dcm") == cbis_roi_file::mask));
  BOOST_TEST((classify_cbis_roi_file(roi1 / "1-2.dcm") == cbis_roi_file::crop));
  BOOST_TEST((classify_cbis_roi_file(root / "Mass-Training_P_00001_LEFT_CC_2/07-21-2016-DDSM-NA-4/1.000000-ROI mask images-4/1-1.dcm") ==
              cbis_roi_file::mask));
  // 16-bit binary 0/65535 is a mask; two grey levels other than {0, 1, max} are not; an all-zero image is.
  write_test_dicom(t.dir / "m16.dcm", "9.1", 8, 8, 16, binary(8, 8, 65535));
  write_test_dicom(t.dir / "two.dcm", "9.2", 8, 8, 16, binary(8, 8, 700));
  write_test_dicom(t.dir / "zero.dcm", "9.3", 8, 8, 8, std::vector<std::uint16_t>(64, 0));
  BOOST_TEST((classify_cbis_roi_file(t.dir / "m16.dcm") == cbis_roi_file::mask));
  BOOST_TEST((classify_cbis_roi_file(t.dir / "two.dcm") == cbis_roi_file::crop));
  BOOST_TEST((classify_cbis_roi_file(t.dir / "zero.dcm") == cbis_roi_file::mask));
  expect_error<io_error>([&] { (void)classify_cbis_roi_file(root / "broken.dcm"); },
                         (root / "broken.dcm").string() + ": cannot read DICOM file");

  const auto h = read_cbis_dicom_header(roi1 / "1-2.dcm");
  BOOST_TEST_REQUIRE(h.has_value());
  BOOST_TEST(h->series_uid == "1.2.3.111");
  BOOST_TEST(h->rows == 10);
  BOOST_TEST(h->cols == 12);
  BOOST_TEST(h->bits_stored == 16);
  const auto idx = index_cbis_dicom_tree(root);
  BOOST_TEST(idx.series.size() == 6u);
  BOOST_TEST(idx.series.at("1.2.3.111").size() == 2u);
  BOOST_TEST_REQUIRE(idx.unreadable.size() == 1u);
  BOOST_TEST(idx.unreadable[0].item == (root / "broken.dcm").string());
}

BOOST_AUTO_TEST_CASE(join) {
  tree t;
  const fs::path root = t.dir / "CBIS-DDSM";
  const auto csv = read_cbis_ddsm({t.csv});
  BOOST_TEST_REQUIRE(csv.records.size() == 3u);
  const auto res = join_cbis_ddsm_dicom(csv, root);
  BOOST_TEST_REQUIRE(res.records.size() == 2u);  // image B's series is missing
  BOOST_TEST_REQUIRE(res.report.skipped.size() == 1u);
  BOOST_TEST(res.report.skipped[0].reason ==
             "no DICOM file with SeriesInstanceUID 1.2.3.200 (full image of " + t.csv.string() + ":6) under " +
                 root.string());

  const auto& a = res.records[0];
  BOOST_TEST(a.image_path ==
             (root / "Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-NA-1/1.000000-full mammogram images-1/1-1.dcm").string());
  BOOST_TEST(a.patient_id == "P_00001");
  BOOST_TEST_REQUIRE(a.rois.size() == 2u);
  const fs::path roi1 = root / "Mass-Training_P_00001_LEFT_CC_1/07-21-2016-DDSM-NA-2/1.000000-ROI mask images-2";
  BOOST_TEST(a.rois[0].mask_path == (roi1 / "1-1.dcm").string());
  BOOST_TEST(res.images[0].crop_paths[0] == (roi1 / "1-2.dcm").string());
  BOOST_TEST(a.rois[1].mask_path ==
             (root / "Mass-Training_P_00001_LEFT_CC_2/07-21-2016-DDSM-NA-4/1.000000-ROI mask images-4/1-1.dcm").string());
  BOOST_TEST(res.images[0].crop_paths[1] ==
             (root / "Mass-Training_P_00001_LEFT_CC_2/07-21-2016-DDSM-NA-3/1.000000-cropped images-3/1-1.dcm").string());
  BOOST_TEST(a.cancer() == 1);

  const auto& c = res.records[1];
  BOOST_TEST(c.patient_id == "P_00003");
  BOOST_TEST_REQUIRE(c.rois.size() == 1u);
  BOOST_TEST(c.rois[0].mask_path.empty());  // mask series absent: label kept, no location
  BOOST_TEST(!c.rois[0].located());
  BOOST_TEST((c.rois[0].label() == patch_class::benign_mass));
  BOOST_TEST(!res.images[1].crop_paths[0].empty());
  // Warnings: the broken file and the missing mask.
  BOOST_TEST_REQUIRE(res.report.warnings.size() == 2u);
  BOOST_TEST(res.report.warnings[0].find((root / "broken.dcm").string() + ": not readable as DICOM") == 0u);
  BOOST_TEST(res.report.warnings[1] == t.csv.string() + ":8: no ROI mask in series 1.2.3.312 or 1.2.3.311 under " +
                                           root.string() + "; the ROI keeps its label without a location");

  // Strict: the missing full-image series is an error.
  cbis_dicom_options strict;
  strict.strict = true;
  expect_error<io_error>([&] { (void)join_cbis_ddsm_dicom(csv, root, strict); },
                         "no DICOM file with SeriesInstanceUID 1.2.3.200 (full image of " + t.csv.string() + ":6)");
  expect_error<io_error>([&] { (void)join_cbis_ddsm_dicom(csv, t.dir / "nowhere"); },
                         (t.dir / "nowhere").string() + ": not a folder");
}

BOOST_AUTO_TEST_SUITE_END()
