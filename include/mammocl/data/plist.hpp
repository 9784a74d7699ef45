#pragma once
/// Apple XML property lists (the OsiriX ROI exports of INbreast's `AllXML/`): a small, strict parser.
///
/// Accepted: an optional `<?xml ...?>` declaration, `<!DOCTYPE ...>`, comments, a `<plist>` root holding
/// one value; values `dict` (key/value pairs), `array`, `key`, `string`, `integer`, `real`, `true/`,
/// `false/`, `date`, `data`; the five predefined entities and numeric character references. Every error
/// is an io_error naming the file and the line. Nesting deeper than 256 levels is refused (fuzzing).
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/csv.hpp"

namespace mammocl::data {

/// One plist value; `kind` says which member holds it.
struct plist_value {
  enum class kind { string, integer, real, boolean, date, data, array, dict };
  kind type = kind::string;
  std::string text;                                      ///< string, date, data (as written, entities decoded)
  std::int64_t integer = 0;                              ///< integer
  double real = 0.0;                                     ///< real (and integer, converted)
  bool boolean = false;                                  ///< true / false
  std::vector<plist_value> array;                        ///< array
  std::vector<std::string> keys;                         ///< dict keys, in file order
  std::vector<plist_value> values;                       ///< dict values, parallel to `keys`
  std::size_t line = 0;                                  ///< 1-based line of the value's opening tag

  /// The value of `key` in a dict, or nullptr (also when this is not a dict).
  [[nodiscard]] const plist_value* find(std::string_view key) const noexcept {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &values[i];
    return nullptr;
  }
  [[nodiscard]] bool is(kind k) const noexcept { return type == k; }
};

/// The name of a kind, for messages.
[[nodiscard]] constexpr std::string_view plist_kind_name(plist_value::kind k) noexcept {
  switch (k) {
    case plist_value::kind::string: return "string";
    case plist_value::kind::integer: return "integer";
    case plist_value::kind::real: return "real";
    case plist_value::kind::boolean: return "boolean";
    case plist_value::kind::date: return "date";
    case plist_value::kind::data: return "data";
    case plist_value::kind::array: return "array";
    case plist_value::kind::dict: return "dict";
  }
  return "?";
}

namespace detail {

class plist_parser {
 public:
  plist_parser(std::string_view text, std::string_view name) : s_(text), name_(name) {}

  plist_value parse_document() {
    skip_misc();
    std::string tag = open_tag();
    // The root may be <plist version="1.0"> or, leniently, a bare value.
    if (tag == "plist") {
      skip_misc();
      plist_value v = value(open_tag(), 0);
      skip_misc();
      close_tag("plist");
      skip_misc();
      MAMMOCL_CHECK(i_ >= s_.size(), io_error, name_, ":", line_, ": text after </plist>");
      return v;
    }
    plist_value v = value(tag, 0);
    skip_misc();
    MAMMOCL_CHECK(i_ >= s_.size(), io_error, name_, ":", line_, ": text after the root value");
    return v;
  }

 private:
  std::string_view s_;
  std::string_view name_;
  std::size_t i_ = 0, line_ = 1;
  bool self_closing_ = false;

  [[noreturn]] void fail(std::string_view what) const { MAMMOCL_THROW(io_error, name_, ":", line_, ": ", what); }

  void advance(std::size_t n) {
    for (std::size_t k = 0; k < n && i_ < s_.size(); ++k, ++i_)
      if (s_[i_] == '\n') ++line_;
  }
  bool starts(std::string_view p) const { return s_.substr(i_, p.size()) == p; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) advance(1);
  }
  void skip_until(std::string_view end, std::string_view what) {
    const std::size_t p = s_.find(end, i_);
    if (p == std::string_view::npos) fail(std::string("unterminated ") + std::string(what));
    advance(p + end.size() - i_);
  }
  // Whitespace, XML declaration, processing instructions, DOCTYPE and comments.
  void skip_misc() {
    for (;;) {
      skip_ws();
      if (starts("<?")) skip_until("?>", "processing instruction");
      else if (starts("<!--")) skip_until("-->", "comment");
      else if (starts("<!DOCTYPE")) skip_until(">", "DOCTYPE");
      else return;
    }
  }
  // Reads "<name attr...>" or "<name/>", returns the name; sets self_closing_.
  std::string open_tag() {
    if (!starts("<") || starts("</")) fail("expected an opening tag");
    advance(1);
    const std::size_t b = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '-'))
      advance(1);
    std::string tag(s_.substr(b, i_ - b));
    if (tag.empty()) fail("expected a tag name after '<'");
    // Attributes are ignored (only <plist version="1.0"> has one).
    bool quoted = false;
    char q = 0;
    while (i_ < s_.size() && (quoted || s_[i_] != '>')) {
      if (quoted && s_[i_] == q) quoted = false;
      else if (!quoted && (s_[i_] == '"' || s_[i_] == '\'')) { quoted = true; q = s_[i_]; }
      advance(1);
    }
    if (i_ >= s_.size()) fail("unterminated tag <" + tag);
    self_closing_ = i_ > 0 && s_[i_ - 1] == '/';
    advance(1);
    return tag;
  }
  void close_tag(std::string_view tag) {
    const std::string want = "</" + std::string(tag);
    if (!starts(want)) fail("expected </" + std::string(tag) + ">");
    advance(want.size());
    skip_ws();
    if (!starts(">")) fail("expected '>' to close </" + std::string(tag));
    advance(1);
  }
  // Character data up to the next '<', entities decoded.
  std::string text() {
    std::string out;
    while (i_ < s_.size() && s_[i_] != '<') {
      if (s_[i_] != '&') {
        out += s_[i_];
        advance(1);
        continue;
      }
      const std::size_t semi = s_.find(';', i_);
      if (semi == std::string_view::npos || semi - i_ > 12) fail("unterminated entity reference");
      const std::string_view ent = s_.substr(i_ + 1, semi - i_ - 1);
      if (ent == "lt") out += '<';
      else if (ent == "gt") out += '>';
      else if (ent == "amp") out += '&';
      else if (ent == "quot") out += '"';
      else if (ent == "apos") out += '\'';
      else if (ent.size() > 1 && ent[0] == '#') {
        const bool hex = ent[1] == 'x' || ent[1] == 'X';
        const std::string_view digits = ent.substr(hex ? 2 : 1);
        unsigned long cp = 0;
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
        if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || cp == 0 || cp > 0x10FFFF)
          fail("bad character reference &" + std::string(ent) + ";");
        append_utf8(out, cp);
      } else {
        fail("unknown entity &" + std::string(ent) + ";");
      }
      advance(semi + 1 - i_);
    }
    if (starts("<![CDATA[")) fail("CDATA sections are not supported");
    return out;
  }
  static void append_utf8(std::string& out, unsigned long cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  // Text content of a leaf element <tag>...</tag> (or "" for <tag/>).
  std::string leaf(const std::string& tag) {
    if (self_closing_) return {};
    std::string t = text();
    close_tag(tag);
    return t;
  }

  plist_value value(const std::string& tag, int depth) {
    if (depth > 256) fail("nesting deeper than 256 levels");
    plist_value v;
    v.line = line_;
    using K = plist_value::kind;
    if (tag == "string" || tag == "date" || tag == "data") {
      v.type = tag == "string" ? K::string : tag == "date" ? K::date : K::data;
      v.text = leaf(tag);
    } else if (tag == "integer") {
      v.type = K::integer;
      const std::string t = trim(leaf(tag));
      const char* b = t.data() + (!t.empty() && t[0] == '+');
      auto [p, ec] = std::from_chars(b, t.data() + t.size(), v.integer);
      if (t.empty() || ec != std::errc() || p != t.data() + t.size()) fail("<integer> '" + t + "' is not an integer");
      v.real = static_cast<double>(v.integer);
    } else if (tag == "real") {
      v.type = K::real;
      const std::string t = trim(leaf(tag));
      char* end = nullptr;
      v.real = t.empty() ? 0.0 : std::strtod(t.c_str(), &end);
      if (t.empty() || end != t.c_str() + t.size()) fail("<real> '" + t + "' is not a number");
    } else if (tag == "true" || tag == "false") {
      v.type = K::boolean;
      v.boolean = tag == "true";
      if (!self_closing_) close_tag(tag);
    } else if (tag == "array") {
      v.type = K::array;
      if (self_closing_) return v;
      for (;;) {
        skip_misc();
        if (starts("</")) break;
        v.array.push_back(value(open_tag(), depth + 1));
      }
      close_tag(tag);
    } else if (tag == "dict") {
      v.type = K::dict;
      if (self_closing_) return v;
      for (;;) {
        skip_misc();
        if (starts("</")) break;
        const std::size_t key_line = line_;
        if (open_tag() != "key") {
          line_ = key_line;
          fail("expected <key> in <dict>");
        }
        std::string key = leaf("key");
        skip_misc();
        if (starts("</")) fail("key '" + key + "' has no value");
        v.values.push_back(value(open_tag(), depth + 1));
        v.keys.push_back(std::move(key));
      }
      close_tag(tag);
    } else {
      fail("unknown plist element <" + tag + ">");
    }
    return v;
  }
};

}  // namespace detail

/// Parses plist XML held in memory (`name` is used in messages); the memory entry point, also used by the
/// fuzz target.
[[nodiscard]] inline plist_value parse_plist(std::string_view text, std::string_view name) {
  return detail::plist_parser(text, name).parse_document();
}

/// Reads and parses the plist file at `path`.
[[nodiscard]] inline plist_value read_plist(const std::filesystem::path& path) {
  return parse_plist(read_text_file(path), path.string());
}

}  // namespace mammocl::data
