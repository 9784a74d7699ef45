#pragma once
/// Self-contained SVG plots for the evaluation report: ROC curves, a t-SNE scatter and training curves.
///
/// The plots take plain data (numbers and strings), so they depend on nothing else in eval/. Every
/// function is deterministic: the same input gives byte-identical output (numbers are written with
/// std::to_chars, which ignores the locale; nothing depends on time or addresses). All text is
/// XML-escaped, and the output is well-formed XML. Standalone SVG files carry the SVG namespace; the
/// fragments embedded in the HTML report do not, so the page contains no `http://` reference at all.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"

namespace mammocl::eval {

// ------------------------------------------------------------------------------------------------
// Text and numbers
// ------------------------------------------------------------------------------------------------

/// `text` with &, <, >, " and ' replaced by XML entities; control characters other than tab,
/// newline and carriage return (not allowed in XML 1.0) become a space.
[[nodiscard]] inline std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

/// `value` with exactly `decimals` digits after the point, locale-independent ("0.812"); a result that
/// rounds to zero never carries a minus sign. Requires a finite value and 0 <= decimals <= 17.
[[nodiscard]] inline std::string format_fixed(double value, int decimals) {
  MAMMOCL_CHECK(std::isfinite(value), numeric_error, "format_fixed: the value ", value, " is not finite");
  MAMMOCL_CHECK(decimals >= 0 && decimals <= 17, config_error, "format_fixed: ", decimals,
                " decimals is outside [0, 17]");
  char buf[400];
  const auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed, decimals);
  std::string s(buf, res.ptr);
  if (!s.empty() && s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

/// `value` with `digits` significant digits, trailing zeros kept so that a column lines up: fixed
/// notation from 1e-4 up to 1e15 ("0.0310", "0.00123", "12.0"), scientific below and above
/// ("1.50e-05"); zero is "0". Locale-independent. Requires a finite value and 1 <= digits <= 17.
[[nodiscard]] inline std::string format_significant(double value, int digits) {
  MAMMOCL_CHECK(std::isfinite(value), numeric_error, "format_significant: the value ", value, " is not finite");
  MAMMOCL_CHECK(digits >= 1 && digits <= 17, config_error, "format_significant: ", digits,
                " digits is outside [1, 17]");
  if (value == 0) return "0";
  char buf[64];
  // The exponent after rounding to `digits` digits (0.0009996 -> 1.00e-03), read from scientific form.
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific, digits - 1);
  const std::string sci(buf, res.ptr);
  const int exponent = std::stoi(sci.substr(sci.find('e') + 1));
  if (exponent < -4 || exponent >= 15) return sci;
  return format_fixed(value, std::max(0, digits - 1 - exponent));
}

/// Axis ticks: a "nice" step (1, 2 or 5 times a power of ten) giving about `target` intervals over
/// [lo, hi], and the ticks that are multiples of that step inside [lo, hi] (ends included within a
/// rounding tolerance). Requires finite lo < hi and target >= 1.
struct axis_ticks {
  double step = 1;
  int decimals = 0;  ///< digits after the point needed to write every tick distinctly
  std::vector<double> values;
};

[[nodiscard]] inline double nice_step(double range, int target) {
  MAMMOCL_CHECK(std::isfinite(range) && range > 0 && target >= 1, config_error,
                "nice_step: needs a finite positive range and target >= 1, got ", range, " and ", target);
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double nice = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
  return nice * mag;
}

[[nodiscard]] inline axis_ticks make_ticks(double lo, double hi, int target = 5) {
  MAMMOCL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi, config_error,
                "make_ticks: needs finite lo < hi, got [", lo, ", ", hi, "]");
  axis_ticks t;
  t.step = nice_step(hi - lo, target);
  t.decimals = std::max(0, -static_cast<int>(std::floor(std::log10(t.step) + 1e-9)));
  const double eps = t.step * 1e-9;
  for (double k = std::ceil((lo - eps) / t.step);; k += 1) {
    const double v = k * t.step;
    if (v > hi + eps) break;
    t.values.push_back(std::abs(v) < eps ? 0.0 : v);
  }
  return t;
}

/// [lo, hi] widened outward to multiples of the nice step, so that an axis starts and ends on a tick.
/// A degenerate range (lo == hi) is widened to lo ± max(|lo|·0.1, 0.5) first.
[[nodiscard]] inline std::pair<double, double> nice_range(double lo, double hi, int target = 5) {
  MAMMOCL_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, config_error,
                "nice_range: needs finite lo <= hi, got [", lo, ", ", hi, "]");
  if (lo == hi) {
    const double pad = std::max(std::abs(lo) * 0.1, 0.5);
    lo -= pad;
    hi += pad;
  }
  const double step = nice_step(hi - lo, target);
  return {std::floor(lo / step + 1e-9) * step, std::ceil(hi / step - 1e-9) * step};
}

// ------------------------------------------------------------------------------------------------
// Plot inputs
// ------------------------------------------------------------------------------------------------

/// One ROC curve: false-positive rates and true-positive rates (same length, at least 2, all in [0, 1]),
/// in drawing order (as eval/auc's roc_curve returns them). `auc`, when set, is shown in the legend.
struct roc_curve_data {
  std::string label;
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::optional<double> auc;
};

struct roc_plot {
  std::string title = "ROC";
  std::vector<roc_curve_data> curves;  ///< at least one; at most 10 (one colour each)
};

/// One embedded point: 2-d coordinates, its class (index into class_names) and domain (index into
/// domain_names).
struct scatter_point {
  double x = 0;
  double y = 0;
  int class_index = 0;
  int domain_index = 0;
};

/// t-SNE (or any 2-d embedding) scatter: colour by class (at most 10), marker shape by domain (at most
/// 6: circle, square, triangle, diamond, inverted triangle, plus). Points are drawn in input order.
struct tsne_plot {
  std::string title = "t-SNE";
  std::vector<std::string> class_names;
  std::vector<std::string> domain_names;
  std::vector<scatter_point> points;  ///< at least one, finite coordinates
};

/// One run's curve: x (usually the epoch; finite) against y (the loss or metric). A non-finite y
/// (a diverged loss) breaks the line there instead of failing; at least one y must be finite.
struct line_series {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
  bool dashed = false;  ///< e.g. validation curves dashed, training curves solid
  int colour = -1;      ///< palette index 0..9 (so a run's training and validation curves can share one); -1: by position
};

struct training_plot {
  std::string title = "Training";
  std::string x_label = "epoch";
  std::string y_label = "loss";
  std::vector<line_series> runs;  ///< at least one; at most 10
};

// ------------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------------

namespace detail {

/// Tableau 10: distinguishable, colour-blind-friendlier than a rainbow.
inline constexpr const char* palette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/// Layout shared by the three plots (pixels): the plot area [px0, px1] x [py0, py1], legend on the right.
struct frame {
  static constexpr double width = 600, height = 400;
  static constexpr double px0 = 64, px1 = 364, py0 = 40, py1 = 340;
  static constexpr double legend_x = 384, legend_y = 52, legend_dy = 18;
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  [[nodiscard]] double sx(double x) const { return px0 + (x - x_lo) / (x_hi - x_lo) * (px1 - px0); }
  [[nodiscard]] double sy(double y) const { return py1 - (y - y_lo) / (y_hi - y_lo) * (py1 - py0); }
};

/// Pixel coordinate with two decimals.
[[nodiscard]] inline std::string px(double v) { return format_fixed(v, 2); }

[[nodiscard]] inline std::string svg_open(const std::string& title, bool standalone) {
  std::string s = "<svg";
  if (standalone) s += " xmlns=\"http://www.w3.org/2000/svg\"";
  s += " width=\"" + px(frame::width) + "\" height=\"" + px(frame::height) + "\" viewBox=\"0 0 " +
       px(frame::width) + " " + px(frame::height) +
       "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\" role=\"img\">\n";
  s += "<title>" + xml_escape(title) + "</title>\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + px(frame::width) + "\" height=\"" + px(frame::height) +
       "\" fill=\"#ffffff\"/>\n";
  s += "<text x=\"" + px((frame::px0 + frame::px1) / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"14\" "
       "font-weight=\"bold\">" + xml_escape(title) + "</text>\n";
  return s;
}

/// Frame, grid lines, ticks and tick labels for both axes, and the axis labels.
[[nodiscard]] inline std::string axes(const frame& f, const axis_ticks& xt, const axis_ticks& yt,
                                      const std::string& x_label, const std::string& y_label) {
  std::string s = "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
  for (double x : xt.values)
    s += "<line x1=\"" + px(f.sx(x)) + "\" y1=\"" + px(frame::py0) + "\" x2=\"" + px(f.sx(x)) + "\" y2=\"" +
         px(frame::py1) + "\"/>\n";
  for (double y : yt.values)
    s += "<line x1=\"" + px(frame::px0) + "\" y1=\"" + px(f.sy(y)) + "\" x2=\"" + px(frame::px1) + "\" y2=\"" +
         px(f.sy(y)) + "\"/>\n";
  s += "</g>\n<g stroke=\"#333333\" stroke-width=\"1\">\n";
  for (double x : xt.values)
    s += "<line x1=\"" + px(f.sx(x)) + "\" y1=\"" + px(frame::py1) + "\" x2=\"" + px(f.sx(x)) + "\" y2=\"" +
         px(frame::py1 + 5) + "\"/>\n";
  for (double y : yt.values)
    s += "<line x1=\"" + px(frame::px0 - 5) + "\" y1=\"" + px(f.sy(y)) + "\" x2=\"" + px(frame::px0) + "\" y2=\"" +
         px(f.sy(y)) + "\"/>\n";
  s += "</g>\n<g fill=\"#333333\">\n";
  for (double x : xt.values)
    s += "<text x=\"" + px(f.sx(x)) + "\" y=\"" + px(frame::py1 + 18) + "\" text-anchor=\"middle\">" +
         format_fixed(x, xt.decimals) + "</text>\n";
  for (double y : yt.values)
    s += "<text x=\"" + px(frame::px0 - 8) + "\" y=\"" + px(f.sy(y) + 4) + "\" text-anchor=\"end\">" +
         format_fixed(y, yt.decimals) + "</text>\n";
  s += "<text x=\"" + px((frame::px0 + frame::px1) / 2) + "\" y=\"" + px(frame::py1 + 38) +
       "\" text-anchor=\"middle\" font-size=\"12\">" + xml_escape(x_label) + "</text>\n";
  s += "<text transform=\"translate(18 " + px((frame::py0 + frame::py1) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">" + xml_escape(y_label) + "</text>\n";
  s += "</g>\n";
  s += "<rect x=\"" + px(frame::px0) + "\" y=\"" + px(frame::py0) + "\" width=\"" + px(frame::px1 - frame::px0) +
       "\" height=\"" + px(frame::py1 - frame::py0) + "\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n";
  return s;
}

/// Legend row `i`: a line sample in `colour` (dashed or not) and the escaped label.
[[nodiscard]] inline std::string legend_line(int i, const char* colour, bool dashed, const std::string& label) {
  const double y = frame::legend_y + i * frame::legend_dy;
  return "<line x1=\"" + px(frame::legend_x) + "\" y1=\"" + px(y) + "\" x2=\"" + px(frame::legend_x + 22) +
         "\" y2=\"" + px(y) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"" +
         (dashed ? " stroke-dasharray=\"5 3\"" : "") + "/>\n<text x=\"" + px(frame::legend_x + 28) + "\" y=\"" +
         px(y + 4) + "\">" + xml_escape(label) + "</text>\n";
}

/// A marker of `shape` (0 circle, 1 square, 2 triangle, 3 diamond, 4 inverted triangle, 5 plus)
/// centred at (cx, cy) with half-size r.
[[nodiscard]] inline std::string marker(int shape, double cx, double cy, double r, const std::string& paint) {
  switch (shape) {
    case 0:
      return "<circle cx=\"" + px(cx) + "\" cy=\"" + px(cy) + "\" r=\"" + px(r) + "\" " + paint + "/>";
    case 1:
      return "<rect x=\"" + px(cx - r) + "\" y=\"" + px(cy - r) + "\" width=\"" + px(2 * r) + "\" height=\"" +
             px(2 * r) + "\" " + paint + "/>";
    case 2:
      return "<path d=\"M" + px(cx) + " " + px(cy - r * 1.2) + "L" + px(cx + r * 1.1) + " " + px(cy + r * 0.8) +
             "L" + px(cx - r * 1.1) + " " + px(cy + r * 0.8) + "Z\" " + paint + "/>";
    case 3:
      return "<path d=\"M" + px(cx) + " " + px(cy - r * 1.3) + "L" + px(cx + r * 1.3) + " " + px(cy) + "L" +
             px(cx) + " " + px(cy + r * 1.3) + "L" + px(cx - r * 1.3) + " " + px(cy) + "Z\" " + paint + "/>";
    case 4:
      return "<path d=\"M" + px(cx) + " " + px(cy + r * 1.2) + "L" + px(cx + r * 1.1) + " " + px(cy - r * 0.8) +
             "L" + px(cx - r * 1.1) + " " + px(cy - r * 0.8) + "Z\" " + paint + "/>";
    default:
      return "<path d=\"M" + px(cx - r * 0.5) + " " + px(cy - r * 1.3) + "h" + px(r) + "v" + px(r * 0.8) + "h" +
             px(r * 0.8) + "v" + px(r) + "h-" + px(r * 0.8) + "v" + px(r * 0.8) + "h-" + px(r) + "v-" +
             px(r * 0.8) + "h-" + px(r * 0.8) + "v-" + px(r) + "h" + px(r * 0.8) + "Z\" " + paint + "/>";
  }
}

}  // namespace detail

/// ROC curves on [0, 1]², ticks every 0.2, the chance diagonal dashed, one colour per curve, legend
/// "label (AUC = 0.812)". Throws config_error for no curve or more than 10, shape_error for fpr/tpr of
/// different lengths or fewer than 2 points, numeric_error for a rate that is not finite or outside
/// [0, 1] (naming the curve and point). `standalone` adds the SVG namespace for a file of its own.
[[nodiscard]] inline std::string svg_roc(const roc_plot& plot, bool standalone = false) {
  MAMMOCL_CHECK(!plot.curves.empty() && plot.curves.size() <= 10, config_error, "svg_roc '", plot.title,
                "': needs 1 to 10 curves, got ", plot.curves.size());
  detail::frame f;
  axis_ticks t;
  t.step = 0.2;
  t.decimals = 1;
  t.values = {0.0, 0.2, 0.4, 0.6, 0.8, 1.0};
  std::string s = detail::svg_open(plot.title, standalone);
  s += detail::axes(f, t, t, "false-positive rate", "true-positive rate");
  s += "<line x1=\"" + detail::px(f.sx(0)) + "\" y1=\"" + detail::px(f.sy(0)) + "\" x2=\"" + detail::px(f.sx(1)) +
       "\" y2=\"" + detail::px(f.sy(1)) + "\" stroke=\"#999999\" stroke-width=\"1\" stroke-dasharray=\"4 4\"/>\n";
  std::string legend;
  for (std::size_t c = 0; c < plot.curves.size(); ++c) {
    const auto& cv = plot.curves[c];
    MAMMOCL_EXPECTS(cv.fpr.size() == cv.tpr.size() && cv.fpr.size() >= 2, "svg_roc '", plot.title, "': curve '",
                    cv.label, "' has ", cv.fpr.size(), " false-positive and ", cv.tpr.size(),
                    " true-positive rates; needs the same number, at least 2");
    std::string pts;
    for (std::size_t i = 0; i < cv.fpr.size(); ++i) {
      const double x = cv.fpr[i], y = cv.tpr[i];
      MAMMOCL_CHECK(std::isfinite(x) && std::isfinite(y) && x >= 0 && x <= 1 && y >= 0 && y <= 1, numeric_error,
                    "svg_roc '", plot.title, "': curve '", cv.label, "' point ", i, " (", x, ", ", y,
                    ") is not a finite rate in [0, 1]");
      if (i) pts += ' ';
      pts += detail::px(f.sx(x)) + "," + detail::px(f.sy(y));
    }
    s += "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + detail::palette[c] +
         "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n";
    std::string label = cv.label;
    if (cv.auc) {
      MAMMOCL_CHECK(std::isfinite(*cv.auc), numeric_error, "svg_roc '", plot.title, "': curve '", cv.label,
                    "' has a non-finite AUC");
      label += " (AUC = " + format_fixed(*cv.auc, 3) + ")";
    }
    legend += detail::legend_line(static_cast<int>(c), detail::palette[c], false, label);
  }
  s += "<g fill=\"#333333\">\n" + legend + "</g>\n</svg>\n";
  return s;
}

/// The scatter of an embedding, scaled to the plot area with 5% padding (t-SNE axes carry no units, so
/// no ticks), colour by class, shape by domain, legend of classes then domains. Throws config_error for
/// no point, no class or domain name, more than 10 classes or 6 domains; shape_error for a class or
/// domain index out of range and numeric_error for a non-finite coordinate (naming the point).
[[nodiscard]] inline std::string svg_tsne(const tsne_plot& plot, bool standalone = false) {
  const std::size_t nc = plot.class_names.size(), nd = plot.domain_names.size();
  MAMMOCL_CHECK(!plot.points.empty(), config_error, "svg_tsne '", plot.title, "': no points");
  MAMMOCL_CHECK(nc >= 1 && nc <= 10, config_error, "svg_tsne '", plot.title, "': needs 1 to 10 class names, got ", nc);
  MAMMOCL_CHECK(nd >= 1 && nd <= 6, config_error, "svg_tsne '", plot.title, "': needs 1 to 6 domain names, got ", nd);
  double x_lo = plot.points[0].x, x_hi = x_lo, y_lo = plot.points[0].y, y_hi = y_lo;
  for (std::size_t i = 0; i < plot.points.size(); ++i) {
    const auto& p = plot.points[i];
    MAMMOCL_CHECK(std::isfinite(p.x) && std::isfinite(p.y), numeric_error, "svg_tsne '", plot.title, "': point ", i,
                  " (", p.x, ", ", p.y, ") is not finite");
    MAMMOCL_EXPECTS(p.class_index >= 0 && static_cast<std::size_t>(p.class_index) < nc, "svg_tsne '", plot.title,
                    "': point ", i, " has class ", p.class_index, " outside [0, ", nc, ")");
    MAMMOCL_EXPECTS(p.domain_index >= 0 && static_cast<std::size_t>(p.domain_index) < nd, "svg_tsne '", plot.title,
                    "': point ", i, " has domain ", p.domain_index, " outside [0, ", nd, ")");
    x_lo = std::min(x_lo, p.x);
    x_hi = std::max(x_hi, p.x);
    y_lo = std::min(y_lo, p.y);
    y_hi = std::max(y_hi, p.y);
  }
  const auto pad = [](double& lo, double& hi) {
    const double d = hi > lo ? (hi - lo) * 0.05 : std::max(std::abs(lo) * 0.1, 0.5);
    lo -= d;
    hi += d;
  };
  pad(x_lo, x_hi);
  pad(y_lo, y_hi);
  detail::frame f{.x_lo = x_lo, .x_hi = x_hi, .y_lo = y_lo, .y_hi = y_hi};
  std::string s = detail::svg_open(plot.title, standalone);
  s += "<rect x=\"" + detail::px(detail::frame::px0) + "\" y=\"" + detail::px(detail::frame::py0) + "\" width=\"" +
       detail::px(detail::frame::px1 - detail::frame::px0) + "\" height=\"" +
       detail::px(detail::frame::py1 - detail::frame::py0) +
       "\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n";
  s += "<g fill-opacity=\"0.75\">\n";
  for (const auto& p : plot.points) {
    s += detail::marker(p.domain_index, f.sx(p.x), f.sy(p.y), 3.2,
                        std::string("fill=\"") + detail::palette[p.class_index] + "\"");
    s += '\n';
  }
  s += "</g>\n<g fill=\"#333333\">\n";
  int row = 0;
  s += "<text x=\"" + detail::px(detail::frame::legend_x) + "\" y=\"" +
       detail::px(detail::frame::legend_y + 4) + "\" font-weight=\"bold\">class (colour)</text>\n";
  ++row;
  for (std::size_t c = 0; c < nc; ++c, ++row) {
    const double y = detail::frame::legend_y + row * detail::frame::legend_dy;
    s += detail::marker(0, detail::frame::legend_x + 8, y, 4.5, std::string("fill=\"") + detail::palette[c] + "\"");
    s += "\n<text x=\"" + detail::px(detail::frame::legend_x + 20) + "\" y=\"" + detail::px(y + 4) + "\">" +
         xml_escape(plot.class_names[c]) + "</text>\n";
  }
  ++row;
  s += "<text x=\"" + detail::px(detail::frame::legend_x) + "\" y=\"" +
       detail::px(detail::frame::legend_y + row * detail::frame::legend_dy + 4) +
       "\" font-weight=\"bold\">domain (shape)</text>\n";
  ++row;
  for (std::size_t d = 0; d < nd; ++d, ++row) {
    const double y = detail::frame::legend_y + row * detail::frame::legend_dy;
    s += detail::marker(static_cast<int>(d), detail::frame::legend_x + 8, y, 4.5, "fill=\"#555555\"");
    s += "\n<text x=\"" + detail::px(detail::frame::legend_x + 20) + "\" y=\"" + detail::px(y + 4) + "\">" +
         xml_escape(plot.domain_names[d]) + "</text>\n";
  }
  s += "</g>\n</svg>\n";
  return s;
}

/// Training curves: one line per run (colour per run, dashed where asked), both axes widened to nice
/// tick multiples of the finite data. A non-finite y breaks the line; x must be finite. Throws
/// config_error for no run, more than 10 or a colour outside [-1, 10), shape_error for x/y of different lengths or an empty run,
/// numeric_error for a non-finite x or a run (or all runs) with no finite y.
[[nodiscard]] inline std::string svg_training(const training_plot& plot, bool standalone = false) {
  MAMMOCL_CHECK(!plot.runs.empty() && plot.runs.size() <= 10, config_error, "svg_training '", plot.title,
                "': needs 1 to 10 runs, got ", plot.runs.size());
  double x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
  bool any = false;
  for (const auto& r : plot.runs) {
    MAMMOCL_EXPECTS(r.x.size() == r.y.size() && !r.x.empty(), "svg_training '", plot.title, "': run '", r.label,
                    "' has ", r.x.size(), " x and ", r.y.size(), " y values; needs the same number, at least 1");
    bool run_any = false;
    for (std::size_t i = 0; i < r.x.size(); ++i) {
      MAMMOCL_CHECK(std::isfinite(r.x[i]), numeric_error, "svg_training '", plot.title, "': run '", r.label,
                    "' x[", i, "] = ", r.x[i], " is not finite");
      if (!std::isfinite(r.y[i])) continue;
      if (!any) {
        x_lo = x_hi = r.x[i];
        y_lo = y_hi = r.y[i];
        any = true;
      }
      x_lo = std::min(x_lo, r.x[i]);
      x_hi = std::max(x_hi, r.x[i]);
      y_lo = std::min(y_lo, r.y[i]);
      y_hi = std::max(y_hi, r.y[i]);
      run_any = true;
    }
    MAMMOCL_CHECK(run_any, numeric_error, "svg_training '", plot.title, "': run '", r.label,
                  "' has no finite y value");
  }
  const auto [xa, xb] = nice_range(x_lo, x_hi);
  const auto [ya, yb] = nice_range(y_lo, y_hi);
  detail::frame f{.x_lo = xa, .x_hi = xb, .y_lo = ya, .y_hi = yb};
  std::string s = detail::svg_open(plot.title, standalone);
  s += detail::axes(f, make_ticks(xa, xb), make_ticks(ya, yb), plot.x_label, plot.y_label);
  std::string legend;
  for (std::size_t c = 0; c < plot.runs.size(); ++c) {
    const auto& r = plot.runs[c];
    MAMMOCL_CHECK(r.colour >= -1 && r.colour < 10, config_error, "svg_training '", plot.title, "': run '", r.label,
                  "' has colour ", r.colour, " outside [-1, 10)");
    const char* colour = detail::palette[r.colour >= 0 ? static_cast<std::size_t>(r.colour) : c];
    std::string d;
    bool pen_down = false;
    std::string singles;  // isolated finite points (neighbours non-finite) as dots
    for (std::size_t i = 0; i < r.x.size(); ++i) {
      if (!std::isfinite(r.y[i])) {
        pen_down = false;
        continue;
      }
      const bool prev_ok = i > 0 && std::isfinite(r.y[i - 1]);
      const bool next_ok = i + 1 < r.x.size() && std::isfinite(r.y[i + 1]);
      if (!prev_ok && !next_ok)
        singles += "<circle cx=\"" + detail::px(f.sx(r.x[i])) + "\" cy=\"" + detail::px(f.sy(r.y[i])) +
                   "\" r=\"2.5\" fill=\"" + colour + "\"/>\n";
      d += (pen_down ? "L" : (d.empty() ? "M" : " M")) + detail::px(f.sx(r.x[i])) + " " + detail::px(f.sy(r.y[i]));
      pen_down = true;
    }
    s += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + colour +
         "\" stroke-width=\"2\" stroke-linejoin=\"round\"" + (r.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    s += singles;
    legend += detail::legend_line(static_cast<int>(c), colour, r.dashed, r.label);
  }
  s += "<g fill=\"#333333\">\n" + legend + "</g>\n</svg>\n";
  return s;
}

}  // namespace mammocl::eval
