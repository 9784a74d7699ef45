// Fuzz harness: mammocl::data::parse_lut_domain_params (data/voi_lut.hpp), the text form of a LUT
// domain's sigmoid parameters stored beside a dataset, and parse_voi_function (the DICOM VOI LUT Function
// keyword). What parses must print back (to_string) to text that parses to the same numbers.
// mammocl::error is the accepted failure.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_target.hpp"
#include "mammocl/data/voi_lut.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mammocl::data;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto p = d::parse_lut_domain_params(text);
    const auto q = d::parse_lut_domain_params(d::to_string(p));
    if (q.center != p.center || q.width != p.width) __builtin_trap();  // the documented round trip
  } catch (const mammocl::error&) {
  }
  try {
    (void)d::parse_voi_function(text);
  } catch (const mammocl::error&) {
  }
  try {  // the per-image side file: what parses must format and parse back to the same map
    const auto m = d::parse_lut_params_file(text, "fuzz");
    const auto again = d::parse_lut_params_file(d::format_lut_params_file(m), "fuzz");
    if (again.size() != m.size()) __builtin_trap();
  } catch (const mammocl::error&) {
  }
  return 0;
}

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "voi_lut";
  t.text = true;
  t.generate = [](const std::filesystem::path&) {
    return std::vector<generated_seed>{{"params", to_bytes("center=0.47999999999999998 width=0.10000000000000001\n")},
                                       {"spaced", to_bytes("  center=2047 \twidth=4095\r\n")},
                                       {"function", to_bytes("SIGMOID")},
                                       {"function", to_bytes("LINEAR_EXACT")}};
  };
  t.dictionary = {"center=", "width=", "LINEAR", "SIGMOID", "LINEAR_EXACT", "e-308", "e+308", "inf", "nan"};
  t.max_len = 256;
  return t;
}
