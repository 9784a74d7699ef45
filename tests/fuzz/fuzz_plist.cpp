// Fuzz harness: mammocl::data::parse_plist (data/plist.hpp), the XML property-list parser of INbreast's
// AllXML ROI files, followed by inbreast_rois and inbreast_roi_kind_of as the INbreast reader applies
// them to every parsed file. mammocl::error is the accepted failure.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_target.hpp"
#include "mammocl/data/inbreast.hpp"
#include "mammocl/data/plist.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto doc = mammocl::data::parse_plist(text, "fuzz.xml");
    for (const auto& roi : mammocl::data::inbreast_rois(doc, "fuzz.xml"))
      (void)mammocl::data::inbreast_roi_kind_of(roi.name);
  } catch (const mammocl::error&) {
  }
  return 0;
}

namespace {
std::string roi(const std::string& name, const std::string& points, int declared) {
  return "\t\t\t\t<dict>\n\t\t\t\t\t<key>Area</key>\n\t\t\t\t\t<real>12.5</real>\n\t\t\t\t\t<key>Name</key>\n\t\t\t\t\t<string>" +
         name + "</string>\n\t\t\t\t\t<key>NumberOfPoints</key>\n\t\t\t\t\t<integer>" + std::to_string(declared) +
         "</integer>\n\t\t\t\t\t<key>Point_px</key>\n\t\t\t\t\t<array>\n" + points + "\t\t\t\t\t</array>\n\t\t\t\t</dict>\n";
}
}  // namespace

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "plist";
  t.text = true;
  // No INbreast file is in the shared data folder: the seeds follow the OsiriX export layout that
  // DATA-FORMATS.md describes (Images > ROIs > Name / NumberOfPoints / Point_px).
  t.generate = [](const std::filesystem::path&) {
    const std::string head =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n<dict>\n\t<key>Images</key>\n\t<array>\n\t\t<dict>\n"
        "\t\t\t<key>ImageIndex</key>\n\t\t\t<integer>0</integer>\n\t\t\t<key>NumberOfROIs</key>\n\t\t\t<integer>2</integer>\n"
        "\t\t\t<key>ROIs</key>\n\t\t\t<array>\n";
    const std::string tail = "\t\t\t</array>\n\t\t</dict>\n\t</array>\n</dict>\n</plist>\n";
    const std::string doc = head +
                            roi("Mass", "\t\t\t\t\t\t<string>(100, 200)</string>\n\t\t\t\t\t\t<string>(140.5, 260.25)</string>\n", 2) +
                            roi("Calcification", "\t\t\t\t\t\t<string>(7, 8)</string>\n", 1) + tail;
    return std::vector<generated_seed>{
        {"INbreast ROI file", to_bytes(doc)},
        {"every value kind", to_bytes("<?xml version=\"1.0\"?>\n<!-- c -->\n<plist version=\"1.0\">\n<dict>\n"
                                      "<key>a &amp; b</key><string>&lt;x&gt; &#65;&#x42;</string>\n"
                                      "<key>i</key><integer>-42</integer><key>r</key><real>1.5e-3</real>\n"
                                      "<key>t</key><true/><key>f</key><false/><key>d</key><date>2010-01-01T00:00:00Z</date>\n"
                                      "<key>b</key><data>AAEC</data><key>e</key><array/><key>s</key><string/>\n"
                                      "</dict>\n</plist>\n")},
    };
  };
  t.dictionary = {"<dict>", "</dict>", "<array>", "</array>", "<key>", "</key>", "<string>", "</string>",
                  "<integer>", "</integer>", "<real>", "</real>", "<true/>", "<false/>", "<data>", "<date>",
                  "&amp;", "&#x", "&#", "<!--", "-->", "<![CDATA[", "<?xml", "?>", "<plist>", "</plist>",
                  "Point_px", "NumberOfPoints", "ROIs", "NumberOfROIs", "Images", "Name"};
  return t;
}
