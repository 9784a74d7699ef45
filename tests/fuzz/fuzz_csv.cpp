// Fuzz harness: mammocl::data::parse_csv (data/csv.hpp), the RFC 4180 reader under the CBIS-DDSM and
// INbreast readers. Each input is parsed with the CBIS-DDSM settings (',' with a header) and with the
// INbreast ones (';'), then without a header and with blank lines kept; every accepted table is checked
// for the invariants the header promises (each row has header.size() fields, one line per row) and its
// columns are looked up and trimmed as the dataset readers do. mammocl::error is the accepted failure.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_target.hpp"
#include "mammocl/data/csv.hpp"

namespace {
void use(const mammocl::data::csv_table& t) {
  if (t.rows.size() != t.row_lines.size()) __builtin_trap();
  for (const auto& r : t.rows) {
    if (!t.header.empty() && r.size() != t.header.size()) __builtin_trap();
    for (const auto& f : r) (void)mammocl::data::trim(f);
  }
  (void)t.find_column({"pathology", "patient_id"});
  try {
    (void)t.column({"image file path"});
  } catch (const mammocl::error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  mammocl::data::csv_options cbis, inbreast, raw;
  inbreast.delimiter = ';';
  raw.has_header = false;
  raw.skip_blank_lines = false;
  for (const auto* opt : {&cbis, &inbreast, &raw}) {
    try {
      use(mammocl::data::parse_csv(text, "fuzz.csv", *opt));
    } catch (const mammocl::error&) {
    }
  }
  return 0;
}

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "csv";
  t.text = true;
  // The four CBIS-DDSM description CSVs: header plus the first rows (CRLF, quoted paths with a newline).
  t.data_seeds = {{"cbis-ddsm", 4096, ".csv", 4}};
  t.generate = [](const std::filesystem::path&) {
    return std::vector<generated_seed>{
        {"inbreast-like", to_bytes("Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\r\n"
                                   "removed;removed;R;CC;201001;22678622;4;1\r\n"
                                   "removed;removed;L;MLO; ;22614097;2;4c\r\n")},
        {"quotes", to_bytes("a,b,c\n\"x,1\",\"he said \"\"hi\"\"\",\"multi\nline\"\n\n1,2,3\r\n\xEF\xBB\xBF")},
        {"bom", to_bytes("\xEF\xBB\xBFpatient_id,pathology\nP_00001,MALIGNANT\nP_00004,BENIGN_WITHOUT_CALLBACK")},
    };
  };
  t.dictionary = {"\"", "\"\"", "\r\n", "\r", ",", ";", "\xEF\xBB\xBF", "pathology", "image file path"};
  t.max_len = 8192;
  return t;
}
