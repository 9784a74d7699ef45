#pragma once
// Test helper (DICOM tests only; needs DCMTK): writes one uncompressed MONOCHROME2 Secondary Capture DICOM
// with the given series, size and pixels, as the CBIS-DDSM tree tests need (full images, crops, masks).
#include <boost/test/unit_test.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mammocl::test {

/// Writes `p` (creating its folder): `rows` x `cols` pixels `px` (row-major), 8 or 16 bits allocated and
/// stored, unsigned, explicit VR little endian, SeriesInstanceUID `series`, StudyInstanceUID `study`.
inline void write_test_dicom(const std::filesystem::path& p, const std::string& series, int rows, int cols, int bits,
                             const std::vector<std::uint16_t>& px,
                             const std::string& study = "1.2.826.0.1.3680043.2.1143.1") {
  std::filesystem::create_directories(p.parent_path());
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  char uid[100];
  BOOST_REQUIRE(ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage).good());
  BOOST_REQUIRE(ds->putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT)).good());
  BOOST_REQUIRE(ds->putAndInsertString(DCM_StudyInstanceUID, study.c_str()).good());
  BOOST_REQUIRE(ds->putAndInsertString(DCM_SeriesInstanceUID, series.c_str()).good());
  BOOST_REQUIRE(ds->putAndInsertString(DCM_Modality, "MG").good());
  BOOST_REQUIRE(ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2").good());
  BOOST_REQUIRE(ds->putAndInsertUint16(DCM_SamplesPerPixel, 1).good());
  BOOST_REQUIRE(ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(rows)).good());
  BOOST_REQUIRE(ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(cols)).good());
  BOOST_REQUIRE(ds->putAndInsertUint16(DCM_BitsAllocated, static_cast<Uint16>(bits)).good());
  BOOST_REQUIRE(ds->putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(bits)).good());
  BOOST_REQUIRE(ds->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(bits - 1)).good());
  BOOST_REQUIRE(ds->putAndInsertUint16(DCM_PixelRepresentation, 0).good());
  if (bits == 8) {
    std::vector<Uint8> b(px.begin(), px.end());
    BOOST_REQUIRE(ds->putAndInsertUint8Array(DCM_PixelData, b.data(), static_cast<unsigned long>(b.size())).good());
  } else {
    BOOST_REQUIRE(ds->putAndInsertUint16Array(DCM_PixelData, px.data(), static_cast<unsigned long>(px.size())).good());
  }
  BOOST_REQUIRE(ff.saveFile(p.string().c_str(), EXS_LittleEndianExplicit).good());
}

}  // namespace mammocl::test
