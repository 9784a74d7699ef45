// The evaluation report: exact Markdown of the poster table, every special value (NaN, infinities,
// p formatting, missing cells), well-formed XML for the HTML page and every SVG (checked by a strict
// checker that is itself tested on broken inputs), an offline page, determinism, atomic writes, and
// (where Debian's chromium is installed) a headless rendering whose screenshot is decoded and checked
// not to be blank.
//
// MAMMOCL_EVAL_REPORT_KEEP=<dir> keeps the demo page (report.html) and its screenshot (report.png)
// in <dir> for a look by eye.
#include <dlfcn.h>

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "mammocl/eval/report.hpp"
#include "temp_dir.hpp"

namespace ev = mammocl::eval;

// GCC 12's -Wextra warns about designated initializers that leave members to their defaults (clang
// does not); leaving the optional parts of an estimate unset is the point of the aggregate.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

namespace {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_v = std::numeric_limits<double>::infinity();

// ------------------------------------------------------------------------------------------------
// A small, strict XML well-formedness checker: one root element (after an optional XML declaration,
// comments and one DOCTYPE without internal subset), start and end tags balanced and properly nested,
// names valid, attributes quoted, unique and free of '<', entities only the five predefined ones or
// numeric references, no text outside the root, comments without "--".
// ------------------------------------------------------------------------------------------------
struct xml_verdict {
  bool ok = true;
  std::string error;
};

class xml_checker {
 public:
  explicit xml_checker(std::string_view s) : s_(s) {}

  xml_verdict run() {
    try {
      parse();
    } catch (const std::string& e) {
      return {false, e + " at offset " + std::to_string(pos_)};
    }
    return {};
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { throw why; }
  bool starts(std::string_view p) const { return s_.substr(pos_, p.size()) == p; }
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  static bool name_start(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' ||
           static_cast<unsigned char>(c) >= 0x80;
  }
  static bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

  std::string name() {
    if (pos_ >= s_.size() || !name_start(s_[pos_])) fail("expected a name");
    const std::size_t b = pos_;
    while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }
  void skip_space() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  void skip_past(std::string_view end, const char* what) {
    const auto e = s_.find(end, pos_);
    if (e == std::string_view::npos) fail(std::string("unterminated ") + what);
    pos_ = e + end.size();
  }
  void check_entities(std::string_view text) const {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '&') continue;
      const auto semi = text.find(';', i);
      if (semi == std::string_view::npos || semi - i > 12) fail("'&' not starting an entity");
      const auto ent = text.substr(i + 1, semi - i - 1);
      bool ok = ent == "amp" || ent == "lt" || ent == "gt" || ent == "quot" || ent == "apos";
      if (!ok && ent.size() >= 2 && ent[0] == '#') {
        const bool hex = ent[1] == 'x';
        const auto digits = ent.substr(hex ? 2 : 1);
        ok = !digits.empty();
        for (char c : digits)
          ok = ok && ((c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))));
      }
      if (!ok) fail("unknown entity '&" + std::string(ent) + ";'");
    }
  }
  void comment() {
    pos_ += 4;
    const auto e = s_.find("--", pos_);
    if (e == std::string_view::npos) fail("unterminated comment");
    if (s_.substr(e, 3) != "-->") fail("'--' inside a comment");
    pos_ = e + 3;
  }

  void parse() {
    if (starts("<?xml")) skip_past("?>", "XML declaration");
    bool doctype = false, root_seen = false;
    std::vector<std::string> stack;
    while (pos_ < s_.size()) {
      if (s_[pos_] != '<') {
        const auto e = std::min(s_.find('<', pos_), s_.size());
        const auto text = s_.substr(pos_, e - pos_);
        if (stack.empty()) {
          for (char c : text)
            if (!is_space(c)) fail("text outside the root element");
        }
        if (text.find("]]>") != std::string_view::npos) fail("']]>' in text");
        check_entities(text);
        pos_ = e;
        continue;
      }
      if (starts("<!--")) {
        comment();
      } else if (starts("<![CDATA[")) {
        if (stack.empty()) fail("CDATA outside the root element");
        skip_past("]]>", "CDATA section");
      } else if (starts("<!DOCTYPE")) {
        if (doctype || root_seen) fail("DOCTYPE not in the prolog or repeated");
        doctype = true;
        const auto e = s_.find('>', pos_);
        if (e == std::string_view::npos) fail("unterminated DOCTYPE");
        if (s_.substr(pos_, e - pos_).find('[') != std::string_view::npos) fail("DOCTYPE internal subset");
        pos_ = e + 1;
      } else if (starts("<?")) {
        pos_ += 2;
        const auto target = name();
        if (target == "xml" || target == "XML") fail("XML declaration not at the start");
        skip_past("?>", "processing instruction");
      } else if (starts("</")) {
        pos_ += 2;
        const auto n = name();
        skip_space();
        if (pos_ >= s_.size() || s_[pos_] != '>') fail("malformed end tag </" + n + ">");
        ++pos_;
        if (stack.empty()) fail("end tag </" + n + "> without a start tag");
        if (stack.back() != n) fail("end tag </" + n + "> closes <" + stack.back() + ">");
        stack.pop_back();
      } else {
        ++pos_;
        if (stack.empty() && root_seen) fail("a second root element");
        root_seen = true;
        const auto n = name();
        std::set<std::string> attrs;
        for (;;) {
          const std::size_t before = pos_;
          skip_space();
          if (pos_ >= s_.size()) fail("unterminated start tag <" + n + ">");
          if (s_[pos_] == '>') {
            ++pos_;
            stack.push_back(n);
            break;
          }
          if (starts("/>")) {
            pos_ += 2;
            break;
          }
          if (pos_ == before) fail("no space before an attribute of <" + n + ">");
          const auto a = name();
          if (!attrs.insert(a).second) fail("duplicate attribute '" + a + "' in <" + n + ">");
          skip_space();
          if (pos_ >= s_.size() || s_[pos_] != '=') fail("attribute '" + a + "' without '='");
          ++pos_;
          skip_space();
          if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) fail("unquoted attribute '" + a + "'");
          const char q = s_[pos_++];
          const auto e = s_.find(q, pos_);
          if (e == std::string_view::npos) fail("unterminated attribute value '" + a + "'");
          const auto v = s_.substr(pos_, e - pos_);
          if (v.find('<') != std::string_view::npos) fail("'<' in attribute '" + a + "'");
          check_entities(v);
          pos_ = e + 1;
        }
      }
    }
    if (!root_seen) fail("no root element");
    if (!stack.empty()) fail("unclosed element <" + stack.back() + ">");
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

xml_verdict check_xml(std::string_view s) { return xml_checker(s).run(); }

/// The <svg>…</svg> fragments of a page (not nested in our output).
std::vector<std::string> svg_fragments(const std::string& page) {
  std::vector<std::string> out;
  for (std::size_t b = page.find("<svg"); b != std::string::npos; b = page.find("<svg", b + 1)) {
    const auto e = page.find("</svg>", b);
    BOOST_REQUIRE(e != std::string::npos);
    out.push_back(page.substr(b, e + 6 - b));
  }
  return out;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// ------------------------------------------------------------------------------------------------
// Demo content: the poster's shape with made-up numbers, curves and clusters.
// ------------------------------------------------------------------------------------------------

/// A deterministic generator (64-bit LCG with Box-Muller) so the demo data are the same everywhere.
struct lcg {
  std::uint64_t state;
  double uniform() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  }
  double normal() {
    const double u = uniform(), v = uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

const std::vector<std::string> strategies{"CE", "SupContr", "SupContr+CE", "DANN", "MMD"};
const std::vector<std::string> datasets{"augmented", "mixed 1", "mixed down-sampled 0.6"};

ev::poster_table demo_poster() {
  auto t = ev::poster_table::make("One-vs-one AUC (test set, both domains)", datasets, strategies);
  lcg g{7};
  for (std::size_t r = 0; r < datasets.size(); ++r)
    for (std::size_t c = 0; c < strategies.size(); ++c) {
      if (r == 2 && c == 3) continue;  // a run that does not exist: shown "–"
      const double p = c == 0 ? 1.0 : std::pow(10.0, -4 * g.uniform());
      t.set(datasets[r], strategies[c], {.value = 0.78 + 0.05 * g.uniform(), .se = 0.01 + 0.01 * g.uniform(), .p = p});
    }
  return t;
}

ev::domain_table demo_domains() {
  ev::domain_table t;
  t.domain_a = "Hologic";
  t.domain_b = "Siemens";
  for (std::size_t c = 0; c < strategies.size(); ++c) {
    const double a = 0.83 - 0.005 * c, b = 0.74 + 0.015 * c;
    t.rows.push_back({strategies[c], {.value = a, .se = 0.015, .ci = std::pair{a - 0.03, a + 0.03}},
                      {.value = b, .se = 0.017, .ci = std::pair{b - 0.033, b + 0.033}},
                      {.value = a - b, .se = 0.02, .ci = std::pair{a - b - 0.04, a - b + 0.04}}});
  }
  return t;
}

ev::invariance_table demo_invariance() {
  ev::invariance_table t;
  t.class_names = {"normal", "benign", "malignant"};
  for (std::size_t c = 0; c < strategies.size(); ++c) {
    const double k = static_cast<double>(c) / 4.0;
    t.rows.push_back({.label = strategies[c],
                      .mean_abs_prob_diff = 0.21 - 0.12 * k,
                      .argmax_agreement = 0.71 + 0.2 * k,
                      .cosine_similarity = 0.62 + 0.3 * k,
                      .classwise_mmd = {{0.031 - 0.025 * k, c < 3 ? 0.000999 : 0.21},
                                        {0.024 - 0.02 * k, c < 3 ? 0.002 : 0.43},
                                        {0.019 - 0.018 * k, c < 2 ? 0.004 : 0.6}},
                      .overall_mmd = ev::mmd_result{0.027 - 0.022 * k, c < 3 ? 0.0 : 0.09},
                      .pad = 1.7 - 1.2 * k});
  }
  return t;
}

ev::class_counts_table demo_counts() {
  ev::class_counts_table t;
  t.class_names = {"normal", "benign", "malignant"};
  t.rows = {{"train Hologic", {812, 403, 377}}, {"train Siemens", {790, 411, 380}}, {"test (paired)", {201, 99, 95}}};
  return t;
}

ev::roc_plot demo_roc() {
  ev::roc_plot p;
  p.title = "ROC, malignant vs rest (mixed 1)";
  const double aucs[] = {0.79, 0.81, 0.83, 0.80, 0.82};
  for (std::size_t c = 0; c < strategies.size(); ++c) {
    ev::roc_curve_data cv{.label = strategies[c], .fpr = {}, .tpr = {}, .auc = aucs[c]};
    const double k = (1 - aucs[c]) / aucs[c];  // tpr = fpr^k has AUC 1/(1+k)
    for (int i = 0; i <= 40; ++i) {
      const double x = i / 40.0;
      cv.fpr.push_back(x);
      cv.tpr.push_back(std::pow(x, k));
    }
    p.curves.push_back(std::move(cv));
  }
  return p;
}

ev::tsne_plot demo_tsne(std::size_t per_group = 60) {
  ev::tsne_plot p;
  p.title = "t-SNE of the 1024-d features (DANN)";
  p.class_names = {"normal", "benign", "malignant"};
  p.domain_names = {"Hologic", "Siemens"};
  lcg g{11};
  const double cx[] = {-20, 15, 5}, cy[] = {-5, -12, 18};
  for (int d = 0; d < 2; ++d)
    for (int c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < per_group; ++i)
        p.points.push_back({cx[c] + 3 * d + 5 * g.normal(), cy[c] - 2 * d + 5 * g.normal(), c, d});
  return p;
}

ev::training_plot demo_training() {
  ev::training_plot p;
  p.title = "Training loss";
  for (std::size_t c = 0; c < 3; ++c) {
    const int colour = static_cast<int>(c);
    ev::line_series train{.label = strategies[c] + " train", .x = {}, .y = {}, .dashed = false, .colour = colour};
    ev::line_series val{.label = strategies[c] + " val", .x = {}, .y = {}, .dashed = true, .colour = colour};
    for (int e = 1; e <= 30; ++e) {
      train.x.push_back(e);
      val.x.push_back(e);
      train.y.push_back(0.35 + (1.1 + 0.1 * c) * std::exp(-e / (5.0 + 2 * c)));
      val.y.push_back(0.45 + (1.0 + 0.1 * c) * std::exp(-e / (6.0 + 2 * c)) + 0.004 * e);
    }
    if (c == 2) train.y[12] = inf_v;  // a diverged step: the line breaks there
    p.runs.push_back(std::move(train));
    p.runs.push_back(std::move(val));
  }
  return p;
}

ev::html_page demo_page() {
  ev::html_page page("MammoCL evaluation <demo> & report");
  page.paragraph("Made-up numbers in the poster's layout; cells are AUC ± bootstrap s.e. (p vs CE).")
      .heading("Poster table")
      .table(demo_poster())
      .heading("Per-domain AUC")
      .table(demo_domains())
      .heading("Domain invariance")
      .table(demo_invariance())
      .heading("Data")
      .table(demo_counts())
      .heading("Plots")
      .plot(demo_roc())
      .plot(demo_tsne())
      .plot(demo_training());
  return page;
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const mammocl::error& e) {
    return e.message();
  }
  return "<no exception>";
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// The XML checker itself
// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(xml_checker_accepts_and_rejects) {
  const char* good[] = {
      "<a/>",
      "<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1\" y='2'><b>t &amp; &lt; &#233; &#xE9;</b><c/></a>\n",
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/></head><body><p>±–</p></body></html>",
      "<svg><![CDATA[ x < y ]]><g ><path d=\"M0 0\" /></g></svg>"};
  for (const char* s : good) BOOST_TEST(check_xml(s).ok, s << ": " << check_xml(s).error);
  const char* bad[] = {"",
                       "text",
                       "<a>",
                       "<a></b>",
                       "<a><b></a></b>",
                       "<a x=1/>",
                       "<a x=\"1/>",
                       "<a x=\"1\" x=\"2\"/>",
                       "<a x=\"1\"y=\"2\"/>",
                       "<a x=\"<\"/>",
                       "<a>&nbsp;</a>",
                       "<a>&amp</a>",
                       "<a>AT&T</a>",
                       "<a>&#xZZ;</a>",
                       "<a/><b/>",
                       "<a/>tail",
                       "lead<a/>",
                       "</a>",
                       "<a><!-- x -- y --></a>",
                       "<a><!-- open </a>",
                       "<1a/>",
                       "<a><?xml version=\"1.0\"?></a>",
                       "<a/><!DOCTYPE a>",
                       "<a>x ]]> y</a>"};
  for (const char* s : bad) BOOST_TEST(!check_xml(s).ok, "accepted broken input: " << s);
}

// ------------------------------------------------------------------------------------------------
// Markdown
// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(poster_table_markdown_is_exact) {
  auto t = ev::poster_table::make("AUC (OvO)", {"augmented", "mixed down-sampled 0.6"}, {"CE", "DANN", "MMD"});
  t.set("augmented", "CE", {.value = 0.8124, .se = 0.0141, .p = 0.5});  // reference: p not shown
  t.set("augmented", "DANN", {.value = 0.8201, .se = 0.0133, .p = 0.0312});
  t.set("augmented", "MMD", {.value = 0.79, .se = 0.015, .p = 0.0004});
  t.set("mixed down-sampled 0.6", "CE", {.value = 0.7, .se = 0.02});
  t.set("mixed down-sampled 0.6", "MMD", {.value = 0.71, .se = 0.021, .p = 1.0});
  const std::string md = ev::to_markdown(t);
  const std::string expected_md =
      "**AUC (OvO)**\n"
      "\n"
      "| Dataset | CE | DANN | MMD |\n"
      "|---|---|---|---|\n"
      "| augmented | 0.812 ± 0.014 | 0.820 ± 0.013 (p = 0.031) | 0.790 ± 0.015 (p < 0.001) |\n"
      "| mixed down-sampled 0.6 | 0.700 ± 0.020 | – | 0.710 ± 0.021 (p = 1.000) |\n"
      "\n"
      "_Estimate ± standard error; p: paired bootstrap vs CE._\n";
  BOOST_TEST(md == expected_md);
}

BOOST_AUTO_TEST_CASE(markdown_escapes_labels) {
  BOOST_TEST(ev::markdown_escape("a|b*c_d [x](y) <b> `k` ~s~ #1 \\") ==
             "a\\|b\\*c\\_d \\[x\\](y) \\<b\\> \\`k\\` \\~s\\~ \\#1 \\\\");
  BOOST_TEST(ev::markdown_escape("two\nlines") == "two lines");
  BOOST_TEST(ev::markdown_escape_value("0.5 [0.4, 0.6] (p < 0.001) a|b\\") == "0.5 [0.4, 0.6] (p < 0.001) a\\|b\\\\");
  auto t = ev::poster_table::make("", {"x|y"}, {"CE", "A_B"});
  t.set("x|y", "A_B", {.value = 0.5});
  BOOST_TEST(ev::to_markdown(t) == "| Dataset | CE | A\\_B |\n|---|---|---|\n| x\\|y | – | 0.500 |\n");
}

BOOST_AUTO_TEST_CASE(other_tables_markdown) {
  ev::domain_table d;
  d.rows.push_back({"DANN", {.value = 0.8124, .se = 0.0141, .ci = std::pair{0.7841, 0.8402}},
                    {.value = 0.79, .se = 0.016}, {.value = 0.0224, .ci = std::pair{-0.01, 0.05}, .p = 0.2}});
  BOOST_TEST(ev::to_markdown(d) ==
             "**AUC per domain**\n\n| Strategy | AUC on A | AUC on B | gap \\|A − B\\| |\n|---|---|---|---|\n"
             "| DANN | 0.812 ± 0.014 [0.784, 0.840] | 0.790 ± 0.016 | 0.022 [-0.010, 0.050] (p = 0.200) |\n");

  ev::invariance_table inv;
  inv.class_names = {"benign", "malignant"};
  inv.rows.push_back({.label = "MMD",
                      .mean_abs_prob_diff = 0.0812,
                      .argmax_agreement = 0.93,
                      .cosine_similarity = 0.951,
                      .classwise_mmd = {{0.00123, 0.21}, {1.5e-5, 0.0001}},
                      .overall_mmd = std::nullopt,
                      .pad = 0.24});
  const auto it = ev::to_text_table(inv);
  BOOST_TEST(it.header.size() == 7u);  // no overall column: no row has it
  BOOST_TEST(it.rows[0][4] == "0.00123 (p = 0.210)");
  BOOST_TEST(it.rows[0][5] == "1.50e-05 (p < 0.001)");
  BOOST_TEST(it.rows[0][6] == "0.240");
  inv.rows.push_back(inv.rows[0]);
  inv.rows[1].label = "DANN";
  inv.rows[1].overall_mmd = ev::mmd_result{0.002, 0.04};
  const auto it2 = ev::to_text_table(inv);
  BOOST_TEST(it2.header[6] == "MMD² overall");
  BOOST_TEST(it2.rows[0][6] == "–");
  BOOST_TEST(it2.rows[1][6] == "0.00200 (p = 0.040)");

  ev::class_counts_table c;
  c.class_names = {"benign", "malignant"};
  c.rows = {{"train", {10, 5}}, {"test", {3, 0}}};
  BOOST_TEST(ev::to_markdown(c) == "**Images per class**\n\n| Split | benign | malignant | total |\n|---|---|---|---|\n"
                                   "| train | 10 | 5 | 15 |\n| test | 3 | 0 | 3 |\n");
}

// ------------------------------------------------------------------------------------------------
// Special values
// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(p_value_and_number_formatting) {
  BOOST_TEST(ev::format_p(0.0) == "p < 0.001");
  BOOST_TEST(ev::format_p(0.000999) == "p < 0.001");
  BOOST_TEST(ev::format_p(0.001) == "p = 0.001");
  BOOST_TEST(ev::format_p(0.05) == "p = 0.050");
  BOOST_TEST(ev::format_p(1.0) == "p = 1.000");
  BOOST_CHECK_THROW((void)ev::format_p(nan_v), mammocl::numeric_error);
  BOOST_CHECK_THROW((void)ev::format_p(inf_v), mammocl::numeric_error);
  BOOST_CHECK_THROW((void)ev::format_p(-0.01), mammocl::numeric_error);
  BOOST_CHECK_THROW((void)ev::format_p(1.01), mammocl::numeric_error);
  BOOST_TEST(ev::format_fixed(-0.0001, 3) == "0.000");
  BOOST_TEST(ev::format_fixed(-0.0, 1) == "0.0");
  BOOST_TEST(ev::format_fixed(-0.25, 2) == "-0.25");
  BOOST_TEST(ev::format_fixed(1e20, 0) == "100000000000000000000");
  BOOST_TEST(ev::format_significant(0.0, 3) == "0");
  BOOST_TEST(ev::format_significant(0.012345, 3) == "0.0123");
  BOOST_TEST(ev::format_significant(0.01, 3) == "0.0100");
  BOOST_TEST(ev::format_significant(-0.00123, 3) == "-0.00123");
  BOOST_TEST(ev::format_significant(0.0009996, 3) == "0.00100");
  BOOST_TEST(ev::format_significant(0.00009996, 3) == "0.000100");
  BOOST_TEST(ev::format_significant(0.000009996, 3) == "1.00e-05");
  BOOST_TEST(ev::format_significant(1.5e-5, 3) == "1.50e-05");
  BOOST_TEST(ev::format_significant(12.0, 3) == "12.0");
  BOOST_TEST(ev::format_significant(2.5e20, 2) == "2.5e+20");
  BOOST_CHECK_THROW((void)ev::format_fixed(inf_v, 3), mammocl::numeric_error);
  BOOST_CHECK_THROW((void)ev::format_significant(-inf_v, 3), mammocl::numeric_error);
  BOOST_TEST(ev::format_estimate({.value = 0.5}) == "0.500");
  BOOST_TEST(ev::format_estimate({.value = 0.5, .p = 0.2}, 2, false) == "0.50");
}

BOOST_AUTO_TEST_CASE(non_finite_cells_are_refused_by_name) {
  auto base = ev::poster_table::make("AUC", {"augmented", "mixed 1"}, {"CE", "DANN"});
  base.set("augmented", "CE", {.value = 0.8, .se = 0.01});
  const auto with = [&](ev::estimate e) {
    auto t = base;
    t.set("mixed 1", "DANN", e);
    return message_of([&] { (void)ev::to_markdown(t); });
  };
  const std::string cell = "poster table 'AUC', row 'mixed 1', column 'DANN'";
  BOOST_TEST(with({.value = nan_v}) == cell + ": the estimate is NaN");
  BOOST_TEST(with({.value = inf_v}) == cell + ": the estimate is infinite (inf)");
  BOOST_TEST(with({.value = -inf_v}) == cell + ": the estimate is infinite (-inf)");
  BOOST_TEST(with({.value = 0.8, .se = nan_v}).find(cell + ": the standard error") == 0u);
  BOOST_TEST(with({.value = 0.8, .se = inf_v}).find(cell + ": the standard error") == 0u);
  BOOST_TEST(with({.value = 0.8, .se = -0.1}).find(cell + ": the standard error") == 0u);
  BOOST_TEST(with({.value = 0.8, .ci = std::pair{0.9, 0.7}}).find(cell + ": the interval") == 0u);
  BOOST_TEST(with({.value = 0.8, .ci = std::pair{-inf_v, 0.7}}).find(cell + ": the interval") == 0u);
  BOOST_TEST(with({.value = 0.8, .p = nan_v}).find(cell + ": the p-value") == 0u);
  BOOST_TEST(with({.value = 0.8, .p = 2.0}).find(cell + ": the p-value") == 0u);
  // The reference column's p is not shown:
  auto t = base;
  t.set("augmented", "CE", {.value = 0.8, .p = 0.3});
  BOOST_TEST(ev::to_markdown(t).find("p = 0.300") == std::string::npos);

  ev::domain_table d;
  d.rows.push_back({"DANN", {.value = 0.8}, {.value = nan_v}, {.value = 0.1}});
  BOOST_TEST(message_of([&] { (void)ev::to_markdown(d); }) ==
             "domain table 'AUC per domain', row 'DANN', column 'AUC on B': the estimate is NaN");
  ev::invariance_table inv;
  inv.class_names = {"benign"};
  inv.rows.push_back({.label = "CE", .mean_abs_prob_diff = 0.1, .argmax_agreement = nan_v, .cosine_similarity = 0.9,
                      .classwise_mmd = {{0.01, 0.5}}, .overall_mmd = std::nullopt, .pad = 1.0});
  BOOST_TEST(message_of([&] { (void)ev::to_markdown(inv); }).find("row 'CE', column 'argmax agreement'") !=
             std::string::npos);
  inv.rows[0].argmax_agreement = 0.9;
  inv.rows[0].classwise_mmd[0].mmd2 = inf_v;
  BOOST_TEST(message_of([&] { (void)ev::to_markdown(inv); }).find("column 'MMD² benign': MMD² inf") !=
             std::string::npos);
  inv.rows[0].classwise_mmd[0] = {0.01, -0.5};
  BOOST_CHECK_THROW((void)ev::to_markdown(inv), mammocl::numeric_error);
  inv.rows[0].classwise_mmd.clear();
  BOOST_CHECK_THROW((void)ev::to_markdown(inv), mammocl::shape_error);
  ev::class_counts_table c;
  c.class_names = {"a"};
  c.rows = {{"x", {-1}}};
  BOOST_CHECK_THROW((void)ev::to_markdown(c), mammocl::numeric_error);
}

BOOST_AUTO_TEST_CASE(table_structure_errors) {
  auto t = ev::poster_table::make("AUC", {"augmented"}, {"CE", "DANN"});
  BOOST_CHECK_THROW(t.set("nope", "CE", {.value = 0.5}), mammocl::config_error);
  BOOST_CHECK_THROW(t.set("augmented", "SVM", {.value = 0.5}), mammocl::config_error);
  auto bad_ref = t;
  bad_ref.reference_column = "SVM";
  BOOST_CHECK_THROW((void)ev::to_markdown(bad_ref), mammocl::config_error);
  auto no_ref = t;
  no_ref.reference_column.clear();
  no_ref.set("augmented", "CE", {.value = 0.5, .p = 0.04});
  BOOST_TEST(ev::to_markdown(no_ref).find("0.500 (p = 0.040)") != std::string::npos);
  auto ragged = t;
  ragged.cells[0].pop_back();
  BOOST_CHECK_THROW((void)ev::to_markdown(ragged), mammocl::shape_error);
  ev::text_table tt{.caption = "x", .header = {"a", "b"}, .rows = {{"1"}}, .note = ""};
  BOOST_CHECK_THROW((void)ev::to_markdown(tt), mammocl::shape_error);
}

// ------------------------------------------------------------------------------------------------
// SVG plots
// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(svg_plots_are_well_formed_and_escaped) {
  auto roc = demo_roc();
  roc.title = "ROC <AUC> & \"co\"";
  roc.curves[0].label = "CE <baseline> & 'ref'";
  const auto tsne = demo_tsne();
  const auto train = demo_training();
  for (const auto& svg : {ev::svg_roc(roc, true), ev::svg_tsne(tsne, true), ev::svg_training(train, true),
                          ev::svg_roc(roc), ev::svg_tsne(tsne), ev::svg_training(train)}) {
    const auto v = check_xml(svg);
    BOOST_TEST(v.ok, v.error);
    BOOST_TEST(svg.rfind("<svg", 0) == 0u);
  }
  const auto s = ev::svg_roc(roc);
  BOOST_TEST(s.find("ROC &lt;AUC&gt; &amp; &quot;co&quot;") != std::string::npos);
  BOOST_TEST(s.find("CE &lt;baseline&gt; &amp; &apos;ref&apos; (AUC = 0.790)") != std::string::npos);
  BOOST_TEST(s.find("stroke-dasharray=\"4 4\"") != std::string::npos);  // the chance diagonal
  for (const char* tick : {">0.0<", ">0.2<", ">0.4<", ">0.6<", ">0.8<", ">1.0<"})
    BOOST_TEST(s.find(tick) != std::string::npos, tick);
  // Five curves, 3 x 2 groups of 60 markers, both shapes in the t-SNE.
  BOOST_TEST(std::count(s.begin(), s.end(), '\n') > 0);
  const auto t = ev::svg_tsne(tsne);
  std::size_t circles = 0, squares = 0;
  for (auto p = t.find("<circle"); p != std::string::npos; p = t.find("<circle", p + 1)) ++circles;
  for (auto p = t.find("<rect x="); p != std::string::npos; p = t.find("<rect x=", p + 1)) ++squares;
  BOOST_TEST(circles == 180u + 3u + 1u);  // domain 0 points + class legend + domain legend
  BOOST_TEST(squares >= 180u + 1u);       // domain 1 points + domain legend (+ background and frame)
  // The broken training line: two "M" commands in the third run's path.
  const auto tr = ev::svg_training(train);
  const auto path_of_run4 = [&] {
    std::size_t p = 0;
    for (int i = 0; i < 5; ++i) p = tr.find("<path d=\"", p + 1);
    return tr.substr(p, tr.find('"', p + 9) - p);
  }();
  BOOST_TEST(std::count(path_of_run4.begin(), path_of_run4.end(), 'M') == 2);
}

BOOST_AUTO_TEST_CASE(svg_bad_input_is_refused) {
  auto roc = demo_roc();
  roc.curves[1].tpr[3] = nan_v;
  BOOST_TEST(message_of([&] { (void)ev::svg_roc(roc); }).find("curve 'SupContr' point 3") != std::string::npos);
  roc = demo_roc();
  roc.curves[0].fpr[0] = 1.5;
  BOOST_CHECK_THROW((void)ev::svg_roc(roc), mammocl::numeric_error);
  roc = demo_roc();
  roc.curves[0].tpr.pop_back();
  BOOST_CHECK_THROW((void)ev::svg_roc(roc), mammocl::shape_error);
  BOOST_CHECK_THROW((void)ev::svg_roc(ev::roc_plot{}), mammocl::config_error);
  roc = demo_roc();
  roc.curves[0].auc = inf_v;
  BOOST_CHECK_THROW((void)ev::svg_roc(roc), mammocl::numeric_error);

  auto ts = demo_tsne(2);
  ts.points[4].y = -inf_v;
  BOOST_TEST(message_of([&] { (void)ev::svg_tsne(ts); }).find("point 4") != std::string::npos);
  ts = demo_tsne(2);
  ts.points[0].class_index = 3;
  BOOST_CHECK_THROW((void)ev::svg_tsne(ts), mammocl::shape_error);
  ts = demo_tsne(2);
  ts.points[0].domain_index = -1;
  BOOST_CHECK_THROW((void)ev::svg_tsne(ts), mammocl::shape_error);
  ts.points.clear();
  BOOST_CHECK_THROW((void)ev::svg_tsne(ts), mammocl::config_error);

  auto tr = demo_training();
  for (auto& y : tr.runs[1].y) y = nan_v;
  BOOST_TEST(message_of([&] { (void)ev::svg_training(tr); }).find("run 'CE val' has no finite y") != std::string::npos);
  tr = demo_training();
  tr.runs[0].x[2] = nan_v;
  BOOST_CHECK_THROW((void)ev::svg_training(tr), mammocl::numeric_error);
  tr = demo_training();
  tr.runs[0].colour = 10;
  BOOST_CHECK_THROW((void)ev::svg_training(tr), mammocl::config_error);
  tr = demo_training();
  tr.runs[0].y.pop_back();
  BOOST_CHECK_THROW((void)ev::svg_training(tr), mammocl::shape_error);
  // One point and a flat line still give a valid plot.
  ev::training_plot one;
  one.runs = {{.label = "a", .x = {1}, .y = {0.5}, .dashed = false}};
  BOOST_TEST(check_xml(ev::svg_training(one)).ok);
}

BOOST_AUTO_TEST_CASE(nice_ticks) {
  const auto t = ev::make_ticks(0, 1);
  BOOST_TEST(t.values == (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  BOOST_TEST(t.decimals == 1);
  const auto r = ev::nice_range(0.37, 1.42);  // step 0.5 (1.05 / 5 = 0.21 -> 0.5)
  BOOST_TEST(r.first == 0.0);
  BOOST_TEST(r.second == 1.5);
  const auto r2 = ev::nice_range(0.412, 0.873);  // step 0.1
  BOOST_TEST(r2.first == 0.4, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(r2.second == 0.9, boost::test_tools::tolerance(1e-12));
  const auto e = ev::make_ticks(1, 30);
  BOOST_TEST(e.step == 10);
  BOOST_TEST(e.values == (std::vector<double>{10, 20, 30}));
  const auto f = ev::nice_range(2.0, 2.0);
  BOOST_TEST(f.first < 2.0);
  BOOST_TEST(f.second > 2.0);
  BOOST_CHECK_THROW((void)ev::make_ticks(1, 1), mammocl::config_error);
}

// ------------------------------------------------------------------------------------------------
// The HTML page
// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(html_page_is_well_formed_offline_and_deterministic) {
  const std::string page = demo_page().str();
  const auto v = check_xml(page);
  BOOST_TEST(v.ok, v.error);
  const auto svgs = svg_fragments(page);
  BOOST_TEST(svgs.size() == 3u);
  for (const auto& s : svgs) {
    const auto sv = check_xml(s);
    BOOST_TEST(sv.ok, sv.error);
  }
  for (const char* ref : {"http://", "https://", "src=", "href=", "<script", "<link", "url(", "@import"})
    BOOST_TEST(page.find(ref) == std::string::npos, "the page contains " << ref);
  BOOST_TEST(page.find("<meta charset=\"utf-8\"/>") != std::string::npos);
  BOOST_TEST(page.find("<title>MammoCL evaluation &lt;demo&gt; &amp; report</title>") != std::string::npos);
  BOOST_TEST(page.find("<td class=\"missing\">–</td>") != std::string::npos);
  BOOST_TEST(page.find("<th scope=\"row\">mixed down-sampled 0.6</th>") != std::string::npos);
  BOOST_TEST(page == demo_page().str());  // byte-identical for the same input
}

BOOST_AUTO_TEST_CASE(html_page_rejects_bad_blocks_at_add) {
  ev::html_page page("x");
  auto roc = demo_roc();
  roc.curves[0].fpr[1] = nan_v;
  BOOST_CHECK_THROW(page.plot(roc), mammocl::numeric_error);
  auto t = demo_poster();
  t.cells[0][1]->value = nan_v;
  BOOST_CHECK_THROW(page.table(t), mammocl::numeric_error);
  BOOST_TEST(check_xml(page.str()).ok);
}

// ------------------------------------------------------------------------------------------------
// Atomic writing
// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(atomic_write) {
  mammocl::test::temp_dir dir("eval-report");
  const auto page = demo_page();
  page.write(dir / "report.html");
  BOOST_TEST(read_file(dir / "report.html") == page.str());
  BOOST_TEST(dir.listing() == std::vector<std::string>{"report.html"});
  page.write(dir / "again.html");
  BOOST_TEST(read_file(dir / "again.html") == read_file(dir / "report.html"));  // deterministic file
  ev::write_file_atomic(dir / "report.html", "replaced\n");
  BOOST_TEST(read_file(dir / "report.html") == "replaced\n");
  BOOST_TEST(dir.listing() == (std::vector<std::string>{"again.html", "report.html"}));

  // A missing directory: the error names the file, nothing is created.
  const auto missing = dir / "no-such-dir" / "report.html";
  const auto m1 = message_of([&] { page.write(missing); });
  BOOST_TEST(m1.find("cannot write '" + missing.string() + "'") == 0u, m1);
  BOOST_TEST(dir.listing() == (std::vector<std::string>{"again.html", "report.html"}));

  // The target is a directory: the rename fails, the temporary is removed, the directory stays.
  std::filesystem::create_directory(dir / "taken");
  std::ofstream(dir / "taken" / "inside.txt") << "keep";
  const auto m2 = message_of([&] { page.write(dir / "taken"); });
  BOOST_TEST(m2.find("cannot write '" + (dir / "taken").string() + "': renaming") == 0u, m2);
  BOOST_TEST(dir.listing() == (std::vector<std::string>{"again.html", "report.html", "taken"}));
  BOOST_TEST(read_file(dir / "taken" / "inside.txt") == "keep");
  BOOST_CHECK_THROW(page.write(dir / "taken"), mammocl::io_error);
}

// ------------------------------------------------------------------------------------------------
// Headless rendering (only where chromium is installed)
// ------------------------------------------------------------------------------------------------

namespace {

bool have_chromium() { return std::system("command -v chromium > /dev/null 2>&1") == 0; }

boost::test_tools::assertion_result chromium_available(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(have_chromium());
  if (!r) r.message() << "SKIPPED: chromium is not installed (apt-get install chromium to run this test)";
  return r;
}

/// A decoded 8-bit RGB(A) PNG, inflated with the system zlib loaded at run time (the test links no
/// extra library). `ok` false with `why` when the PNG uses a format this small decoder does not handle.
struct png_image {
  bool ok = false;
  std::string why;
  std::uint32_t width = 0, height = 0;
  int channels = 0;
  std::vector<std::uint8_t> pixels;  // rows of width*channels bytes
};

std::uint32_t be32(const std::string& s, std::size_t at) {
  return (std::uint32_t(std::uint8_t(s[at])) << 24) | (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
         (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint32_t(std::uint8_t(s[at + 3]));
}

png_image decode_png(const std::string& file) {
  png_image img;
  if (file.size() < 8 || file.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return img.why = "not a PNG", img;
  std::string idat;
  int depth = 0, colour = 0, interlace = 0;
  for (std::size_t p = 8; p + 12 <= file.size();) {
    const std::uint32_t len = be32(file, p);
    const std::string type = file.substr(p + 4, 4);
    if (p + 12 + len > file.size()) return img.why = "truncated chunk", img;
    if (type == "IHDR") {
      img.width = be32(file, p + 8);
      img.height = be32(file, p + 12);
      depth = std::uint8_t(file[p + 16]);
      colour = std::uint8_t(file[p + 17]);
      interlace = std::uint8_t(file[p + 20]);
    } else if (type == "IDAT") {
      idat += file.substr(p + 8, len);
    }
    p += 12 + len;
  }
  if (depth != 8 || (colour != 2 && colour != 6) || interlace != 0)
    return img.why = "PNG format (depth " + std::to_string(depth) + ", colour " + std::to_string(colour) + ")", img;
  img.channels = colour == 6 ? 4 : 3;
  void* z = ::dlopen("libz.so.1", RTLD_NOW);
  if (z == nullptr) return img.why = "libz.so.1 not found", img;
  using uncompress_fn = int (*)(unsigned char*, unsigned long*, const unsigned char*, unsigned long);
  const auto uncompress = reinterpret_cast<uncompress_fn>(::dlsym(z, "uncompress"));
  if (uncompress == nullptr) return img.why = "zlib has no uncompress", img;
  const std::size_t stride = std::size_t(img.width) * img.channels;
  std::vector<std::uint8_t> raw((stride + 1) * img.height);
  unsigned long raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const unsigned char*>(idat.data()), idat.size()) != 0 ||
      raw_len != raw.size())
    return img.why = "inflate failed", img;
  img.pixels.assign(stride * img.height, 0);
  const int bpp = img.channels;
  for (std::size_t y = 0; y < img.height; ++y) {
    const std::uint8_t filter = raw[y * (stride + 1)];
    const std::uint8_t* in = &raw[y * (stride + 1) + 1];
    std::uint8_t* out = &img.pixels[y * stride];
    const std::uint8_t* up = y ? &img.pixels[(y - 1) * stride] : nullptr;
    for (std::size_t x = 0; x < stride; ++x) {
      const int a = x >= std::size_t(bpp) ? out[x - bpp] : 0, b = up ? up[x] : 0,
                c = (up && x >= std::size_t(bpp)) ? up[x - bpp] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: return img.why = "bad PNG filter", img;
      }
      out[x] = std::uint8_t(in[x] + pred);
    }
  }
  img.ok = true;
  return img;
}

}  // namespace

BOOST_AUTO_TEST_CASE(chromium_renders_a_non_blank_page, *boost::unit_test::precondition(chromium_available)) {
  mammocl::test::temp_dir dir("eval-report-render");
  const auto html = dir / "report.html";
  const auto png = dir / "report.png";
  demo_page().write(html);
  const std::string cmd = "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                          "--hide-scrollbars --no-first-run --user-data-dir='" + (dir / "profile").string() +
                          "' --window-size=1280,2600 --screenshot='" + png.string() + "' 'file://" +
                          html.string() + "' > '" + (dir / "chromium.log").string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  BOOST_REQUIRE_MESSAGE(rc == 0 && std::filesystem::exists(png),
                        "chromium failed (" << rc << "): " << read_file(dir / "chromium.log"));
  const std::string bytes = read_file(png);
  if (const char* keep = std::getenv("MAMMOCL_EVAL_REPORT_KEEP")) {
    std::filesystem::create_directories(keep);
    std::filesystem::copy_file(html, std::filesystem::path(keep) / "report.html",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(png, std::filesystem::path(keep) / "report.png",
                               std::filesystem::copy_options::overwrite_existing);
  }
  const auto img = decode_png(bytes);
  if (!img.ok) {
    BOOST_TEST_MESSAGE("PNG not decoded (" << img.why << "); checking the file size only");
    BOOST_TEST(bytes.size() > 50000u);
    return;
  }
  BOOST_TEST(img.width == 1280u);
  BOOST_TEST(img.height == 2600u);
  // Not blank: many pixels differ from the white background, many distinct colours (antialiased text,
  // plots), and the plots' first palette colour (#1f77b4) appears.
  std::size_t non_white = 0, blue = 0;
  std::set<std::uint32_t> colours;
  for (std::size_t i = 0; i < img.pixels.size(); i += img.channels) {
    const int r = img.pixels[i], g = img.pixels[i + 1], b = img.pixels[i + 2];
    if (r < 245 || g < 245 || b < 245) ++non_white;
    if (std::abs(r - 0x1f) < 24 && std::abs(g - 0x77) < 24 && std::abs(b - 0xb4) < 24) ++blue;
    if (colours.size() < 5000) colours.insert((std::uint32_t(r) << 16) | (std::uint32_t(g) << 8) | std::uint32_t(b));
  }
  const double total = double(img.width) * img.height;
  BOOST_TEST_MESSAGE("screenshot: " << non_white << " non-white pixels of " << total << ", " << colours.size()
                                    << " colours, " << blue << " palette-blue pixels");
  BOOST_TEST(non_white / total > 0.02);
  BOOST_TEST(colours.size() > 50u);
  BOOST_TEST(blue > 500u);
}
