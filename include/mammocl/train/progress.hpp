#pragma once
/// `progress_bar`: one line of training progress on a terminal (redrawn in place), or a plain line every
/// few seconds when the output is a file or pipe: step/total, loss, accuracy, images/s and ETA.
#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace mammocl::train {

class progress_bar {
 public:
  progress_bar(std::string label, long total_steps, std::FILE* out = stderr)
      : label_(std::move(label)), total_(total_steps), out_(out), tty_(isatty(fileno(out)) != 0),
        start_(clock::now()), last_(start_) {}

  /// Reports that `step` of total steps are done, with running loss and accuracy and images so far.
  void update(long step, double loss, double accuracy, long images) {
    const auto now = clock::now();
    const double elapsed = seconds(now - start_);
    const bool last = step >= total_;
    if (!tty_ && !last && seconds(now - last_) < 5.0) return;
    last_ = now;
    const double ips = elapsed > 0 ? images / elapsed : 0.0;
    const double eta = step > 0 ? elapsed * static_cast<double>(total_ - step) / static_cast<double>(step) : 0.0;
    constexpr int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * std::min(1.0, static_cast<double>(step) / total_)) : width;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(out_, "%s%s [%s] %ld/%ld loss %.4f acc %.3f %.1f img/s ETA %s%s", tty_ ? "\r" : "", label_.c_str(),
                 bar.c_str(), step, total_, loss, accuracy, ips, clock_text(eta).c_str(), (tty_ && !last) ? "" : "\n");
    std::fflush(out_);
  }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }
  static std::string clock_text(double s) {
    const long t = static_cast<long>(s + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
  }
  std::string label_;
  long total_;
  std::FILE* out_;
  bool tty_;
  clock::time_point start_, last_;
};

}  // namespace mammocl::train
