// The stand-alone fuzz driver: a seeded, bounded-time, coverage-guided mutation loop that needs only g++
// and its sanitizers (no libFuzzer). It is linked into every fuzz_<parser> executable next to one harness
// (tests/fuzz/fuzz_<parser>.cpp, which defines LLVMFuzzerTestOneInput and describe_target()).
//
// Usage: fuzz_<parser> [--seconds=S] [--seed=N] [--min-iterations=N] [--max-iterations=N] [--timeout=S]
//                      [--max-len=N] [--data=DIR] [--artifacts=DIR] [--write-corpus=DIR] [--no-regressions]
//                      [--default-seconds=S] [--default-seed=N] [FILE|DIR ...]
// With FILE/DIR arguments it only replays those inputs (libFuzzer's convention), which is how a saved
// crash is reproduced. See tests/fuzz/README.md.
//
// This file is compiled with the sanitizers but WITHOUT -fsanitize-coverage: it defines the coverage
// callback, so instrumenting it would recurse, and its own branches are not the parser's coverage.
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <vector>

#include "fuzz_target.hpp"
#include "mammocl/core/rng.hpp"

// Exported by libasan (compiler-rt's sanitizer/allocator_interface.h, which g++ 12 does not install).
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, std::size_t),
                                                         void (*free_hook)(const volatile void*));

namespace fs = std::filesystem;
using mammocl::fuzz::bytes;

// ---------------------------------------------------------------------------------------------------
// Sanitizer defaults, so that running an executable by hand behaves as under ctest (the environment
// variables ASAN_OPTIONS / UBSAN_OPTIONS, which ctest sets, override these).
extern "C" const char* __asan_default_options() {
  return "halt_on_error=1:detect_leaks=1:allocator_may_return_null=0:max_allocation_size_mb=512:"
         "hard_rss_limit_mb=3072:handle_abort=1:detect_stack_use_after_return=0:strict_string_checks=1";
}
// abort_on_error: g++ links UBSan as its own runtime, whose exit does not run ASan's death callback; an
// abort reaches on_abort below instead, which saves the input.
extern "C" const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1:abort_on_error=1"; }

// ---------------------------------------------------------------------------------------------------
// Coverage: with -fsanitize-coverage=trace-pc (g++ and clang), every basic block of the harness's
// translation unit (the header-only parser included) calls this function. Consecutive blocks are hashed
// into an edge map AFL-style. Addresses are taken relative to LLVMFuzzerTestOneInput, so the map does
// not depend on where the executable was loaded and a seed gives the same run every time.
namespace {
constexpr std::size_t map_size = 1u << 16;
alignas(64) std::uint8_t cov_map[map_size];
std::uint8_t virgin[map_size];  // bucket bits seen so far, per edge
thread_local std::uint32_t prev_loc = 0;
std::uintptr_t cov_base = 0;
}  // namespace

extern "C" __attribute__((no_sanitize("address", "undefined"))) void __sanitizer_cov_trace_pc() {
  const std::uintptr_t pc = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)) - cov_base;
  const auto h = static_cast<std::uint32_t>((pc * 0x9E3779B97F4A7C15ULL) >> 40);
  cov_map[(h ^ prev_loc) & (map_size - 1)]++;
  prev_loc = h >> 1;
}

namespace {

/// AFL's hit-count classes: a change of class on an edge counts as new behaviour.
std::uint8_t bucket(std::uint8_t n) {
  if (n == 0) return 0;
  if (n <= 3) return static_cast<std::uint8_t>(1u << (n - 1));  // 1, 2, 4
  if (n <= 7) return 8;
  if (n <= 15) return 16;
  if (n <= 31) return 32;
  if (n <= 127) return 64;
  return 128;
}

/// Folds the run's map into `virgin`; returns whether anything was new. Clears the map.
bool merge_coverage(std::size_t& edges) {
  bool fresh = false;
  const auto* words = reinterpret_cast<const std::uint64_t*>(cov_map);
  for (std::size_t w = 0; w < map_size / 8; ++w) {
    if (words[w] == 0) continue;
    for (std::size_t i = w * 8; i < w * 8 + 8; ++i) {
      const std::uint8_t b = bucket(cov_map[i]);
      if (b & ~virgin[i]) {
        if (virgin[i] == 0) ++edges;
        virgin[i] |= b;
        fresh = true;
      }
    }
  }
  std::memset(cov_map, 0, map_size);
  return fresh;
}

// ---------------------------------------------------------------------------------------------------
// Failure reporting. The input being run is kept in plain globals so that the sanitizer death callback,
// the hang watchdog and the exception handler can all write it out without allocating.
const std::uint8_t* cur_data = nullptr;
std::size_t cur_size = 0;
char artifact_prefix[4096] = "./";  // "<artifacts>/<kind>-<target>-" is built from it
char target_name[64] = "target";
std::uint64_t run_seed = 0;
std::atomic<std::int64_t> run_started_ns{0};
std::atomic<bool> reported{false};
pthread_t main_thread;
double per_input_timeout_s = 10.0;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Async-signal-safe helpers (no allocation, no stdio).
void put(const char* s) { (void)!::write(2, s, std::strlen(s)); }
void append(char* dst, std::size_t cap, const char* s) {
  std::size_t n = std::strlen(dst);
  while (*s && n + 1 < cap) dst[n++] = *s++;
  dst[n] = 0;
}
void append_dec(char* dst, std::size_t cap, std::uint64_t v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do buf[--i] = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0);
  append(dst, cap, buf + i);
}
void append_hex(char* dst, std::size_t cap, std::uint64_t v) {
  char buf[17];
  for (int i = 15; i >= 0; --i, v >>= 4) buf[i] = "0123456789abcdef"[v & 15];
  buf[16] = 0;
  append(dst, cap, buf);
}

/// Writes the current input to "<artifacts>/<kind>-<target>-<fnv1a hash>" and prints the path.
void save_current_input(const char* kind, const char* why) {
  if (reported.exchange(true)) return;
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < cur_size; ++i) h = (h ^ cur_data[i]) * 0x100000001b3ULL;
  char path[4400] = "";
  append(path, sizeof path, artifact_prefix);
  append(path, sizeof path, kind);
  append(path, sizeof path, "-");
  append(path, sizeof path, target_name);
  append(path, sizeof path, "-");
  append_hex(path, sizeof path, h);
  put("\n==fuzz== FAILURE in target '");
  put(target_name);
  put("': ");
  put(why);
  put("\n==fuzz== seed ");
  char seed_dec[24] = "";
  append_dec(seed_dec, sizeof seed_dec, run_seed);
  put(seed_dec);
  const int fd = cur_data ? ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
  if (!cur_data) {
    put("\n==fuzz== (outside the harness: no input was running)\n");
  } else if (fd >= 0) {
    std::size_t done = 0;
    while (done < cur_size) {
      const ::ssize_t k = ::write(fd, cur_data + done, cur_size - done);
      if (k <= 0) break;
      done += static_cast<std::size_t>(k);
    }
    ::close(fd);
    put("\n==fuzz== the input that failed is in ");
    put(path);
    put("\n==fuzz== reproduce: fuzz_");
    put(target_name);
    put(" ");
    put(path);
    put("\n");
  } else {
    put("\n==fuzz== (could not write the failing input to ");
    put(path);
    put(")\n");
  }
}

void on_sanitizer_death() { save_current_input("crash", "a sanitizer report or fatal signal (see above)"); }

/// SIGABRT: a UBSan report (abort_on_error=1), a failed assert, std::terminate.
void on_abort(int) {
  save_current_input("crash", "abort (a UBSan report, a failed assert or std::terminate; see above)");
  __sanitizer_print_stack_trace();
  ::_exit(1);
}

// Leaks: allocations and frees are counted while an input runs (libFuzzer's method); when an input
// allocated more than it freed, LeakSanitizer looks for unreachable blocks right away, so that a leak is
// pinned on the input that caused it rather than reported anonymously at exit.
std::atomic<bool> counting{false};
std::atomic<std::int64_t> mallocs{0}, frees{0};
void malloc_hook(const volatile void*, std::size_t) {
  if (counting.load(std::memory_order_relaxed)) mallocs.fetch_add(1, std::memory_order_relaxed);
}
void free_hook(const volatile void*) {
  if (counting.load(std::memory_order_relaxed)) frees.fetch_add(1, std::memory_order_relaxed);
}

void on_hang_signal(int) {
  put("\n==fuzz== stack of the hung input:\n");
  __sanitizer_print_stack_trace();
  ::_exit(1);
}

/// Watches the running input; after `per_input_timeout_s` saves it, prints the stack of the main thread
/// (through SIGUSR2) and exits.
void watchdog(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::int64_t t0 = run_started_ns.load();
    if (t0 != 0 && double(now_ns() - t0) * 1e-9 > per_input_timeout_s) {
      save_current_input("timeout", "one input ran longer than the per-input timeout (a hang?)");
      ::pthread_kill(main_thread, SIGUSR2);
      std::this_thread::sleep_for(std::chrono::seconds(2));
      ::_exit(1);
    }
  }
}

/// Runs one input from an exactly sized heap copy, so that ASan sees a read one byte past its end.
void run_one(const bytes& in) {
  std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[in.size() ? in.size() : 1]);
  if (!in.empty()) std::memcpy(copy.get(), in.data(), in.size());
  cur_data = copy.get();
  cur_size = in.size();
  prev_loc = 0;
  run_started_ns.store(now_ns());
  mallocs = 0;
  frees = 0;
  counting = true;
  try {
    LLVMFuzzerTestOneInput(copy.get(), in.size());
    counting = false;
  } catch (const std::exception& e) {
    // The harness already swallowed mammocl::error: anything reaching here is undocumented behaviour.
    std::string why = std::string("an exception other than mammocl::error escaped the parser: ") +
                      typeid(e).name() + ": " + e.what();
    save_current_input("crash", why.c_str());
    std::_Exit(1);
  } catch (...) {
    save_current_input("crash", "an exception of unknown type escaped the parser");
    std::_Exit(1);
  }
  run_started_ns.store(0);
  if (mallocs.load() > frees.load() && __lsan_do_recoverable_leak_check() != 0) {
    save_current_input("leak", "the input leaked memory (LeakSanitizer report above)");
    std::_Exit(1);
  }
  cur_data = nullptr;
  cur_size = 0;
}

// ---------------------------------------------------------------------------------------------------
// Mutations.
constexpr std::array<std::uint8_t, 9> interesting8{0x00, 0x01, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x40, 0xFE};
constexpr std::array<std::uint16_t, 10> interesting16{0x0000, 0x0001, 0x7FFF, 0x8000, 0xFFFF,
                                                      0x00FF, 0x0100, 0x0FFF, 0x1000, 0xFFFE};
constexpr std::array<std::uint32_t, 11> interesting32{0x00000000u, 0x00000001u, 0x7FFFFFFFu, 0x80000000u,
                                                      0xFFFFFFFFu, 0x0000FFFFu, 0x00010000u, 0x7FFFFFFEu,
                                                      0xFFFFFFFEu, 0x00100000u, 0x40000000u};
// Replacements for a number in a text input: overflow boundaries of every integer width, non-finite and
// out-of-range floating point, signs, leading zeros and things that are not numbers at all.
constexpr std::array<std::string_view, 38> number_values{
    "0", "-0", "1", "-1", "2", "255", "256", "-129", "65535", "65536", "-32769", "2147483647", "2147483648",
    "-2147483648", "-2147483649", "4294967295", "4294967296", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "18446744073709551616", "99999999999999999999999999999999999999999", "1e308",
    "1e309", "-1e309", "1e-320", "nan", "NaN", "inf", "-inf", "0.5", "1.5e3", "007", "0x10", "1,5", "", "abc",
    "+"};
constexpr char special_raw[] = "\"',;\t\r\n\0#<>&=\\ /.-+*~";
constexpr std::string_view special_chars{special_raw, sizeof special_raw - 1};

class mutator {
 public:
  mutator(std::uint64_t seed, bool text, std::vector<bytes> dict, std::size_t max_len)
      : r_(seed), text_(text), dict_(std::move(dict)), max_len_(max_len) {}

  /// Applies a stack of 1, 2, 4 or 8 random mutations (AFL's havoc), with `other` available for splicing.
  void havoc(bytes& b, const bytes& other) {
    const int n = 1 << r_.below(4);
    for (int i = 0; i < n; ++i) one(b, other);
    if (b.size() > max_len_) b.resize(max_len_);
  }

 private:
  std::size_t pos(std::size_t n) { return static_cast<std::size_t>(r_.below(n)); }
  /// A range length in [1, limit], mostly short.
  std::size_t len(std::size_t limit) {
    if (limit <= 1) return limit;
    static constexpr std::array<std::size_t, 4> caps{4, 32, 512, ~std::size_t{0}};
    return 1 + pos(std::min(limit, caps[pos(caps.size())]));
  }
  template <class T>
  void store(bytes& b, std::size_t at, T v, bool big_endian) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      const std::size_t shift = 8 * (big_endian ? sizeof(T) - 1 - i : i);
      b[at + i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> shift);
    }
  }
  template <class T>
  T load(const bytes& b, std::size_t at, bool big_endian) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      const std::size_t shift = 8 * (big_endian ? sizeof(T) - 1 - i : i);
      v |= std::uint64_t{b[at + i]} << shift;
    }
    return static_cast<T>(v);
  }
  void insert(bytes& b, std::size_t at, const std::uint8_t* p, std::size_t n) { b.insert(b.begin() + at, p, p + n); }
  void insert(bytes& b, std::size_t at, std::string_view s) {
    insert(b, at, reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }

  void one(bytes& b, const bytes& other) {
    // Text formats draw half of their mutations from the token-aware set.
    if (text_ && !b.empty() && r_.below(2) == 0 && text_mutation(b, other)) return;
    const std::size_t n = b.size();
    switch (r_.below(16)) {
      case 0:  // flip one bit
        if (n) b[pos(n)] ^= static_cast<std::uint8_t>(1u << r_.below(8));
        break;
      case 1:  // random byte / flip a whole byte
        if (n) b[pos(n)] = r_.below(2) ? static_cast<std::uint8_t>(r_.below(256)) : b[pos(n)] ^ 0xFF;
        break;
      case 2:  // interesting 8-bit value
        if (n) b[pos(n)] = interesting8[pos(interesting8.size())];
        break;
      case 3:  // interesting 16-bit value, either byte order
        if (n >= 2) store<std::uint16_t>(b, pos(n - 1), interesting16[pos(interesting16.size())], r_.below(2));
        break;
      case 4:  // interesting 32-bit value, either byte order
        if (n >= 4) store<std::uint32_t>(b, pos(n - 3), interesting32[pos(interesting32.size())], r_.below(2));
        break;
      case 5: {  // small add/subtract on an 8/16/32-bit field
        const int width = 1 << r_.below(3);
        if (n < std::size_t(width)) break;
        const std::size_t at = pos(n - width + 1);
        const bool be = r_.below(2);
        const auto delta = static_cast<std::int64_t>(r_.below(35)) - 17;
        if (width == 1) b[at] = static_cast<std::uint8_t>(b[at] + delta);
        if (width == 2) store<std::uint16_t>(b, at, static_cast<std::uint16_t>(load<std::uint16_t>(b, at, be) + delta), be);
        if (width == 4) store<std::uint32_t>(b, at, static_cast<std::uint32_t>(load<std::uint32_t>(b, at, be) + delta), be);
        break;
      }
      case 6: {  // delete a range
        if (n < 2) break;
        const std::size_t k = len(n - 1), at = pos(n - k + 1);
        b.erase(b.begin() + at, b.begin() + at + k);
        break;
      }
      case 7: {  // insert random bytes or a run of one byte
        const std::size_t k = len(64);
        bytes ins(k);
        const bool run = r_.below(2);
        const auto fill = static_cast<std::uint8_t>(r_.below(256));
        for (auto& c : ins) c = run ? fill : static_cast<std::uint8_t>(r_.below(256));
        insert(b, pos(n + 1), ins.data(), ins.size());
        break;
      }
      case 8: {  // duplicate a range somewhere
        if (!n) break;
        const std::size_t k = len(n), from = pos(n - k + 1);
        const bytes chunk(b.begin() + from, b.begin() + from + k);
        insert(b, pos(n + 1), chunk.data(), chunk.size());
        break;
      }
      case 9: {  // overwrite a range with another range of the same input
        if (n < 2) break;
        const std::size_t k = len(n / 2), from = pos(n - k + 1), to = pos(n - k + 1);
        std::memmove(b.data() + to, b.data() + from, k);
        break;
      }
      case 10:  // truncate
        if (n) b.resize(pos(n));
        break;
      case 11: {  // splice: a prefix of this input and a suffix of another corpus entry
        if (other.empty()) break;
        const std::size_t cut = pos(n + 1), from = pos(other.size());
        b.resize(cut);
        b.insert(b.end(), other.begin() + from, other.end());
        break;
      }
      case 12: {  // insert a dictionary token
        if (dict_.empty()) break;
        const bytes& t = dict_[pos(dict_.size())];
        insert(b, pos(n + 1), t.data(), t.size());
        break;
      }
      case 13: {  // overwrite with a dictionary token
        if (dict_.empty() || !n) break;
        const bytes& t = dict_[pos(dict_.size())];
        const std::size_t at = pos(n);
        for (std::size_t i = 0; i < t.size() && at + i < b.size(); ++i) b[at + i] = t[i];
        break;
      }
      case 14: {  // copy a range from another entry over this one
        if (other.empty() || !n) break;
        const std::size_t k = len(std::min(other.size(), n)), from = pos(other.size() - k + 1),
                          to = pos(n - k + 1);
        std::memcpy(b.data() + to, other.data() + from, k);
        break;
      }
      default: {  // extend: append random bytes or a copy of the tail (length fields pointing past the end)
        if (r_.below(2) || !n) {
          const std::size_t k = len(256);
          for (std::size_t i = 0; i < k; ++i) b.push_back(static_cast<std::uint8_t>(r_.below(256)));
        } else {
          const std::size_t k = len(n);
          const bytes tail(b.end() - k, b.end());
          b.insert(b.end(), tail.begin(), tail.end());
        }
      }
    }
  }

  static bool is_digit(std::uint8_t c) { return c >= '0' && c <= '9'; }
  static bool is_sep(std::uint8_t c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ';' || c == '<' || c == '>' ||
           c == '"' || c == '=';
  }
  /// Picks the span of a random number ([-+]?digits[.digits][e[-+]digits]) in `b`, by reservoir sampling.
  bool random_number(const bytes& b, std::size_t& begin, std::size_t& end) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < b.size();) {
      if (!is_digit(b[i])) {
        ++i;
        continue;
      }
      std::size_t s = i, e = i;
      if (s > 0 && (b[s - 1] == '-' || b[s - 1] == '+')) --s;
      while (e < b.size() && (is_digit(b[e]) || b[e] == '.')) ++e;
      if (e < b.size() && (b[e] == 'e' || b[e] == 'E')) {
        std::size_t x = e + 1;
        if (x < b.size() && (b[x] == '-' || b[x] == '+')) ++x;
        if (x < b.size() && is_digit(b[x])) {
          e = x;
          while (e < b.size() && is_digit(b[e])) ++e;
        }
      }
      if (r_.below(++seen) == 0) begin = s, end = e;
      i = e;
    }
    return seen != 0;
  }
  /// A random field (a run of non-separator bytes) of `b`.
  bool random_field(const bytes& b, std::size_t& begin, std::size_t& end) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < b.size();) {
      if (is_sep(b[i])) {
        ++i;
        continue;
      }
      std::size_t e = i;
      while (e < b.size() && !is_sep(b[e])) ++e;
      if (r_.below(++seen) == 0) begin = i, end = e;
      i = e;
    }
    return seen != 0;
  }
  /// A random line [begin, end) including its '\n'.
  void random_line(const bytes& b, std::size_t& begin, std::size_t& end) {
    const std::size_t at = pos(b.size());
    begin = at;
    while (begin > 0 && b[begin - 1] != '\n') --begin;
    end = at;
    while (end < b.size() && b[end] != '\n') ++end;
    if (end < b.size()) ++end;
  }
  void replace(bytes& b, std::size_t begin, std::size_t end, std::string_view s) {
    b.erase(b.begin() + begin, b.begin() + end);
    insert(b, begin, s);
  }

  bool text_mutation(bytes& b, const bytes& other) {
    std::size_t s = 0, e = 0;
    switch (r_.below(7)) {
      case 0:  // a number becomes a boundary, huge, negative or garbage value
      case 1: {
        if (!random_number(b, s, e)) return false;
        if (r_.below(4) == 0) {  // or a random number of random length
          std::string v = r_.below(2) ? "-" : "";
          const std::size_t k = 1 + pos(25);
          for (std::size_t i = 0; i < k; ++i) v.push_back(static_cast<char>('0' + r_.below(10)));
          replace(b, s, e, v);
        } else {
          replace(b, s, e, number_values[pos(number_values.size())]);
        }
        return true;
      }
      case 2: {  // a field becomes a field of another entry (or of this one)
        std::size_t s2 = 0, e2 = 0;
        const bytes& src = (other.empty() || r_.below(2)) ? b : other;
        if (!random_field(b, s, e) || !random_field(src, s2, e2)) return false;
        const std::string tok(src.begin() + s2, src.begin() + e2);
        replace(b, s, e, tok);
        return true;
      }
      case 3: {  // delete a field
        if (!random_field(b, s, e)) return false;
        b.erase(b.begin() + s, b.begin() + e);
        return true;
      }
      case 4: {  // duplicate, delete or move a line
        random_line(b, s, e);
        const bytes line(b.begin() + s, b.begin() + e);
        const auto what = r_.below(3);
        if (what != 0) b.erase(b.begin() + s, b.begin() + e);
        if (what != 1) insert(b, pos(b.size() + 1), line.data(), line.size());
        return true;
      }
      case 5: {  // insert a character that means something to a tokenizer (quote, separator, NUL, CR)
        const char c = special_chars[pos(special_chars.size())];
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(pos(b.size() + 1)), static_cast<std::uint8_t>(c));
        return true;
      }
      default: {  // a separator becomes another one
        std::vector<std::size_t> seps;
        for (std::size_t i = 0; i < b.size(); ++i)
          if (is_sep(b[i])) seps.push_back(i);
        if (seps.empty()) return false;
        b[seps[pos(seps.size())]] = static_cast<std::uint8_t>(special_chars[pos(special_chars.size())]);
        return true;
      }
    }
  }

  mammocl::rng r_;
  bool text_;
  std::vector<bytes> dict_;
  std::size_t max_len_;
};

// ---------------------------------------------------------------------------------------------------
// Options and corpus.
struct options {
  double seconds = 15.0;
  std::uint64_t seed = 1;
  std::uint64_t min_iterations = 0;  // 0: the target's value, else 1000
  std::uint64_t max_iterations = 0;  // 0: no cap
  double timeout = 10.0;
  std::size_t max_len = 0;  // 0: the target's default
  bool regressions = true;  // --no-regressions: hunt past a known open bug
  fs::path data, artifacts = ".", write_corpus;
  std::vector<fs::path> replay;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr,
               "fuzz: %s\nusage: fuzz_<parser> [--seconds=S] [--seed=N] [--min-iterations=N] [--max-iterations=N]\n"
               "       [--timeout=S] [--max-len=N] [--data=DIR] [--artifacts=DIR] [--write-corpus=DIR] [--no-regressions]\n"
               "       [--default-seconds=S] [--default-seed=N] [FILE|DIR ...]\n"
               "environment: MAMMOCL_FUZZ_SECONDS, MAMMOCL_FUZZ_SEED, MAMMOCL_FUZZ_MIN_ITERATIONS, MAMMOCL_DATA\n",
               msg.c_str());
  std::exit(2);
}

double to_double(const std::string& what, const std::string& v) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != 0 || !(d >= 0)) usage_error(what + " expects a non-negative number, got '" + v + "'");
  return d;
}
std::uint64_t to_u64(const std::string& what, const std::string& v) {
  char* end = nullptr;
  const unsigned long long u = std::strtoull(v.c_str(), &end, 0);
  if (v.empty() || *end != 0 || v[0] == '-') usage_error(what + " expects an unsigned integer, got '" + v + "'");
  return u;
}

options parse_options(int argc, char** argv) {
  options o;
  // Precedence: --seconds / --seed, then the environment, then --default-seconds / --default-seed (what
  // ctest passes, so that `MAMMOCL_FUZZ_SECONDS=60 ctest -L fuzz` still works), then 15 s and seed 1.
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--default-seconds=", 0) == 0) o.seconds = to_double("--default-seconds", a.substr(18));
    if (a.rfind("--default-seed=", 0) == 0) o.seed = to_u64("--default-seed", a.substr(15));
  }
  if (const char* e = std::getenv("MAMMOCL_FUZZ_SECONDS"); e && *e) o.seconds = to_double("MAMMOCL_FUZZ_SECONDS", e);
  if (const char* e = std::getenv("MAMMOCL_FUZZ_SEED"); e && *e) o.seed = to_u64("MAMMOCL_FUZZ_SEED", e);
  if (const char* e = std::getenv("MAMMOCL_FUZZ_MIN_ITERATIONS"); e && *e)
    o.min_iterations = to_u64("MAMMOCL_FUZZ_MIN_ITERATIONS", e);
  if (const char* e = std::getenv("MAMMOCL_DATA"); e && *e)
    o.data = e;
  else
    o.data = fs::path(MAMMOCL_SOURCE_DIR) / ".." / "shared" / "data";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    const std::string key = a.substr(0, eq), val = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (a.rfind("--", 0) != 0) {
      o.replay.emplace_back(a);
    } else if (a == "--no-regressions") {
      o.regressions = false;
    } else if (eq == std::string::npos) {
      usage_error("unknown or incomplete flag '" + a + "' (flags take the form --name=value)");
    } else if (key == "--default-seconds" || key == "--default-seed") {
      // handled above
    } else if (key == "--seconds") {
      o.seconds = to_double(key, val);
    } else if (key == "--seed") {
      o.seed = to_u64(key, val);
    } else if (key == "--min-iterations") {
      o.min_iterations = to_u64(key, val);
    } else if (key == "--max-iterations") {
      o.max_iterations = to_u64(key, val);
    } else if (key == "--timeout") {
      o.timeout = to_double(key, val);
    } else if (key == "--max-len") {
      o.max_len = to_u64(key, val);
    } else if (key == "--data") {
      o.data = val;
    } else if (key == "--artifacts") {
      o.artifacts = val;
    } else if (key == "--write-corpus") {
      o.write_corpus = val;
    } else {
      usage_error("unknown flag '" + key + "'");
    }
  }
  return o;
}

bytes read_prefix(const fs::path& p, std::size_t max_bytes) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz: cannot read %s\n", p.c_str());
    std::exit(2);
  }
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  bytes b(ec ? max_bytes : std::min<std::size_t>(max_bytes, size));
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(max_bytes));
  b.resize(static_cast<std::size_t>(in.gcount()));
  return b;
}

struct entry {
  std::string origin;
  bytes data;
};

/// The regression inputs of this target (tests/fuzz/regressions/<name>/), then the real files, then the
/// harness's own small valid inputs.
std::vector<entry> build_corpus(const mammocl::fuzz::target_info& t, const options& o, bool& data_missing) {
  std::vector<entry> corpus;
  const fs::path reg = fs::path(MAMMOCL_FUZZ_REGRESSIONS_DIR) / t.name;
  if (o.regressions && fs::is_directory(reg)) {
    std::vector<fs::path> files;
    for (const auto& f : fs::directory_iterator(reg))
      if (f.is_regular_file() && f.path().filename() != "README.md") files.push_back(f.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) corpus.push_back({"regression " + f.filename().string(), read_prefix(f, 1u << 24)});
  }
  data_missing = !fs::is_directory(o.data);
  for (const auto& s : t.data_seeds) {
    const fs::path p = o.data / s.path;
    if (!fs::exists(p)) {
      data_missing = true;
      std::fprintf(stderr, "fuzz: real seed %s not found\n", p.c_str());
      continue;
    }
    if (fs::is_directory(p)) {
      std::vector<fs::path> files;
      for (const auto& f : fs::directory_iterator(p))
        if (f.is_regular_file() && f.path().string().ends_with(s.extension)) files.push_back(f.path());
      std::sort(files.begin(), files.end());
      if (files.size() > s.max_files) files.resize(s.max_files);
      for (const auto& f : files)
        corpus.push_back({"data " + (fs::path(s.path) / f.filename()).string(), read_prefix(f, s.max_bytes)});
    } else {
      corpus.push_back({"data " + s.path, read_prefix(p, s.max_bytes)});
    }
  }
  if (t.generate)
    for (auto& g : t.generate(data_missing ? fs::path() : o.data))
      corpus.push_back({"generated " + g.name, std::move(g.data)});
  return corpus;
}

void write_file(const fs::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", p.c_str());
    std::exit(2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_options(argc, argv);
  const mammocl::fuzz::target_info target = mammocl::fuzz::describe_target();
  cov_base = reinterpret_cast<std::uintptr_t>(&LLVMFuzzerTestOneInput);
  main_thread = ::pthread_self();
  per_input_timeout_s = o.timeout;
  run_seed = o.seed;
  std::snprintf(target_name, sizeof target_name, "%s", target.name.c_str());
  std::error_code ec;
  fs::create_directories(o.artifacts, ec);
  std::snprintf(artifact_prefix, sizeof artifact_prefix, "%s/", o.artifacts.c_str());
  __sanitizer_set_death_callback(on_sanitizer_death);
  ::signal(SIGUSR2, on_hang_signal);
  ::signal(SIGABRT, on_abort);
  __sanitizer_install_malloc_and_free_hooks(malloc_hook, free_hook);
  std::atomic<bool> stop{false};
  std::thread dog(watchdog, std::cref(stop));
  const auto finish = [&](int rc) {
    stop.store(true);
    dog.join();
    return rc;
  };

  // Replay mode: run the given files (or every file of the given directories) once each.
  if (!o.replay.empty()) {
    std::size_t n = 0;
    for (const auto& p : o.replay) {
      std::vector<fs::path> files;
      if (fs::is_directory(p)) {
        for (const auto& f : fs::directory_iterator(p))
          if (f.is_regular_file()) files.push_back(f.path());
        std::sort(files.begin(), files.end());
      } else {
        files.push_back(p);
      }
      for (const auto& f : files) {
        std::printf("fuzz %s: running %s\n", target.name.c_str(), f.c_str());
        std::fflush(stdout);
        run_one(read_prefix(f, 1u << 30));
        ++n;
      }
    }
    std::printf("fuzz %s: %zu input(s) ran without failure\n", target.name.c_str(), n);
    return finish(0);
  }

  bool data_missing = false;
  std::vector<entry> corpus = build_corpus(target, o, data_missing);
  if (data_missing) {
    const char* allow = std::getenv("MAMMOCL_ALLOW_MISSING_DATA");
    if (!(allow && std::string(allow) == "1")) {
      std::fprintf(stderr,
                   "fuzz %s: real test data not found under %s (set MAMMOCL_DATA to the shared data folder, or "
                   "MAMMOCL_ALLOW_MISSING_DATA=1 to fuzz from the generated seeds alone)\n",
                   target.name.c_str(), o.data.c_str());
      return finish(1);
    }
    std::printf("fuzz %s: SKIPPED real seeds: data folder %s is missing\n", target.name.c_str(), o.data.c_str());
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "fuzz %s: empty seed corpus\n", target.name.c_str());
    return finish(1);
  }
  if (!o.write_corpus.empty()) {  // seeds for a libFuzzer run: fuzz_x_libfuzzer DIR
    fs::create_directories(o.write_corpus);
    for (std::size_t i = 0; i < corpus.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "seed-%04zu", i);
      write_file(o.write_corpus / name, corpus[i].data);
    }
    std::printf("fuzz %s: wrote %zu seeds to %s\n", target.name.c_str(), corpus.size(), o.write_corpus.c_str());
    return finish(0);
  }

  const std::uint64_t min_iterations =
      o.min_iterations ? o.min_iterations : target.min_iterations ? target.min_iterations : 1000;
  std::size_t max_len = o.max_len ? o.max_len : target.max_len;
  if (!o.max_len)
    for (const auto& e : corpus) max_len = std::max(max_len, e.data.size());
  std::vector<bytes> dict;
  for (const auto& d : target.dictionary) dict.push_back(mammocl::fuzz::to_bytes(d));

  std::printf("fuzz %s: seed %" PRIu64 ", %.1f s and at least %" PRIu64 " iterations, per-input timeout %.1f s, "
              "max length %zu, %zu seeds\n",
              target.name.c_str(), o.seed, o.seconds, min_iterations, o.timeout, max_len, corpus.size());
  std::fflush(stdout);

  const auto t0 = std::chrono::steady_clock::now();
  std::size_t edges = 0;
  std::memset(cov_map, 0, map_size);
  for (const auto& e : corpus) {  // every seed once, as is: regressions and real files must pass
    if (e.origin.rfind("regression ", 0) == 0) {
      std::printf("fuzz %s: replaying %s\n", target.name.c_str(), e.origin.c_str());
      std::fflush(stdout);
    }
    run_one(e.data);
    merge_coverage(edges);
  }
  const std::size_t seeds = corpus.size(), seed_edges = edges;

  mutator mut(o.seed, target.text, std::move(dict), max_len);
  mammocl::rng pick(o.seed ^ 0x5eedULL);
  std::uint64_t iterations = 0;
  bytes input;
  const double budget = o.seconds;
  for (;;) {
    if (o.max_iterations && iterations >= o.max_iterations) break;
    // The clock is read every 16 iterations only; the time bound is coarse by design.
    if (!o.max_iterations && iterations >= min_iterations && (iterations & 15) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= budget)
      break;
    const entry& base = corpus[pick.below(corpus.size())];
    const entry& other = corpus[pick.below(corpus.size())];
    input = base.data;
    mut.havoc(input, other.data);
    run_one(input);
    ++iterations;
    if (merge_coverage(edges) && corpus.size() < 4096) corpus.push_back({"mutant", input});
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fuzz %s: seed %" PRIu64 ": %" PRIu64 " iterations in %.1f s (%.0f/s), corpus %zu -> %zu entries, "
              "coverage %zu -> %zu edges, no failure\n",
              target.name.c_str(), o.seed, iterations, secs, secs > 0 ? double(iterations) / secs : 0.0, seeds,
              corpus.size(), seed_edges, edges);
  return finish(0);
}
