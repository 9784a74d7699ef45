// open_dataset_dicom and dicom_image_reader (data/open_dataset_dicom.hpp) on a small CBIS-DDSM-shaped
// download written here with DCMTK: the description CSV at the top of a folder, the NBIA tree below it,
// a phantom mammogram as the full image and its lesion mask as the binary ROI mask. The paired patches of
// the DICOM records must equal, bit for bit, those of the same pixels written as 16-bit PGMs.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "mammocl/data/open_dataset_dicom.hpp"
#include "mammocl/data/phantom.hpp"
#include "dicom_test_writer.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace mammocl;
using namespace mammocl::data;
using mammocl::test::expect_error;
using mammocl::test::write_test_dicom;

namespace {

const std::string kHeader =
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
    "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path\r\n";

/// A mass row whose paths name the full, crop and mask series (the path's 3rd component).
std::string row(const std::string& pid, int id, const std::string& path, const std::string& full,
                const std::string& crop, const std::string& mask) {
  const std::string folder = "Mass-Training_" + pid + "_LEFT_CC";
  return pid + ",3,LEFT,CC," + std::to_string(id) + ",mass,OVAL,CIRCUMSCRIBED,4," + path + ",3," + folder + "/1.9/" +
         full + "/000000.dcm," + folder + "_" + std::to_string(id) + "/1.9/" + crop + "/000000.dcm,\"" + folder + "_" +
         std::to_string(id) + "/1.9/" + mask + "/000001.dcm\n\"\r\n";
}

/// A phantom with exactly one mass, small enough for a fast test.
phantom_case small_phantom() {
  phantom_options o;
  o.rows = 256;
  o.cols = 192;
  o.pixel_spacing_mm = 0.8;
  o.min_masses = o.max_masses = 1;
  o.min_calc_clusters = o.max_calc_clusters = 0;
  o.malignant_fraction = 1.0;
  return generate_phantom(o, 3);
}

/// The download: <dir>/mass_case_description_train_set.csv and <dir>/CBIS-DDSM/<NBIA tree> with the
/// phantom (16-bit, value v * 65535 rounded) and its lesion mask (8-bit 0/255); a second row names a
/// full-image series that is not in the tree.
struct download {
  test::temp_dir dir{"open-cbis-dicom"};
  phantom_case pc = small_phantom();
  std::vector<std::uint16_t> px, mk;
  fs::path full, mask, csv;
  download() {
    const int R = static_cast<int>(pc.img.rows), C = static_cast<int>(pc.img.cols);
    for (float v : pc.img.pixels) px.push_back(static_cast<std::uint16_t>(std::lround(v * 65535.0)));
    for (auto v : pc.lesion_masks.at(0).values) mk.push_back(v ? 255 : 0);
    const fs::path root = dir / "CBIS-DDSM";
    full = root / "Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-NA-1/1.000000-full mammogram images-1/1-1.dcm";
    mask = root / "Mass-Training_P_00001_LEFT_CC_1/07-21-2016-DDSM-NA-2/1.000000-ROI mask images-2/1-2.dcm";
    write_test_dicom(full, "1.2.3.100", R, C, 16, px);
    write_test_dicom(mask, "1.2.3.111", R, C, 8, mk);
    std::vector<std::uint16_t> crop(64);
    for (std::size_t i = 0; i < crop.size(); ++i) crop[i] = static_cast<std::uint16_t>(1000 + 37 * i);
    write_test_dicom(mask.parent_path() / "1-1.dcm", "1.2.3.111", 8, 8, 16, crop);
    csv = dir / "mass_case_description_train_set.csv";
    std::ofstream(csv, std::ios::binary) << kHeader << row("P_00001", 1, "MALIGNANT", "1.2.3.100", "1.2.3.111", "1.2.3.111")
                                         << row("P_00002", 1, "BENIGN", "1.2.3.200", "1.2.3.211", "1.2.3.211");
  }
};

paired_patch_options small_sampler() {
  paired_patch_options o;
  o.sampler.patch_size = 32;
  o.sampler.output_size = 16;
  o.sampler.per_roi = 3;
  o.sampler.per_image = 4;
  o.sampler.seed = 5;
  return o;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(dicom_open_dataset)

BOOST_AUTO_TEST_CASE(cbis_ddsm_records_point_at_the_tree) {
  download d;
  for (const fs::path& p : {d.dir.path, d.csv}) {
    const opened_dataset ds = open_dataset_dicom(p);
    BOOST_TEST((ds.kind == dataset_kind::cbis_ddsm));
    BOOST_TEST(ds.needs_dicom);
    BOOST_TEST(ds.root == d.dir.path);
    BOOST_REQUIRE_EQUAL(ds.records.size(), 1u);
    const case_record& r = ds.records[0];
    BOOST_TEST(r.image_path == d.full.string());
    BOOST_TEST(fs::is_regular_file(r.image_path));
    BOOST_TEST(r.patient_id == "P_00001");
    BOOST_REQUIRE_EQUAL(r.rois.size(), 1u);
    BOOST_TEST(r.rois[0].mask_path == d.mask.string());
    BOOST_TEST((r.rois[0].label() == patch_class::malignant_mass));
    BOOST_TEST(ds.report.rows_read == 2u);
    BOOST_REQUIRE_EQUAL(ds.report.skipped.size(), 1u);
    BOOST_TEST(ds.report.skipped[0].reason == "no DICOM file with SeriesInstanceUID 1.2.3.200 (full image of " +
                                                  d.csv.string() + ":4) under " + d.dir.path.string());
  }
}

BOOST_AUTO_TEST_CASE(csvs_without_a_tree_and_other_datasets) {
  test::temp_dir t("open-cbis-notree");
  std::ofstream(t / "calc_case_description_test_set.csv", std::ios::binary) << "x\r\n";
  std::ofstream(t / "mass_case_description_test_set.csv", std::ios::binary) << "x\r\n";
  std::ofstream(t / "notes.dcm.txt") << "not DICOM";
  // The CSVs are read before the tree is looked for, so a malformed CSV gets the CSV reader's error (mass
  // files first); a valid CSV with no tree gets the tree error.
  expect_error<io_error>([&] { (void)open_dataset_dicom(t.path); },
                         (t / "mass_case_description_test_set.csv").string() + ":1: no column 'patient_id' in the header");
  download d;
  fs::remove_all(d.dir / "CBIS-DDSM");
  expect_error<io_error>([&] { (void)open_dataset_dicom(d.dir.path); },
                         "open_dataset_dicom: " + d.dir.path.string() +
                             ": CBIS-DDSM description CSVs (1 file) but no DICOM file (.dcm) under this folder; "
                             "CBIS-DDSM images need the DICOM tree (the NBIA download) below the folder of the CSVs");
  expect_error<io_error>([&] { (void)open_dataset_dicom(t / "nowhere"); },
                         "open_dataset_dicom: " + (t / "nowhere").string() + " does not exist");
}

BOOST_AUTO_TEST_CASE(reader_reads_dicom_and_pgm) {
  download d;
  const image_reader read = dicom_image_reader();
  const image a = read(d.full);
  BOOST_REQUIRE_EQUAL(a.rows, d.pc.img.rows);
  BOOST_REQUIRE_EQUAL(a.cols, d.pc.img.cols);
  BOOST_TEST(a.meta.max_value == 65535.0);
  for (std::size_t i = 0; i < d.px.size(); ++i)
    if (a.pixels[i] != static_cast<float>(d.px[i])) BOOST_FAIL("DICOM pixel " << i << " differs");
  const image m = read(d.mask);
  BOOST_TEST(m.meta.max_value == 255.0);
  for (std::size_t i = 0; i < d.mk.size(); ++i)
    if (m.pixels[i] != static_cast<float>(d.mk[i])) BOOST_FAIL("mask pixel " << i << " differs");
  // PGM through the same reader.
  image g(3, 2);
  g.meta.max_value = 4095;
  for (std::size_t i = 0; i < g.pixels.size(); ++i) g.pixels[i] = static_cast<float>(600 * i + 7);
  write_image(d.dir / "small.pgm", g);
  const image back = read(d.dir / "small.pgm");
  BOOST_TEST(back.pixels == g.pixels, boost::test_tools::per_element());
  BOOST_TEST(back.meta.max_value == 4095.0);
  // The default reader refuses DICOM and says how to read it.
  expect_error<io_error>([&] { (void)default_image_reader()(d.full); }, "is a DICOM file ('DICM' at byte offset 128)");
  expect_error<io_error>([&] { (void)read(d.dir / "nowhere.dcm"); }, (d.dir / "nowhere.dcm").string());
}

BOOST_AUTO_TEST_CASE(paired_patches_of_a_dicom_record_equal_those_of_the_same_pixels_as_pgm) {
  download d;
  const opened_dataset ds = open_dataset_dicom(d.dir.path);
  const auto o = small_sampler();
  const paired_patches pd = make_paired_patches(ds.records, o, dicom_image_reader());
  BOOST_TEST(pd.report.skipped.empty());
  BOOST_TEST(pd.images == std::vector<std::string>{d.full.string()}, boost::test_tools::per_element());
  BOOST_TEST(pd.patients == std::vector<std::string>{"P_00001"}, boost::test_tools::per_element());
  const auto n = pd.class_counts();
  BOOST_TEST(n[static_cast<int>(patch_class::malignant_mass)] == 3);
  BOOST_TEST(n[0] >= 1);
  BOOST_TEST(n[0] <= 4);
  BOOST_TEST(n[1] + n[2] + n[3] == 0);
  BOOST_TEST(pd.side == 16);
  BOOST_TEST(pd.a.size() == pd.size() * 256u);
  BOOST_TEST(pd.lut.count(d.full.string()) == 1u);

  // The same pixels and mask as 16-bit / 8-bit PGM, read by the default reader.
  image full(d.pc.img.rows, d.pc.img.cols);
  full.meta.max_value = 65535;
  for (std::size_t i = 0; i < d.px.size(); ++i) full.pixels[i] = d.px[i];
  image msk(d.pc.img.rows, d.pc.img.cols);
  for (std::size_t i = 0; i < d.mk.size(); ++i) msk.pixels[i] = d.mk[i];
  write_image(d.dir / "full.pgm", full);
  write_image(d.dir / "mask.pgm", msk);
  case_record rec = ds.records[0];
  rec.image_path = (d.dir / "full.pgm").string();
  rec.rois[0].mask_path = (d.dir / "mask.pgm").string();
  const paired_patches pp = make_paired_patches({rec}, o);
  BOOST_REQUIRE_EQUAL(pp.size(), pd.size());
  BOOST_TEST(std::memcmp(pp.a.data(), pd.a.data(), pd.a.size() * sizeof(float)) == 0);
  BOOST_TEST(std::memcmp(pp.b.data(), pd.b.data(), pd.b.size() * sizeof(float)) == 0);
  BOOST_TEST(pp.label == pd.label, boost::test_tools::per_element());
  BOOST_TEST((pp.lut.begin()->second == pd.lut.begin()->second));

  // Without the DICOM reader the record is an error naming it.
  expect_error<io_error>([&] { (void)make_paired_patches(ds.records, o); },
                         "make_paired_patches: record 0 (" + d.full.string() + "): read_image: " + d.full.string() +
                             ": is a DICOM file");
}

BOOST_AUTO_TEST_SUITE_END()
