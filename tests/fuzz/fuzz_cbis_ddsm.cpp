// Fuzz harness: mammocl::data::parse_cbis_ddsm_csv (data/cbis_ddsm.hpp), the CBIS-DDSM description CSV
// reader (column lookup, value checks, SeriesInstanceUID from the paths), then build_cbis_ddsm, which
// groups the rows by image, with both BENIGN_WITHOUT_CALLBACK conventions. The split alternates with
// the input's length so both are exercised. mammocl::error is the accepted failure.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_target.hpp"
#include "mammocl/data/cbis_ddsm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mammocl::data;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto rows = d::parse_cbis_ddsm_csv(text, "fuzz.csv", size % 2 ? d::cbis_split::train : d::cbis_split::test);
    d::cbis_ddsm_options opt;
    (void)d::build_cbis_ddsm(rows, opt);
    opt.benign_without_callback = d::cbis_bwc::exclude;
    opt.image_root = "/data/CBIS-DDSM";
    (void)d::build_cbis_ddsm(std::move(rows), opt);
  } catch (const mammocl::error&) {
  }
  return 0;
}

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "cbis_ddsm";
  t.text = true;
  // The four real description CSVs, header plus the first rows of each (CRLF, quoted multi-line paths,
  // both spellings of the density column).
  t.data_seeds = {{"cbis-ddsm", 3072, ".csv", 4}};
  t.dictionary = {"MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK", "LEFT", "RIGHT", "CC", "MLO", "mass",
                  "calcification", "1.3.6.1.4.1.9590.100.1.2.", "/000000.dcm", "\"", "\r\n", ","};
  t.max_len = 8192;
  return t;
}
